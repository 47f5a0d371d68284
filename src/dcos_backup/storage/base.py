"""Where backups and continuous archives live: one small object store interface, two backends.

The backup catalog (:mod:`.storage`) and the ZooKeeper archive repository (``zkdata/continuous``) use
nothing but these operations, so both work on a local directory and on S3-compatible storage alike:

- ``writer(key)``: a :class:`~dcos_backup.fsutil.Sink` for a new immutable object; the object becomes
  visible only once the block ends without an error (a reader never sees a torn object under its name,
  a failed write leaves nothing listed); ``put(key, stream)`` is the same for a readable stream;
- ``get(key)``: read it as a stream;
- ``list(prefix)``: the complete objects under a prefix, in key order, without reading them;
- ``delete(key)``; ``remove_partials(prefix)``: what a killed writer left half-written.

Keys are ``/``-separated paths of plain names. :class:`LocalStore` keeps each object as a file (written
under a hidden partial name, fsynced, renamed); :class:`S3Store` keeps it in a bucket through boto3
(multipart uploads of fixed-size parts, so memory stays bounded; an upload completes atomically, and
one that fails is aborted). :func:`open_store` reads a location: a directory, ``file://`` or ``s3://``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import uuid
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from dcos_backup.errors import MissingDependency, NotFound, StorageError, UsageError
from dcos_backup.fsutil import HashingWriter, Sink, Stored, fsync_dir

_KEY = re.compile(r"^[A-Za-z0-9_.=-][A-Za-z0-9_.=-]*(/[A-Za-z0-9_.=-]+)*$")
_CHUNK = 1 << 20
PARTIAL = ".partial-"  # hidden names of objects being written (never listed)
S3_PARTS_IN_FLIGHT = 2  # parts uploading while the next one fills: 3 part buffers at most
S3_PART = 8 << 20  # bytes per multipart part (S3 wants >= 5 MiB but the last): the one buffer an upload holds
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


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

    def path(self, key: str) -> Path:
        """Where the object ``key`` is (or will be) on disk."""
        return self._path(key)

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[Sink]:
        path = self._path(key)
        partial = path.parent / f"{PARTIAL}{uuid.uuid4().hex[:8]}.{path.name}"
        try:
            _mkdirs(self.root, path.parent)
            with open(partial, "xb") as out:
                sink = HashingWriter(out)
                yield sink
                sink.finish()
                os.fsync(out.fileno())
            os.replace(partial, path)
            fsync_dir(path.parent)
        except OSError as exc:
            with contextlib.suppress(OSError):
                partial.unlink()
            raise storage_error(f"writing {key}", exc) from exc
        except BaseException:
            with contextlib.suppress(OSError):
                partial.unlink()
            raise

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


class S3Store(ObjectStore):
    """Objects in an S3-compatible bucket under a prefix (``s3://bucket/prefix``), through boto3.

    Credentials come from the standard AWS variables and files; ``endpoint_url`` (else ``AWS_ENDPOINT_URL``)
    names a server other than AWS. An object is one ``PutObject`` if it fits in a part, else a multipart
    upload of :data:`S3_PART`-byte parts: either is visible only once complete, so nothing half-written is
    ever listed; a failed upload is aborted (and :meth:`remove_partials` aborts what a killed writer left).
    """

    def __init__(self, url: str, endpoint_url: str | None = None) -> None:
        try:
            import boto3
            from botocore.config import Config
        except ImportError as exc:  # boto3 is a dependency; a stripped install says what is missing
            raise MissingDependency("s3:// storage needs boto3: pip install boto3") from exc
        self.url = url
        self.bucket, self.prefix = parse_s3_url(url)
        config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60)
        self.client = boto3.client("s3", endpoint_url=endpoint_url, config=config)

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    @contextlib.contextmanager
    def _failures(self, action: str, key: str = "") -> Iterator[None]:
        """boto3's errors as ours: a missing object is NotFound, anything else a StorageError with S3's reason."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if error.get("Code") in ("NoSuchKey", "404", "NotFound"):
                raise NotFound(f"{key} is missing from {self.url}") from exc
            reason = f"{error.get('Code', '?')}: {error.get('Message', '')}".rstrip(": ")
            raise StorageError(f"S3 storage {self.url} failed while {action}: {reason}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"S3 storage {self.url} failed while {action}: {exc}") from exc

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[Sink]:
        sink = _S3Upload(self.client, self.bucket, self._key(key))
        try:
            with self._failures(f"writing {key}", key):
                yield sink
                sink.finish()
        except BaseException:
            with contextlib.suppress(Exception), self._failures(f"aborting {key}"):
                sink.abort()
            raise

    def get(self, key: str) -> BinaryIO:
        with self._failures(f"reading {key}", key):
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        return _S3Body(body, self, key)  # type: ignore[return-value]

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        with self._failures(f"listing {prefix or '/'}"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix
            )
            for page in pages:
                for item in page.get("Contents", ()):
                    yield ObjectInfo(item["Key"][len(self.prefix) :], item["Size"])

    def delete(self, key: str) -> None:
        with self._failures(f"deleting {key}", key):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def remove_partials(self, prefix: str = "") -> int:
        removed = 0
        with self._failures(f"aborting the uploads under {prefix or '/'}"):
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix
            )
            for page in pages:
                for upload in page.get("Uploads", ()):
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    removed += 1
        return removed


class _S3Upload(Sink):
    """One object being uploaded: bytes gather in a buffer of one part and go as one PutObject if they end
    before a part is full, else as the parts of a multipart upload. Parts upload on worker threads while
    the writer goes on (measured: sending them inline made a backup to S3 wait on every part); at most
    :data:`S3_PARTS_IN_FLIGHT` are in flight, so memory stays bounded."""

    def __init__(self, client: Any, bucket: str, key: str) -> None:
        self._client, self._bucket, self._key = client, bucket, key
        self._buffer = bytearray()
        self._hash = hashlib.sha256()
        self._size = 0
        self._upload_id: str | None = None
        self._parts: list[dict[str, object]] = []
        self._in_flight: deque[Future[dict[str, object]]] = deque()
        self._workers: ThreadPoolExecutor | None = None
        self._stored: Stored | None = None

    def write(self, data: bytes) -> int:
        self._hash.update(data)
        self._size += len(data)
        self._buffer += data
        while len(self._buffer) >= S3_PART:
            self._send_part(bytes(self._buffer[:S3_PART]))
            del self._buffer[:S3_PART]
        return len(data)

    def _send_part(self, part: bytes) -> None:
        if self._upload_id is None:
            self._upload_id = self._client.create_multipart_upload(Bucket=self._bucket, Key=self._key)["UploadId"]
            self._workers = ThreadPoolExecutor(S3_PARTS_IN_FLIGHT, thread_name_prefix="s3-part")
        assert self._workers is not None
        while len(self._in_flight) >= S3_PARTS_IN_FLIGHT:
            self._parts.append(self._in_flight.popleft().result())  # raises what the upload raised
        number = len(self._parts) + len(self._in_flight) + 1
        self._in_flight.append(self._workers.submit(self._upload_part, number, part))

    def _upload_part(self, number: int, part: bytes) -> dict[str, object]:
        reply = self._client.upload_part(
            Bucket=self._bucket, Key=self._key, UploadId=self._upload_id, PartNumber=number, Body=part
        )
        return {"PartNumber": number, "ETag": reply["ETag"]}

    def finish(self) -> Stored:
        if self._stored is not None:
            return self._stored
        if self._upload_id is None:
            self._client.put_object(Bucket=self._bucket, Key=self._key, Body=bytes(self._buffer))
        else:
            if self._buffer:
                self._send_part(bytes(self._buffer))
            while self._in_flight:
                self._parts.append(self._in_flight.popleft().result())
            self._client.complete_multipart_upload(
                Bucket=self._bucket, Key=self._key, UploadId=self._upload_id, MultipartUpload={"Parts": self._parts}
            )
            self._stop_workers()
        self._buffer = bytearray()
        self._stored = Stored(self._size, self._hash.hexdigest())
        return self._stored

    def _stop_workers(self) -> None:
        if self._workers is not None:
            self._workers.shutdown(wait=True, cancel_futures=True)
            self._workers = None
        self._in_flight.clear()

    def abort(self) -> None:
        self._stop_workers()
        if self._upload_id is not None and self._stored is None:
            self._client.abort_multipart_upload(Bucket=self._bucket, Key=self._key, UploadId=self._upload_id)


class _S3Body:
    """An object's body as a readable file whose failures are StorageErrors (a reset mid-read, say)."""

    def __init__(self, body: Any, store: S3Store, key: str) -> None:
        self._body, self._store, self._key = body, store, key

    def read(self, size: int = -1) -> bytes:
        with self._store._failures(f"reading {self._key}", self._key):
            return self._body.read(None if size < 0 else size)

    def close(self) -> None:
        self._body.close()

    def __enter__(self) -> _S3Body:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def is_s3_url(location: str | Path) -> bool:
    """Whether ``location`` names S3 (``s3://bucket/...``) rather than a directory or a file."""
    return str(location).startswith("s3://")


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ("bucket", "some/prefix/"); the prefix may be empty."""
    rest = url.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    if not is_s3_url(url) or not _BUCKET.fullmatch(bucket):
        raise UsageError(f"{url} is not an s3://bucket[/prefix] URL")
    prefix = prefix.strip("/")
    if prefix:
        check_key(prefix)
    return bucket, prefix + "/" if prefix else ""


def open_store(spec: str, create: bool = False, endpoint_url: str | None = None) -> ObjectStore:
    """The store a location names: ``s3://bucket/prefix``, a ``file://`` URL or a local directory."""
    if is_s3_url(spec):
        return S3Store(spec, endpoint_url)
    if "://" in spec:
        scheme, _, rest = spec.partition("://")
        if scheme != "file":
            raise UsageError(f"{spec}: {scheme}:// locations are not supported (a directory, file:// or s3:// are)")
        spec = rest
    if not spec:
        raise UsageError("a storage location is a directory, file:// or s3:// URL")
    return LocalStore(Path(spec), create=create)
