"""Checking and reading what a ZooKeeper backup would restore (``dcos-zk verify`` and ``dcos-zk dump``).

An archive is extracted (after :mod:`.tarsafe` accepted it) into a private temporary directory, then
:mod:`.replay` rebuilds its tree there in SQLite: every checksum, the transaction sequence and
ZooKeeper's own tree digests are checked on the way. Nothing is held in memory but one record.

A backup checks what it writes while it writes it (:class:`StreamVerifier`): the files the replay needs
(the newest snapshot, the logs after it) go, byte for byte as they enter the archive, through a pipe to
a replay in a process of its own, so that the check runs on the second core beside the compression
instead of after it (a replay is Python, and would otherwise share one core with the archiving).
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import io
import json
import logging
import queue
import shutil
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from dcos_backup.errors import IntegrityError, NotFound
from dcos_backup.fsutil import storage_error
from dcos_backup.master.layout import MasterLayout
from dcos_backup.master.processes import python_module_command
from dcos_backup.physical import formats, tarsafe
from dcos_backup.physical.replay import DataFile, ReplayResult, TreeStore, replay, replay_files, replay_plan

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

log = logging.getLogger(__name__)


@dataclass
class VerifyResult(ReplayResult):
    archive: str = ""
    seconds: float = 0.0


def _new_workspace(tmp_dir: Path | None) -> Path:
    try:
        work = Path(tempfile.mkdtemp(prefix=".dcos-zk-verify-", dir=tmp_dir))
        work.chmod(0o700)  # the extracted data may hold secrets (digest ACLs, credentials in znodes)
    except OSError as exc:
        raise storage_error(exc, "creating a temporary directory", Path(tmp_dir or tempfile.gettempdir())) from exc
    return work


@contextlib.contextmanager
def _disk_full_named(work: Path) -> Iterator[None]:
    try:
        yield
    except sqlite3.OperationalError as exc:  # the rebuilt tree's store: "database or disk is full"
        if "full" not in str(exc):
            raise
        raise storage_error(OSError(errno.ENOSPC, str(exc)), "checking the data", work.parent) from exc


@contextlib.contextmanager
def _workspace(tmp_dir: Path | None) -> Iterator[Path]:
    work = _new_workspace(tmp_dir)
    try:
        with _disk_full_named(work):
            yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def rebuilt_data_dir(
    layout: MasterLayout, tmp_dir: Path | None = None, keep_data: bool = True
) -> Iterator[tuple[TreeStore, ReplayResult]]:
    """The tree of ``layout``'s ``zookeeper/`` directory, rebuilt and checked; the store lives until exit."""
    with _workspace(tmp_dir) as work:
        store = TreeStore(work / "tree.sqlite", keep_data)
        try:
            yield store, replay(layout, store)
        finally:
            store.close()


@contextlib.contextmanager
def rebuilt_archive(
    archive: Path, tmp_dir: Path | None = None, keep_data: bool = True, progress: tarsafe.Progress | None = None
) -> Iterator[tuple[TreeStore, ReplayResult]]:
    """The tree a ``dcos-zk`` archive would restore, rebuilt and checked; the store lives until exit."""
    archive = Path(archive)
    if not archive.is_file():
        raise NotFound(f"{archive} does not exist or is not a file")
    with _workspace(tmp_dir) as work:
        log.info("checking and extracting %s", archive)
        members = tarsafe.validate(archive, into=work, progress=progress)
        if progress is not None:
            progress("replaying the data", sum(not m.is_dir for m in members), sum(m.size for m in members))
        # The archive holds the zookeeper/ part of a master's layout; extracted, work is laid out as one.
        with rebuilt_data_dir(MasterLayout(work), work, keep_data) as rebuilt:
            yield rebuilt


class StreamVerifier:
    """A replay, in a process of its own, fed with files' bytes as they are written somewhere else.

    For each file the replay reads (the snapshot first, then the logs in order): :meth:`begin`, its bytes
    in any number of :meth:`feed` calls, :meth:`end`. Then :meth:`finish` returns the replay's result or
    raises IntegrityError with its reason. Bytes go over a pipe from a thread, so a slower replay holds
    the writer back by at most ``_QUEUE`` chunks, never more memory than that.
    """

    _QUEUE = 32
    _LENGTH = struct.Struct(">I")

    def __init__(self, tmp_dir: Path | None = None) -> None:
        self.started = time.monotonic()
        # The replay's workspace is this process's to make and to remove: abort() kills the replay, which
        # then never runs its own clean-up (a killed replay left its directory behind on a full disk).
        self._work = _new_workspace(tmp_dir)
        try:
            self._proc = subprocess.Popen(
                python_module_command(__name__, str(self._work)), stdin=subprocess.PIPE, stdout=subprocess.PIPE
            )
        except BaseException:
            shutil.rmtree(self._work, ignore_errors=True)
            raise
        self._queue: queue.Queue[bytes | None] = queue.Queue(self._QUEUE)
        self._feeder = threading.Thread(target=self._pump, name="verify-feed", daemon=True)
        self._feeder.start()

    @classmethod
    def for_data_dir(cls, layout: MasterLayout, tmp_dir: Path | None = None) -> tuple[StreamVerifier, list[Path]]:
        """A verifier for what ZooKeeper would load from ``layout``, and those files in the order to feed them."""
        snapshot, logs = replay_plan(layout)
        files = [layout.snapshots_dir / snapshot.name, *(layout.logs_dir / f.name for f in logs)]
        return cls(tmp_dir), files

    def _pump(self) -> None:
        assert self._proc.stdin is not None
        try:
            while (chunk := self._queue.get()) is not None:
                self._proc.stdin.write(chunk)
            self._proc.stdin.close()
        except (BrokenPipeError, OSError):
            while self._queue.get() is not None:  # the replay stopped (it found a problem): drain
                pass

    def begin(self, name: str) -> None:
        """A new file: ``snapshot.<zxid>`` (first) or ``log.<zxid>``."""
        self._queue.put(name.encode() + b"\n")

    def feed(self, chunk: bytes) -> None:
        if chunk:
            self._queue.put(self._LENGTH.pack(len(chunk)) + chunk)

    def end(self) -> None:
        self._queue.put(self._LENGTH.pack(0))

    def finish(self, archive: str = "") -> VerifyResult:
        self._queue.put(None)
        self._feeder.join()
        assert self._proc.stdout is not None
        out = self._proc.stdout.read()
        self._proc.wait()
        shutil.rmtree(self._work, ignore_errors=True)
        try:
            doc = json.loads(out)
        except ValueError:
            raise IntegrityError(f"the check of the data died (exit code {self._proc.returncode})") from None
        if "error" in doc:
            raise IntegrityError(doc["error"])
        return VerifyResult(**doc, archive=archive, seconds=time.monotonic() - self.started)

    def abort(self) -> None:
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        self._proc.kill()
        self._proc.wait()
        self._feeder.join(timeout=10)
        shutil.rmtree(self._work, ignore_errors=True)


class _Chunked(io.RawIOBase):
    """One file of a :class:`StreamVerifier`'s stream: length-prefixed chunks up to an empty one."""

    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self._left = 0
        self._done = False

    def readable(self) -> bool:
        return True

    def _next_chunk(self) -> None:
        head = self._source.read(StreamVerifier._LENGTH.size)
        self._left = StreamVerifier._LENGTH.unpack(head)[0] if len(head) == StreamVerifier._LENGTH.size else 0
        self._done = self._left == 0

    def readinto(self, buffer: WriteableBuffer) -> int:
        while not self._left and not self._done:
            self._next_chunk()
        if self._done:
            return 0
        view = memoryview(buffer)
        n: int = self._source.readinto(view[: min(len(view), self._left)])  # type: ignore[attr-defined]  # a pipe
        if not n:
            self._done = True  # the writer died mid-file: the reader sees the file end here
        self._left -= n
        return n

    def close(self) -> None:
        while not self._done:  # skip what the reader did not want, up to the file's end
            if not self._left:
                self._next_chunk()
                continue
            skipped = self._source.read(min(self._left, 1 << 20))
            self._left -= len(skipped)
            self._done = not skipped
        super().close()


def _piped_files(source: BinaryIO) -> Iterator[DataFile]:
    while header := source.readline():
        name = header.decode().strip()

        @contextlib.contextmanager
        def opened(name: str = name) -> Iterator[BinaryIO]:
            raw = io.BufferedReader(_Chunked(source), 1 << 20)
            with raw, gzip.GzipFile(fileobj=raw) if name.endswith(".gz") else raw as f:
                yield f  # type: ignore[misc]

        yield DataFile(formats.zxid_of_name(name) or 0, name, opened)


def _serve_stream(work: Path) -> None:
    """The replay side of :class:`StreamVerifier`: files on stdin, the result (or the error) on stdout; its
    store in ``work``, which the verifier made and removes."""
    source = sys.stdin.buffer
    files = _piped_files(source)
    try:
        with _disk_full_named(work):
            store = TreeStore(work / "tree.sqlite", keep_data=False)
            try:
                snapshot = next(files, None)
                if snapshot is None:
                    raise IntegrityError("no complete snapshot in the data (snapshot/version-2/snapshot.*)")
                doc = replay_files(store, snapshot, files).to_dict()
            finally:
                store.close()
    except IntegrityError as exc:
        doc = {"error": str(exc)}
    sys.stdout.write(json.dumps(doc))


def verify_data_archive(
    archive: Path, tmp_dir: Path | None = None, progress: tarsafe.Progress | None = None
) -> VerifyResult:
    """Check everything in an archive; IntegrityError with the reason on the first problem."""
    started = time.monotonic()
    with rebuilt_archive(archive, tmp_dir, keep_data=False, progress=progress) as (_, result):
        fields = result.to_dict()
    return VerifyResult(**fields, archive=str(archive), seconds=time.monotonic() - started)


if __name__ == "__main__":
    _serve_stream(Path(sys.argv[1]))
