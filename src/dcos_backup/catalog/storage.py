"""The backup catalog on an object store: ``<id>/backup.json`` plus one archive per component.

:class:`Storage` keeps backups in any :class:`~.objects.ObjectStore`: a local directory (``LocalStorage``,
the seed's default, on the master's disk) or an S3 bucket, where list, show and restore need nothing on
the master's disk. The catalog is never kept in ZooKeeper, so restoring ZooKeeper can never erase the
list of backups. Every object is written whole or not at all (the store's guarantee): a crash or a
failed upload leaves nothing that looks finished, and a record says READY only after its archives exist.

A storage given an encryption key (:mod:`.crypto`) encrypts every archive it writes; it reads encrypted
and clear archives alike (told apart by their first bytes), so backups made before the key still restore.
Archive streams are :class:`~dcos_backup.fsutil.Sink` / :class:`~dcos_backup.fsutil.Source`: the size and
sha256 they report are those of the bytes at rest.

What a restore applies must be the bytes whose sha256 it checked, whatever happens to the stored object
meanwhile (replaced, rewritten in place, another S3 version): :meth:`Storage.checked_archive` copies the
stored bytes into a private, unlinked spool file while it checks them, and every later read of the
restore (difference, verification) comes from that spool.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from pydantic import ValidationError

from dcos_backup.catalog.archive import ArchiveSummary, verify_archive
from dcos_backup.catalog.crypto import EncryptingWriter, EncryptionKey, plain_reader
from dcos_backup.catalog.ids import is_backup_id, validate_backup_id
from dcos_backup.catalog.models import BackupRecord
from dcos_backup.catalog.objects import LocalStore, ObjectStore, open_store
from dcos_backup.errors import IntegrityError, NotFound
from dcos_backup.fsutil import HashingReader, Sink, Source

RECORD_FILE = "backup.json"


class _Tee:
    """A stored object's bytes as read, copied into ``spool`` on the way."""

    def __init__(self, raw: BinaryIO, spool: BinaryIO) -> None:
        self.raw = raw
        self.spool = spool

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.spool.write(data)
        return data


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

    def __init__(self, objects: ObjectStore, key: EncryptionKey | None = None) -> None:
        self.objects = objects
        self.key = key
        self.url = objects.url

    def _key(self, backup_id: str, name: str = RECORD_FILE) -> str:
        return f"{validate_backup_id(backup_id)}/{name}"

    def list_records(self, prefix: str = "") -> list[BackupRecord]:
        """The records whose id starts with ``prefix``, oldest first (unreadable ones are left out)."""
        records = []
        for info in self.objects.list():
            backup_id, _, name = info.key.partition("/")
            if name == RECORD_FILE and backup_id.startswith(prefix) and is_backup_id(backup_id):
                with contextlib.suppress(NotFound, IntegrityError):
                    records.append(self.read(backup_id))
        return sorted(records, key=lambda r: r.timestamp)

    def read(self, backup_id: str) -> BackupRecord:
        key = self._key(backup_id)
        try:
            return BackupRecord.model_validate_json(self.objects.get_bytes(key))
        except NotFound as exc:
            raise NotFound(f"no backup with id {backup_id!r}") from exc
        except ValidationError as exc:
            raise IntegrityError(f"catalog entry {key} in {self.url} is unreadable") from exc

    def write(self, record: BackupRecord) -> None:
        """Replace the record atomically (a reader sees the old one or the new one)."""
        self.objects.put(self._key(record.id), record.model_dump_json(indent=2).encode())

    def delete(self, backup_id: str) -> None:
        record_key = self._key(backup_id)
        self.read(backup_id)  # NotFound for an unknown id
        # Drop the record first: a crash half-way leaves orphan archives, never a record without data.
        self.objects.delete(record_key)
        for info in self.objects.list(f"{backup_id}/"):
            self.objects.delete(info.key)

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
        try:
            raw = self.objects.get(self._key(backup_id, name))
        except NotFound as exc:
            raise IntegrityError(f"archive {name} of backup {backup_id} is missing") from exc
        with raw:
            yield plain_reader(HashingReader(raw), self.key, f"archive {name} of backup {backup_id}")

    @contextlib.contextmanager
    def checked_archive(self, backup_id: str, name: str, sha256: str | None) -> Iterator[CheckedArchive]:
        """The archive, checked against ``sha256`` (IntegrityError on a mismatch or any damage) in the same
        pass that copies it into a private spool; the spool goes when the block ends."""
        what = f"archive {name} of backup {backup_id}"
        try:
            raw = self.objects.get(self._key(backup_id, name))
        except NotFound as exc:
            raise IntegrityError(f"{what} is missing") from exc
        with tempfile.TemporaryFile() as spool:
            with raw:
                summary = verify_archive(plain_reader(HashingReader(_Tee(raw, spool)), self.key, what), sha256)
            yield CheckedArchive(spool, self.key, what, summary)

    def remove_partials(self, backup_id: str) -> None:
        """Drop what an interrupted backup left half-written (files, unfinished uploads)."""
        self.objects.remove_partials(f"{validate_backup_id(backup_id)}/")


class LocalStorage(Storage):
    """The catalog in a directory of the master's disk."""

    def __init__(self, root: Path, key: EncryptionKey | None = None) -> None:
        self.root = Path(root)
        super().__init__(LocalStore(self.root), key)

    def archive_path(self, backup_id: str, name: str) -> Path:
        return self.root / self._key(backup_id, name)


def open_storage(location: str, endpoint_url: str | None = None, key: EncryptionKey | None = None) -> Storage:
    """The catalog at ``location``: a directory or ``s3://bucket/prefix`` (with an S3 endpoint URL)."""
    if location.startswith("s3://"):
        return Storage(open_store(location, endpoint_url=endpoint_url), key)
    return LocalStorage(Path(location.removeprefix("file://")), key)
