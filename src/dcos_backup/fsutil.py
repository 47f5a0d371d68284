"""Small file-system helpers shared by the catalog, dcos-zk and the keeper of secrets: durable renames, hashing
streams, private (0600) files, and disk-full errors that say so.

A :class:`Sink` is a stream written once from start to end that knows, when finished, the size and sha256 of
what it *stored* (:class:`Stored`); a :class:`Source` is its reading twin. Layers stack on them (encryption,
object storage) and the hash is always taken of the bytes at rest, whatever sits on top.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import shutil
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

from dcos_backup.errors import StorageError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

_FULL = {errno.ENOSPC, errno.EDQUOT}
_DRAIN = 1 << 20


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink inside ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Stored:
    """What a finished :class:`Sink` wrote at rest: its bytes, their sha256 and, if encrypted, the key's id."""

    size: int
    sha256: str
    key_id: str | None = None


class Sink(ABC):
    """A write-once stream; :meth:`finish` ends it (nothing may be written after) and says what was stored."""

    @abstractmethod
    def write(self, data: bytes) -> int: ...

    @abstractmethod
    def finish(self) -> Stored: ...


class HashingWriter(Sink):
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

    def finish(self) -> Stored:
        self.raw.flush()
        return Stored(self.size, self.sha256.hexdigest())


class Source(ABC):
    """A read-once stream that knows, once read to its end, the size and sha256 of the bytes at rest."""

    @abstractmethod
    def read(self, size: int = -1) -> bytes: ...

    @abstractmethod
    def drain(self) -> Stored:
        """Read the bytes at rest to their end without interpreting them (after damage was found, say)."""


class Writable(Protocol):
    """Anything with a file's ``write``: a file, a :class:`HashingWriter`."""

    def write(self, data: bytes, /) -> int: ...


class Readable(Protocol):
    """Anything with a file's ``read``: a file, a :class:`Source`, a :class:`TeeReader`, an S3 body."""

    def read(self, size: int = -1, /) -> bytes: ...


class HashingReader(Source):
    """A read-only file wrapper computing sha256 of everything read through it."""

    def __init__(self, raw: Readable) -> None:
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.sha256.update(data)
        self.size += len(data)
        return data

    def drain(self) -> Stored:
        while self.read(_DRAIN):
            pass
        return Stored(self.size, self.sha256.hexdigest())


class TeeReader:
    """A readable file whose reads also go to ``sink`` (a spool's ``write``, a checker's ``feed``)."""

    def __init__(self, source: Readable, sink: Callable[[bytes], object]) -> None:
        self._source = source
        self._sink = sink

    def read(self, size: int = -1) -> bytes:
        chunk = self._source.read(size)
        if chunk:
            self._sink(chunk)
        return chunk


class ChunkReader(io.RawIOBase):
    """A readable file over an iterator of byte chunks (a compressor's output, a request's body)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._rest = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        while not self._rest:
            try:
                self._rest = next(self._chunks)
            except StopIteration:
                return 0
        view = memoryview(buffer)
        n = min(len(view), len(self._rest))
        view[:n] = self._rest[:n]
        self._rest = self._rest[n:]
        return n


def write_private_file(path: Path, data: bytes, replace: bool = True) -> None:
    """Write ``data`` to ``path`` atomically, readable by its owner only (0600; a new parent directory 0700):
    keys, tokens and credentials never exist, not even for a moment, with wider permissions. Without
    ``replace``, an existing ``path`` is kept and FileExistsError raised (of processes creating the same
    key at once, exactly one wins, and the others read its key)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to a file left behind by an earlier crash
        f.write(data)
        f.flush()
        os.fsync(fd)
    if replace:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # fails if path exists: creation and content in one step
    finally:
        tmp.unlink()


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
