"""The backup API's bearer token: generated once per cluster, kept in a 0600 file."""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from dcos_backup.errors import StorageError, Unauthorized


def generate_token_file(path: Path) -> str:
    """Write a fresh random token to ``path`` (mode 0600, parent 0700) and return it."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = secrets.token_urlsafe(32)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.replace(tmp, path)
    return token


def read_token_file(path: Path) -> str:
    try:
        token = Path(path).read_text().strip()
    except OSError as exc:
        raise StorageError(f"cannot read the token file {path}: {exc.strerror or exc}") from exc
    if not token:
        raise StorageError(f"the token file {path} is empty")
    return token


def check_bearer(header: str | None, token: str) -> None:
    """Raise Unauthorized unless ``header`` is ``Bearer <token>`` (constant-time comparison)."""
    if not header:
        raise Unauthorized("missing bearer token (send 'Authorization: Bearer <token>')")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise Unauthorized("invalid bearer token")
