"""DC/OS authentication tokens: RS256 JWTs with a ``uid`` claim and an expiry (PyJWT + cryptography).

The cluster's IAM signs them with its private key (kept 0600 by whoever runs the IAM); services verify
them with the public key. Verification takes RS256 only, so a token with ``alg: none`` or one signed with
HS256 using the public key as the secret is refused; ``uid`` and ``exp`` are required; a token longer
than :data:`MAX_TOKEN` is refused before it is parsed (a huge header costs nothing but the check).
Every refusal is :class:`~dcos_backup.errors.Unauthorized` with one line saying why.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from dcos_backup.durations import parse_duration
from dcos_backup.errors import StorageError, Unauthorized
from dcos_backup.fsutil import write_private_file

ALGORITHM = "RS256"
MAX_TOKEN = 8192  # bytes; DC/OS's own tokens are well under 1 KiB
DEFAULT_TTL = timedelta(days=5)  # DC/OS's login token lifetime


def generate_key_pair(private_path: Path, public_path: Path) -> None:
    """A fresh 2048-bit RSA key pair: the private key 0600, the public key readable by all."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    write_private_file(
        private_path,
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    public_path.parent.mkdir(parents=True, exist_ok=True)
    public_path.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def load_private_key(path: Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(_read(path, "IAM private key"), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise StorageError(f"{path} is not an RSA private key")
    return key


def load_public_key(path: Path) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(_read(path, "IAM public key"))
    if not isinstance(key, rsa.RSAPublicKey):
        raise StorageError(f"{path} is not an RSA public key")
    return key


def _read(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise StorageError(f"cannot read the {what} {path}: {exc.strerror or exc}") from exc


def parse_ttl(text: str) -> timedelta:
    """``90s``, ``30m``, ``1h``, ``5d`` -> a positive timedelta."""
    return parse_duration(text, "time to live")


def issue_token(private_key: rsa.RSAPrivateKey, uid: str, ttl: timedelta = DEFAULT_TTL) -> str:
    """A token for ``uid`` that expires after ``ttl``."""
    issued = datetime.now(UTC)
    return jwt.encode({"uid": uid, "iat": issued, "exp": issued + ttl}, private_key, algorithm=ALGORITHM)


def token_from_header(header: str | None) -> str:
    """The JWT of an ``Authorization`` header: ``token=<jwt>`` (DC/OS) or ``Bearer <jwt>``."""
    if not header or not header.strip():
        raise Unauthorized("missing token: send 'Authorization: token=<token>' (dcos-local iam login prints one)")
    text = header.strip()
    if text[:6].lower() == "token=":
        token = text[6:]
    elif text[:7].lower() == "bearer ":
        token = text[7:]
    else:
        raise Unauthorized("unsupported authorization: send 'Authorization: token=<token>' or 'Bearer <token>'")
    token = token.strip()
    if not token:
        raise Unauthorized("empty token in the Authorization header")
    return token


def verify_token(public_key: rsa.RSAPublicKey, token: str) -> str:
    """The ``uid`` of a valid token; Unauthorized saying why for any other."""
    if len(token) > MAX_TOKEN:
        raise Unauthorized(f"invalid token: longer than {MAX_TOKEN} bytes")
    try:
        claims = jwt.decode(token, public_key, algorithms=[ALGORITHM], options={"require": ["uid", "exp"]})
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("token expired: log in again") from exc
    except jwt.InvalidTokenError as exc:
        raise Unauthorized(f"invalid token: {' '.join(str(exc).split())}") from exc
    uid = claims["uid"]
    if not isinstance(uid, str) or not uid:
        raise Unauthorized("invalid token: its uid is not a user name")
    return uid
