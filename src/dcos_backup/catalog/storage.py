"""The backup catalog on an object store: a record ``<id>.json`` and a folder ``<id>/`` of archives per backup.

:class:`Storage` keeps backups in any :class:`~dcos_backup.storage.base.ObjectStore`: a local directory
(``LocalStorage``, the seed's default, on the master's disk) or an S3 bucket, where list, show and restore
need nothing on the master's disk. The catalog is never kept in ZooKeeper, so restoring ZooKeeper can never
erase the list of backups. Every object is written whole or not at all (the store's guarantee): a crash or a
failed upload leaves nothing that looks finished, and a record says READY only after its archives exist.

A storage given an encryption key (:mod:`dcos_backup.storage.crypto`) encrypts every archive it writes; it
reads encrypted and clear archives alike (told apart by their first bytes), so backups made before the key
still restore. Archive streams are :class:`~dcos_backup.fsutil.Sink` / :class:`~dcos_backup.fsutil.Source`:
the size and sha256 they report are those of the bytes at rest.

A damaged entry (a ``backup.json`` that is not JSON, fails the record's validation, names another id than
its folder, or whatever else stops it loading) never fails the catalog: :meth:`Storage.read` raises
:class:`DamagedEntry` (422) for it, :meth:`Storage.list_records` lists it quarantined
(:meth:`~.models.BackupRecord.quarantined`: STATUS_ERROR with ``damaged``), it is logged once per
process, it can be deleted, and it is never written back. A storage given the cluster's record key
(:mod:`.signing`) signs every record it writes and treats one whose signature does not verify as damaged;
:meth:`Storage.adopt_catalog` signs the records written before the key existed (once, when it is made).

What a restore applies must be the bytes whose sha256 it checked, whatever happens to the stored object
meanwhile (replaced, rewritten in place, another S3 version): :meth:`Storage.checked_archive` copies the
stored bytes into a private, unlinked spool file while it checks them, and every later read of the
restore (difference, verification) comes from that spool.

A list costs one listing of the store's top level, whatever else shares the store: records are top-level
objects, so the listing that names every backup also gives each record's version (S3's ETag), and a
record this process read before at that version is served from a cache of record bytes (bounded) instead of
another GET: a list of 10,000 unchanged backups is about twenty listing pages (a record and a folder each)
and no GET. The bytes are parsed and their signature checked on every use, as if just read. Catalogs of the
first layout kept each record in its folder (``<id>/backup.json``): such a record is still read (one GET per
list), and the leading service moves it to ``<id>.json`` when it takes over
(:meth:`Storage.move_legacy_records`).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

from dcos_backup.catalog.archive import ArchiveSummary, verify_archive
from dcos_backup.catalog.ids import could_begin_id, is_backup_id, valid_archive_name, validate_backup_id
from dcos_backup.catalog.models import BackupRecord
from dcos_backup.catalog.signing import RecordKey, sign, signature_problem
from dcos_backup.errors import IntegrityError, NotFound, StorageError, UsageError
from dcos_backup.fsutil import HashingReader, Sink, Source, TeeReader
from dcos_backup.storage.base import ObjectStore, check_key
from dcos_backup.storage.crypto import EncryptingWriter, EncryptionKey, plain_reader
from dcos_backup.storage.local import LocalStore
from dcos_backup.storage.locations import open_store
from dcos_backup.storage.s3 import is_s3_url

T = TypeVar("T")
R = TypeVar("R")
RECORD_SUFFIX = ".json"  # a backup's record is <id>.json at the catalog's top level
RECORD_FILE = "backup.json"  # where the first layout kept it: <id>/backup.json (still read, moved when led)
# Record bytes kept by version (about 1.5 KB each): 50,000 backups' worth at most, about 75 MB.
RECORD_CACHE = 50_000
# Records a listing reads at once: S3 answers each GET in milliseconds, mostly waiting (measured on moto:
# 8 at once read 2.5x as many records a second as one at a time; 16 no more than 8).
LIST_READERS = 8
log = logging.getLogger(__name__)


class DamagedEntry(IntegrityError):
    """A catalog entry that cannot be trusted: listed as damaged, 422 on any use but delete."""

    code = "damaged_entry"

    def __init__(self, backup_id: str, reason: str) -> None:
        super().__init__(f"backup {backup_id} is a damaged catalog entry ({reason}); it can only be deleted")
        self.backup_id = backup_id
        self.reason = reason


@dataclass(frozen=True)
class Listed:
    """A backup as the catalog's listing names it: its record's version (None: unknown, read it), and
    whether the record can only be in its folder (the first layout)."""

    backup_id: str
    version: str | None
    in_folder: bool = False


class CheckedArchive:
    """An archive whose stored bytes passed their sha256 and structure check (:attr:`summary`), kept in a
    private spool: :meth:`reader` streams exactly those bytes again, as often as needed (one at a time)."""

    def __init__(self, spool: BinaryIO, key: EncryptionKey | None, what: str, summary: ArchiveSummary) -> None:
        self._spool = spool
        self._key = key
        self._what = what
        self.summary = summary

    @contextlib.contextmanager
    def reader(self) -> Iterator[Source]:
        """The archive's plain bytes (decrypted if it is encrypted), from the checked copy."""
        self._spool.flush()
        self._spool.seek(0)
        yield plain_reader(HashingReader(self._spool), self._key, self._what)


class Storage:
    """The operations the service needs from a backup store, on ``objects``."""

    def __init__(
        self, objects: ObjectStore, key: EncryptionKey | None = None, record_key: RecordKey | None = None
    ) -> None:
        self.objects = objects
        self.key = key
        self.record_key = record_key
        self.url = objects.url
        self._reported: set[tuple[str, str]] = set()  # damaged entries already logged by this process
        self._cache: OrderedDict[str, tuple[str, bytes]] = OrderedDict()  # id -> (version, record bytes)
        self._cache_lock = threading.Lock()  # a list reads records on several threads
        self._legacy: set[str] = set()  # ids this process read from <id>/backup.json

    def _key(self, backup_id: str, name: str) -> str:
        return f"{validate_backup_id(backup_id)}/{name}"

    def record_object(self, backup_id: str) -> str:
        """The object that holds the record of ``backup_id``."""
        return validate_backup_id(backup_id) + RECORD_SUFFIX

    def list_records(self, prefix: str = "") -> list[BackupRecord]:
        """The records whose id starts with ``prefix``, oldest first; damaged entries quarantined among them."""
        return sorted(self.iter_records(prefix), key=lambda r: r.timestamp)

    def iter_records(self, prefix: str = "") -> Iterator[BackupRecord]:
        """The records whose id starts with ``prefix``, in id order, as they are read (a few at a time:
        memory stays flat however many there are); damaged entries quarantined among them.

        What this costs is the catalog's, never the bucket's: a full id reads its one record and lists
        nothing (an id is never the prefix of another), which is every ``show`` and every ``--wait`` poll;
        any other prefix lists only the top-level folders starting with it (an archive repository sharing
        the store is one folder, however many objects it holds) and reads the record of each folder named
        like a backup id; a prefix no id can start with lists nothing."""
        if is_backup_id(prefix):
            # A storage error here is the answer's (as a failed listing is), never an entry "unreadable now":
            # a client polling one backup must not take an outage for the backup's end.
            with contextlib.suppress(NotFound):
                yield self.entry(prefix)
            return
        if not could_begin_id(prefix):
            return
        for record in read_ahead(self._listed, self._listed_ids(prefix), LIST_READERS):
            if record is not None:
                yield record

    def _listed_ids(self, prefix: str = "") -> Iterator[Listed]:
        """Each backup whose id starts with ``prefix``, in id order, from one listing of the store's top level."""
        recorded = None
        for entry in self.objects.top_level(prefix):
            backup_id = entry.name.removesuffix(RECORD_SUFFIX)
            if not entry.folder and entry.name.endswith(RECORD_SUFFIX) and is_backup_id(backup_id):
                recorded = backup_id
                yield Listed(backup_id, entry.version)
            elif entry.folder and is_backup_id(entry.name) and entry.name != recorded:
                # <id>.json comes right before <id>/ in a listing (TopEntry.order): a folder after no record
                # of its own is a backup of the first layout, or archives a delete left behind (no record).
                yield Listed(entry.name, None, in_folder=True)

    def _listed(self, listed: Listed) -> BackupRecord | None:
        """The entry as a list shows it (None if it went meanwhile): one that cannot be read now (a storage
        error) is listed as unreadable, so one bad entry never fails the whole list."""
        backup_id = listed.backup_id
        try:
            return self.entry(backup_id, listed.version)
        except NotFound:  # deleted while listing, or a folder named like a backup that holds no record
            return None
        except StorageError as exc:
            log.warning("catalog entry %s unreadable now: %s", backup_id, exc)
            return BackupRecord.quarantined(backup_id, f"unreadable now ({exc})")

    def read(self, backup_id: str, version: str | None = None) -> BackupRecord:
        """The record of ``backup_id``; NotFound, or DamagedEntry if it cannot be trusted. Given the
        ``version`` a listing saw, bytes this process read before at that version are used again."""
        record = self._load(backup_id, version)
        problem = signature_problem(self.record_key, record) if self.record_key is not None else None
        if problem is not None:
            raise self._damaged(backup_id, problem)
        return record

    def _load(self, backup_id: str, version: str | None = None) -> BackupRecord:
        """The record of ``backup_id`` if it loads whole and valid under its own id (signature unchecked)."""
        raw = self._record_bytes(backup_id, version)
        try:
            record = BackupRecord.model_validate_json(raw)
        except Exception as exc:
            raise self._damaged(backup_id, _why(exc)) from exc
        if record.id != backup_id:
            raise self._damaged(backup_id, f"its id {record.id!r:.80} is not its folder's")
        if record.damaged is not None:
            raise self._damaged(backup_id, "it says it is damaged")
        return record

    def _record_bytes(self, backup_id: str, version: str | None) -> bytes:
        """The stored bytes of the record: from the cache if they are at ``version``, else read (and kept
        if the store gave their version)."""
        if version is not None:
            with self._cache_lock:
                cached = self._cache.get(backup_id)
                if cached is not None and cached[0] == version:
                    self._cache.move_to_end(backup_id)
                    return cached[1]
        try:
            raw, current = self.objects.get_versioned(self.record_object(backup_id))
        except NotFound:
            return self._legacy_record_bytes(backup_id)
        if current is None:
            return raw
        with self._cache_lock:
            self._cache[backup_id] = (current, raw)
            self._cache.move_to_end(backup_id)
            while len(self._cache) > RECORD_CACHE:
                self._cache.popitem(last=False)
        return raw

    def _legacy_record_bytes(self, backup_id: str) -> bytes:
        try:
            raw = self.objects.get_bytes(self._key(backup_id, RECORD_FILE))
        except NotFound as exc:
            raise NotFound(f"no backup with id {backup_id!r}") from exc
        self._legacy.add(backup_id)
        return raw

    def entry(self, backup_id: str, version: str | None = None) -> BackupRecord:
        """The record of ``backup_id``, or its quarantined stand-in if it is damaged; NotFound if absent."""
        try:
            return self.read(backup_id, version)
        except DamagedEntry as exc:
            return BackupRecord.quarantined(backup_id, exc.reason)

    def _damaged(self, backup_id: str, reason: str) -> DamagedEntry:
        if (backup_id, reason) not in self._reported:
            self._reported.add((backup_id, reason))
            log.warning("quarantined the damaged catalog entry %s in %s: %s", backup_id, self.url, reason)
        return DamagedEntry(backup_id, reason)

    def write(self, record: BackupRecord) -> None:
        """Replace the record atomically (a reader sees the old one or the new one)."""
        if record.damaged is not None:
            raise IntegrityError(f"backup {record.id} is a damaged catalog entry: it is never written back")
        if self.record_key is not None:
            sign(self.record_key, record)
        self.objects.put(self.record_object(record.id), record.model_dump_json(indent=2).encode())
        if record.id in self._legacy:  # its first-layout copy is stale now: never leave two that differ
            self.objects.delete(self._key(record.id, RECORD_FILE))
            self._legacy.discard(record.id)

    def adopt_catalog(self) -> list[str]:
        """Sign every sound record whose signature does not verify under this storage's record key (written
        before the key existed, or under a key since lost): the ids signed. Called once, when the key is
        made (trust on first use); from then on such a record is damaged."""
        if self.record_key is None:
            return []
        signed = []
        for listed in self._listed_ids():
            backup_id = listed.backup_id
            with contextlib.suppress(NotFound, DamagedEntry):
                record = self._load(backup_id)
                if signature_problem(self.record_key, record) is not None:
                    self.write(record)
                    signed.append(backup_id)
        return signed

    def move_legacy_records(self) -> list[str]:
        """Move every record of the first layout (``<id>/backup.json``) to ``<id>.json``, byte for byte (a
        damaged one stays damaged, a signed one stays signed): the ids moved. Only the leading service calls
        it, before it runs any job: it alone writes records, so nothing newer can be overwritten."""
        moved = []
        for listed in self._listed_ids():
            if not listed.in_folder:
                continue
            backup_id = listed.backup_id
            legacy = self._key(backup_id, RECORD_FILE)
            with contextlib.suppress(NotFound):  # a folder with no record: archives a delete left behind
                self.objects.put(self.record_object(backup_id), self.objects.get_bytes(legacy))
                self.objects.delete(legacy)
                self._legacy.discard(backup_id)
                moved.append(backup_id)
        return moved

    def delete(self, backup_id: str) -> None:
        """Delete the record, then every object in the backup's folder. Every key is checked before
        anything goes: a folder holding an object this store cannot delete by key (IntegrityError, naming
        it) keeps its record, so the backup stays listed and can be deleted once that object is removed."""
        legacy = self._key(backup_id, RECORD_FILE)
        self.entry(backup_id)  # NotFound for an unknown id; a damaged entry is deleted like any other
        keys = [info.key for info in self.objects.list(f"{backup_id}/")]
        for key in keys:
            try:
                check_key(key)
            except UsageError as exc:
                raise IntegrityError(
                    f"backup {backup_id} was not deleted: its folder holds {key!r:.120}, which is no name this "
                    "service writes; remove that object from the storage by hand, then delete the backup"
                ) from exc
        # Drop the record first (a first-layout copy before it, so that no older copy outlives it): a crash
        # half-way leaves orphan archives, never a record without data.
        if legacy in keys:
            self.objects.delete(legacy)
        self.objects.delete(self.record_object(backup_id))
        with self._cache_lock:
            self._cache.pop(backup_id, None)
        for key in keys:
            if key != legacy:
                self.objects.delete(key)

    @contextlib.contextmanager
    def archive_writer(self, backup_id: str, name: str) -> Iterator[Sink]:
        """A sink for a new archive; it is stored (and visible) only if the block ends without an error."""
        with self.objects.writer(self._key(backup_id, name)) as stored:
            sink = EncryptingWriter(stored, self.key) if self.key is not None else stored
            yield sink
            sink.finish()

    @contextlib.contextmanager
    def archive_reader(self, backup_id: str, name: str) -> Iterator[Source]:
        """The archive's plain bytes (decrypted if it is encrypted); EncryptionKeyError without its key."""
        if not valid_archive_name(name):  # records refuse such names too; this is the last line
            raise IntegrityError(f"archive {name!r:.80} of backup {backup_id} is not a file in its folder")
        try:
            raw = self.objects.get(self._key(backup_id, name))
        except NotFound as exc:
            raise IntegrityError(f"archive {name} of backup {backup_id} is missing") from exc
        with raw:
            yield plain_reader(HashingReader(raw), self.key, f"archive {name} of backup {backup_id}")

    @contextlib.contextmanager
    def checked_archive(
        self, backup_id: str, name: str, sha256: str | None, root: str | None = None
    ) -> Iterator[CheckedArchive]:
        """The archive, checked against ``sha256`` (IntegrityError on a mismatch or any damage; given ``root``,
        on a node outside it) in the same pass that copies it into a private spool; the spool goes when the
        block ends."""
        what = f"archive {name} of backup {backup_id}"
        try:
            raw = self.objects.get(self._key(backup_id, name))
        except NotFound as exc:
            raise IntegrityError(f"{what} is missing") from exc
        with tempfile.TemporaryFile() as spool:
            with raw:
                summary = verify_archive(
                    plain_reader(HashingReader(TeeReader(raw, spool.write)), self.key, what), sha256, root
                )
            yield CheckedArchive(spool, self.key, what, summary)

    def remove_partials(self, backup_id: str) -> None:
        """Drop what an interrupted backup left half-written (files, unfinished uploads)."""
        self.objects.remove_partials(f"{validate_backup_id(backup_id)}/")

    def remove_stale_partials(self) -> int:
        """At a service's start: drop what a killed process left half-written anywhere in the catalog (an
        upload's partial archive, say); how many. Not on S3, where another master's service may be writing
        at that moment (its unfinished multipart uploads are never listed; a bucket lifecycle rule
        aborting stale ones reclaims their space)."""
        return 0


class LocalStorage(Storage):
    """The catalog in a directory of the master's disk."""

    def __init__(self, root: Path, key: EncryptionKey | None = None, record_key: RecordKey | None = None) -> None:
        self.root = Path(root)
        super().__init__(LocalStore(self.root), key, record_key)

    def archive_path(self, backup_id: str, name: str) -> Path:
        return self.root / self._key(backup_id, name)

    def remove_stale_partials(self) -> int:
        return self.objects.remove_partials()


def read_ahead(read: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """``read(item)`` for each of ``items``, in their order, ``workers`` at a time on threads of their own;
    at most a few times ``workers`` results wait to be taken, so memory stays bounded however many items
    there are. An error of ``read`` is raised where its result would have been yielded."""
    pool = ThreadPoolExecutor(workers, thread_name_prefix="catalog-read")
    window: deque[Future[R]] = deque()
    try:
        for item in items:
            window.append(pool.submit(read, item))
            if len(window) >= 4 * workers:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _why(exc: Exception) -> str:
    """One line on why an entry did not load: the first validation error, or the exception's own line."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0] if errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return f"{where or 'record'}: {str(first.get('msg', exc)).removeprefix('Value error, ')}"[:200]
    return f"{type(exc).__name__}: {exc}"[:200]


def open_storage(
    location: str,
    endpoint_url: str | None = None,
    key: EncryptionKey | None = None,
    record_key: RecordKey | None = None,
) -> Storage:
    """The catalog at ``location``: a directory or ``s3://bucket/prefix`` (with an S3 endpoint URL)."""
    if is_s3_url(location):
        return Storage(open_store(location, endpoint_url=endpoint_url), key, record_key)
    return LocalStorage(Path(location.removeprefix("file://")), key, record_key)
