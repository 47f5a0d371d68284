"""Where continuous archives live: a small object store interface and its local-directory backend.

The archiver and the point-in-time restore use nothing but these operations, so an object-storage
backend (S3, issue 13) is one more class here, not a change to their logic:

- ``put(key, stream)``: store an immutable object; it becomes visible only once complete (a reader
  never sees a torn object under its name); returns its size and sha256;
- ``get(key)``: read it as a stream;
- ``list(prefix)``: the complete objects under a prefix, in key order, without reading them;
- ``delete(key)``.

Keys are ``/``-separated paths of plain names. The archive puts every fact the index needs (zxid range,
times, sha256) into the key itself, so a listing answers "what can I restore?" without reading data.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from dcos_backup.errors import NotFound, StorageError, UsageError
from dcos_backup.fsutil import fsync_dir

_KEY = re.compile(r"^[A-Za-z0-9_.=-][A-Za-z0-9_.=-]*(/[A-Za-z0-9_.=-]+)*$")
_CHUNK = 1 << 20
PARTIAL = ".partial-"  # hidden names of objects being written (never listed)


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int


@dataclass(frozen=True)
class PutResult:
    key: str
    size: int
    sha256: str


def check_key(key: str) -> str:
    if not _KEY.match(key) or ".." in key.split("/") or any(part.startswith(".") for part in key.split("/")):
        raise UsageError(f"invalid object key {key!r}")
    return key


def storage_error(action: str, exc: OSError) -> StorageError:
    """ENOSPC is its own message: the archiver reports it as "REPO full" and retries."""
    if exc.errno == errno.ENOSPC:
        return StorageError(f"no space left in the repository while {action}", reason="full")
    return StorageError(f"repository failed while {action}: {exc.strerror or exc}")


class ObjectStore(ABC):
    """Immutable objects by key; see the module docstring."""

    url: str

    @abstractmethod
    def put(self, key: str, source: BinaryIO | bytes) -> PutResult: ...

    @abstractmethod
    def get(self, key: str) -> BinaryIO: ...

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]: ...

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def remove_partials(self, prefix: str = "") -> int:
        """Drop objects a killed writer left half-written under ``prefix``; returns how many."""

    def get_bytes(self, key: str) -> bytes:
        with self.get(key) as f:
            return f.read()


class LocalStore(ObjectStore):
    """Objects as files under a directory: written to a hidden partial name, fsynced, renamed."""

    def __init__(self, root: Path, create: bool = True) -> None:
        self.root = Path(root).absolute()
        self.url = str(self.root)
        if create:
            try:
                self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            except OSError as exc:
                raise storage_error(f"creating {self.root}", exc) from exc
        elif not self.root.is_dir():
            raise NotFound(f"repository {self.root} does not exist")

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, source: BinaryIO | bytes) -> PutResult:
        path = self._path(key)
        partial = path.parent / f"{PARTIAL}{uuid.uuid4().hex[:8]}.{path.name}"
        digest, size = hashlib.sha256(), 0
        try:
            _mkdirs(self.root, path.parent)
            with open(partial, "xb") as out:
                for chunk in _chunks(source):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, path)
            fsync_dir(path.parent)
        except OSError as exc:
            with contextlib.suppress(OSError):
                partial.unlink()
            raise storage_error(f"writing {key}", exc) from exc
        return PutResult(key, size, digest.hexdigest())

    def get(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError as exc:
            raise NotFound(f"{key} is missing from the repository {self.url}") from exc
        except OSError as exc:
            raise storage_error(f"reading {key}", exc) from exc

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        base = self.root / prefix.rstrip("/") if prefix else self.root
        if not base.is_dir():
            return
        for root, dirs, files in os.walk(base):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            rel = Path(root).relative_to(self.root).as_posix()
            for name in sorted(files):
                if name.startswith("."):
                    continue  # partials of objects being written: not there yet
                key = name if rel == "." else f"{rel}/{name}"
                with contextlib.suppress(FileNotFoundError):  # deleted while listing
                    yield ObjectInfo(key, (Path(root) / name).stat().st_size)

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise storage_error(f"deleting {key}", exc) from exc
        # Empty folders go too, so that a pruned generation leaves nothing behind.
        parent = path.parent
        while parent != self.root:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def remove_partials(self, prefix: str = "") -> int:
        base = self.root / prefix.rstrip("/") if prefix else self.root
        removed = 0
        for partial in base.rglob(f"{PARTIAL}*") if base.is_dir() else ():
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
                removed += 1
        return removed


def _mkdirs(root: Path, directory: Path) -> None:
    """Create ``directory`` (under ``root``) and fsync each new entry's parent: a new object's folder must
    survive a crash as surely as the object."""
    missing = []
    current = directory
    while current != root and not current.exists():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
        fsync_dir(path.parent)


def _chunks(source: BinaryIO | bytes) -> Iterator[bytes]:
    if isinstance(source, bytes | bytearray | memoryview):
        yield bytes(source)
        return
    while chunk := source.read(_CHUNK):
        yield chunk


def open_store(spec: str, create: bool = False) -> ObjectStore:
    """The store a ``--repo`` value names: a local directory (or ``file://`` URL) today."""
    if "://" in spec:
        scheme, _, rest = spec.partition("://")
        if scheme != "file":
            raise UsageError(f"repository {spec}: {scheme}:// repositories are not supported yet (a directory is)")
        spec = rest
    if not spec:
        raise UsageError("--repo wants a directory")
    return LocalStore(Path(spec), create=create)
