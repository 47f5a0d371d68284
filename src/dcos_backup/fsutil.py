"""Small file-system helpers shared by the catalog, dcos-zk and the keeper of secrets: durable renames, hashing
writes, private (0600) files, and disk-full errors that say so."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from pathlib import Path
from typing import BinaryIO

from dcos_backup.errors import StorageError

_FULL = {errno.ENOSPC, errno.EDQUOT}


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink inside ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class HashingWriter:
    """A write-only file wrapper that counts bytes and computes sha256 as data goes through."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()


def write_private_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, readable by its owner only (0600; a new parent directory 0700):
    keys, tokens and credentials never exist, not even for a moment, with wider permissions."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to a file left behind by an earlier crash
        f.write(data)
        f.flush()
        os.fsync(fd)
    os.replace(tmp, path)


def storage_error(exc: OSError, doing: str, directory: Path) -> StorageError:
    """One line for a failed read or write; a full filesystem is named as such, with the directory that is full."""
    if exc.errno in _FULL:
        return StorageError(f"{doing} failed: no space left in {directory} (its filesystem is full); free space there")
    return StorageError(f"{doing} failed: {exc.strerror or exc}")


def ensure_free_space(directory: Path, needed: int, doing: str) -> None:
    """Refuse, before writing, ``needed`` bytes that ``directory``'s filesystem cannot take."""
    free = shutil.disk_usage(directory).free
    if needed > free:
        raise StorageError(
            f"{doing} needs {needed} bytes but {directory} has {free} free (its filesystem is full); free space there"
        )
