"""Where backups live: ``<root>/<id>/backup.json`` plus one archive per component.

``LocalStorage`` keeps them on the master's disk (the seed's default). The catalog is never kept in
ZooKeeper, so restoring ZooKeeper can never erase the list of backups. Metadata is written atomically
(temp file, fsync, rename, fsync of the directory); archives are written under a ``.partial`` name and
renamed only when complete, so a crash leaves nothing that looks finished.

A storage given an encryption key (:mod:`.crypto`) encrypts every archive it writes; it reads encrypted
and clear archives alike (told apart by their first bytes), so backups made before the key still restore.
Archive streams are :class:`~dcos_backup.fsutil.Sink` / :class:`~dcos_backup.fsutil.Source`: the size and
sha256 they report are those of the bytes at rest.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path

from pydantic import ValidationError

from dcos_backup.catalog.crypto import EncryptingWriter, EncryptionKey, plain_reader
from dcos_backup.catalog.ids import validate_backup_id
from dcos_backup.catalog.models import BackupRecord
from dcos_backup.errors import IntegrityError, NotFound, StorageError
from dcos_backup.fsutil import HashingReader, HashingWriter, Sink, Source, fsync_dir

RECORD_FILE = "backup.json"
PARTIAL_SUFFIX = ".partial"


def storage_error(action: str, exc: OSError) -> StorageError:
    if exc.errno == errno.ENOSPC:
        return StorageError(f"no space left on the backup storage while {action}")
    return StorageError(f"backup storage failed while {action}: {exc.strerror or exc}")


class Storage(ABC):
    """The operations the service needs from a backup store."""

    @abstractmethod
    def list_records(self, prefix: str = "") -> list[BackupRecord]:
        """The records whose id starts with ``prefix``, oldest first."""

    @abstractmethod
    def read(self, backup_id: str) -> BackupRecord: ...

    @abstractmethod
    def write(self, record: BackupRecord) -> None: ...

    @abstractmethod
    def delete(self, backup_id: str) -> None: ...

    @abstractmethod
    @contextlib.contextmanager
    def archive_writer(self, backup_id: str, name: str) -> Iterator[Sink]:
        """A sink for a new archive; it is stored (and visible) only if the block ends without an error."""

    @abstractmethod
    @contextlib.contextmanager
    def archive_reader(self, backup_id: str, name: str) -> Iterator[Source]:
        """The archive's plain bytes (decrypted if it is encrypted); EncryptionKeyError without its key."""

    @abstractmethod
    def remove_partials(self, backup_id: str) -> None: ...


class LocalStorage(Storage):
    def __init__(self, root: Path, key: EncryptionKey | None = None) -> None:
        self.root = Path(root)
        self.key = key
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise storage_error(f"creating {self.root}", exc) from exc

    def _dir(self, backup_id: str) -> Path:
        return self.root / validate_backup_id(backup_id)

    def list_records(self, prefix: str = "") -> list[BackupRecord]:
        records = []
        for entry in sorted(self.root.iterdir()):
            # The prefix is matched on directory names, so only the matching records are read.
            if entry.name.startswith(prefix) and (entry / RECORD_FILE).is_file():
                with contextlib.suppress(NotFound, IntegrityError):
                    records.append(self.read(entry.name))
        return sorted(records, key=lambda r: r.timestamp)

    def read(self, backup_id: str) -> BackupRecord:
        path = self._dir(backup_id) / RECORD_FILE
        try:
            return BackupRecord.model_validate_json(path.read_bytes())
        except FileNotFoundError as exc:
            raise NotFound(f"no backup with id {backup_id!r}") from exc
        except ValidationError as exc:
            raise IntegrityError(f"catalog entry {path} is unreadable") from exc
        except OSError as exc:
            raise storage_error(f"reading {path}", exc) from exc

    def write(self, record: BackupRecord) -> None:
        directory = self._dir(record.id)
        tmp = directory / (RECORD_FILE + ".tmp")
        try:
            directory.mkdir(exist_ok=True, mode=0o700)
            with open(tmp, "wb") as f:
                f.write(record.model_dump_json(indent=2).encode())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, directory / RECORD_FILE)
            fsync_dir(directory)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise storage_error(f"writing the catalog entry of {record.id}", exc) from exc

    def delete(self, backup_id: str) -> None:
        directory = self._dir(backup_id)
        if not (directory / RECORD_FILE).exists():
            raise NotFound(f"no backup with id {backup_id!r}")
        # Drop the record first: a crash half-way leaves an orphan directory, never a record without data.
        (directory / RECORD_FILE).unlink()
        shutil.rmtree(directory, ignore_errors=True)

    def archive_path(self, backup_id: str, name: str) -> Path:
        return self._dir(backup_id) / name

    @contextlib.contextmanager
    def archive_writer(self, backup_id: str, name: str) -> Iterator[Sink]:
        final = self.archive_path(backup_id, name)
        partial = final.with_name(final.name + PARTIAL_SUFFIX)
        try:
            final.parent.mkdir(exist_ok=True, mode=0o700)
            with open(partial, "wb") as f:
                stored: Sink = HashingWriter(f)
                sink = EncryptingWriter(stored, self.key) if self.key is not None else stored
                yield sink
                sink.finish()
                os.fsync(f.fileno())
            os.replace(partial, final)
            fsync_dir(final.parent)
        except OSError as exc:
            with contextlib.suppress(OSError):
                partial.unlink()
            raise storage_error(f"writing archive {name} of {backup_id}", exc) from exc
        except BaseException:
            with contextlib.suppress(OSError):
                partial.unlink()
            raise

    @contextlib.contextmanager
    def archive_reader(self, backup_id: str, name: str) -> Iterator[Source]:
        path = self.archive_path(backup_id, name)
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed below, after the caller is done
        except FileNotFoundError as exc:
            raise IntegrityError(f"archive {name} of backup {backup_id} is missing") from exc
        except OSError as exc:
            raise storage_error(f"opening archive {name} of {backup_id}", exc) from exc
        with f:
            yield plain_reader(HashingReader(f), self.key, f"archive {name} of backup {backup_id}")

    def remove_partials(self, backup_id: str) -> None:
        directory = self._dir(backup_id)
        for partial in directory.glob(f"*{PARTIAL_SUFFIX}"):
            partial.unlink(missing_ok=True)
