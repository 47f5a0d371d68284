"""The S3 backend: objects in an S3-compatible bucket through boto3, uploaded as streamed multipart uploads
of fixed-size parts (memory stays bounded; an upload completes atomically, one that fails is aborted)."""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import re
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

from dcos_backup.errors import MissingDependency, NotFound, StorageError, UsageError
from dcos_backup.fsutil import Sink, Stored
from dcos_backup.storage.base import ObjectInfo, ObjectStore, TopEntry, check_key

S3_PARTS_IN_FLIGHT = 2  # parts uploading while the next one fills: 3 part buffers at most
S3_PART = 8 << 20  # bytes per multipart part (S3 wants >= 5 MiB but the last): the one buffer an upload holds
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


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
            import botocore.session
            from botocore.config import Config
        except ImportError as exc:  # boto3 is a dependency; a stripped install says what is missing
            raise MissingDependency("s3:// storage needs boto3: pip install boto3") from exc
        self.url = url
        self.bucket, self.prefix = parse_s3_url(url)
        config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60)
        session = botocore.session.get_session()
        # Timestamps stay the text S3 sent: nothing here reads them, and parsing each listed object's
        # LastModified (dateutil) was 60% of the client's time for a listing page (measured, 1,000 keys a page).
        session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=str)
        self.client = boto3.Session(botocore_session=session).client("s3", endpoint_url=endpoint_url, config=config)

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
        return self._object(key)[0]  # type: ignore[return-value]

    def get_versioned(self, key: str) -> tuple[bytes, str | None]:
        body, version = self._object(key)
        with body:
            return body.read(), version

    def _object(self, key: str) -> tuple[_S3Body, str]:
        """The object's body and its ETag (the version :meth:`top_level` lists)."""
        with self._failures(f"reading {key}", key):
            reply = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        return _S3Body(reply["Body"], self, key), str(reply["ETag"])

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        with self._failures(f"listing {prefix or '/'}"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix
            )
            for page in pages:
                for item in page.get("Contents", ()):
                    yield ObjectInfo(item["Key"][len(self.prefix) :], item["Size"])

    def top_level(self, prefix: str = "") -> Iterator[TopEntry]:
        # Delimiter "/": S3 answers each folder as one CommonPrefix, however many objects it holds, and each
        # top-level object with its ETag, up to 1,000 names a page, the two lists of a page each in key order.
        start = len(self.prefix)
        with self._failures(f"listing the top level {prefix}*"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix, Delimiter="/"
            )
            for page in pages:
                folders = (
                    TopEntry(c["Prefix"][start:].removesuffix("/"), folder=True) for c in page.get("CommonPrefixes", ())
                )
                objects = (
                    TopEntry(o["Key"][start:], folder=False, version=o["ETag"]) for o in page.get("Contents", ())
                )
                yield from heapq.merge(folders, objects, key=lambda entry: entry.order)

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
            data: bytes = self._body.read(None if size < 0 else size)
            return data

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
