"""The object store interface: immutable objects by key, whatever keeps them.

The backup catalog (``catalog/storage.py``) and the ZooKeeper archive repository (``physical/continuous``) use
nothing but these operations, so both work on a local directory and on S3-compatible storage alike:

- ``writer(key)``: a :class:`~dcos_backup.fsutil.Sink` for a new immutable object; the object becomes
  visible only once the block ends without an error (a reader never sees a torn object under its name,
  a failed write leaves nothing listed); ``put(key, stream)`` is the same for a readable stream;
- ``get(key)``: read it as a stream;
- ``list(prefix)``: the complete objects under a prefix, in key order, without reading them;
- ``top_level(prefix)``: what the store's top level holds whose names start with a prefix, in order: each
  folder one entry however many objects it holds (an archive repository's thousands of objects are one
  entry), each object with its version where the store keeps one that changes whenever the bytes do (S3's
  ETag; None in a directory, whose timestamps are too coarse to tell two writes apart): what the catalog
  lists, one record per backup, and how it knows a record it read before is unchanged without reading it
  again;
- ``get_versioned(key)``: an object's bytes with the version of exactly those bytes (None as above);
- ``delete(key)``; ``remove_partials(prefix)``: what a killed writer left half-written.

Keys are ``/``-separated paths of plain names. The backends: :class:`~.local.LocalStore` (a directory) and
:class:`~.s3.S3Store` (a bucket); :func:`~.locations.open_store` reads a location and opens the right one.
"""

from __future__ import annotations

import contextlib
import errno
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from dcos_backup.errors import StorageError, UsageError
from dcos_backup.fsutil import Sink

_KEY = re.compile(r"^[A-Za-z0-9_.=-][A-Za-z0-9_.=-]*(/[A-Za-z0-9_.=-]+)*$")
_CHUNK = 1 << 20
PARTIAL = ".partial-"  # hidden names of objects being written (never listed)


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int


@dataclass(frozen=True)
class TopEntry:
    """One name at a store's top level: a folder, or an object with its version (see the module docstring)."""

    name: str
    folder: bool
    version: str | None = None

    @property
    def order(self) -> str:
        """Where it comes in a listing: S3's key order, a folder as ``name/`` (``x.json`` before ``x/``)."""
        return self.name + "/" if self.folder else self.name


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
    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[Sink]:
        """A sink whose bytes become the object ``key`` when the block ends without an error."""

    def put(self, key: str, source: BinaryIO | bytes) -> PutResult:
        with self.writer(key) as sink:
            for chunk in _chunks(source):
                sink.write(chunk)
            stored = sink.finish()
        return PutResult(key, stored.size, stored.sha256)

    @abstractmethod
    def get(self, key: str) -> BinaryIO: ...

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]: ...

    @abstractmethod
    def top_level(self, prefix: str = "") -> Iterator[TopEntry]:
        """The top-level folders (a key's part before its first ``/``) and objects (keys with no ``/``)
        whose names start with ``prefix``, in :attr:`TopEntry.order`, without listing what the folders hold."""

    @abstractmethod
    def get_versioned(self, key: str) -> tuple[bytes, str | None]:
        """The object's bytes and their version (as :meth:`top_level` gives it): NotFound if absent."""

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def remove_partials(self, prefix: str = "") -> int:
        """Drop objects a killed writer left half-written under ``prefix``; returns how many."""

    def get_bytes(self, key: str) -> bytes:
        with self.get(key) as f:
            return f.read()


def _chunks(source: BinaryIO | bytes) -> Iterator[bytes]:
    if isinstance(source, bytes | bytearray | memoryview):
        yield bytes(source)
        return
    while chunk := source.read(_CHUNK):
        yield chunk
