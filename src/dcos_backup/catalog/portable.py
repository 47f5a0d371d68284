"""Portable backups: one self-contained file holding a backup's record and its archives (docs/format.md).

The file is a plain POSIX tar (read it with any tar), streamed in both directions in bounded memory::

    dcos-backup.json        {"format": "dcos-backup-portable", "version": 1, "id": "<backup id>"}
    backup.json             the backup's record, as the catalog holds it
    <archive name>          each component's archive, byte for byte as stored (still encrypted if it was)

:func:`export_backup` yields the file of a READY backup. :func:`import_backup` reads one into a catalog
under the same id after checking it completely, to the byte: the marker (exactly its keys, the record's
id), the record (a READY backup, an id neither in the catalog nor being uploaded, no reserved archive
name), every archive present once with the size and sha256 the record names and its whole structure
(an archive this catalog cannot decrypt is refused, naming its key id), and nothing after the tar's end
but its zero blocks. The record enters as a plain READY backup (:meth:`BackupRecord.as_upload`: restore
history, safety and schedule marks dropped), since nothing but this cluster's own jobs may steer a
rollback, a pruning or a retention. Archives are stored as they arrive, the record last; on any failure
the stored archives are deleted again, so a bad file changes nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import tarfile
import threading
import time
from collections.abc import Iterator
from functools import partial
from typing import BinaryIO

from pydantic import ValidationError

from dcos_backup.catalog.archive import verify_archive
from dcos_backup.catalog.ids import is_backup_id
from dcos_backup.catalog.models import BackupRecord, Status
from dcos_backup.catalog.storage import RECORD_FILE, Storage
from dcos_backup.errors import Conflict, EncryptionKeyError, IntegrityError, NotFound

MARKER = "dcos-backup.json"
FORMAT = "dcos-backup-portable"
VERSION = 1
MAX_METADATA = 1 << 20  # bytes of the marker and of the record: anything bigger is not a backup
_CHUNK = 1 << 20
_BLOCK = tarfile.BLOCKSIZE
_TAIL = 2 * tarfile.RECORDSIZE + 2 * _BLOCK  # more than tarfile reads ahead and the longest allowed end
_UPLOADS_LOCK = threading.Lock()
_UPLOADING: set[str] = set()  # ids being uploaded to this process


def export_backup(storage: Storage, backup_id: str) -> Iterator[bytes]:
    """The portable file of a READY backup, chunk by chunk. Checks happen before the first chunk."""
    record = storage.read(backup_id)
    if record.status != Status.READY:
        raise Conflict(f"backup {backup_id} is {record.status.value}: only a READY backup can be downloaded")
    archives = [(comp.archive, comp.bytes) for comp in record.component_status.values() if comp.archive]
    return _tar_stream(storage, record, archives)


def _tar_stream(storage: Storage, record: BackupRecord, archives: list[tuple[str, int]]) -> Iterator[bytes]:
    marker = json.dumps({"format": FORMAT, "version": VERSION, "id": record.id}).encode()
    yield from _member(MARKER, len(marker), iter([marker]))
    doc = record.model_dump_json(indent=2).encode()
    yield from _member(RECORD_FILE, len(doc), iter([doc]))
    for name, size in archives:
        with storage.objects.get(f"{record.id}/{name}") as raw:
            yield from _member(name, size, iter(partial(raw.read, _CHUNK), b""))
    yield b"\0" * (2 * _BLOCK)  # the end of a tar


def _member(name: str, size: int, chunks: Iterator[bytes]) -> Iterator[bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o600, int(time.time())
    yield info.tobuf(format=tarfile.PAX_FORMAT)
    sent = 0
    for chunk in chunks:
        sent += len(chunk)
        yield chunk
    if sent != size:  # the stored archive changed under us: the file must not look complete
        raise IntegrityError(f"{name} is {sent} bytes in storage, not the {size} its record says")
    yield b"\0" * (-size % _BLOCK)


def import_backup(storage: Storage, source: BinaryIO) -> BackupRecord:
    """Add the backup in the portable file ``source`` to ``storage``; its record (as it entered: see
    :meth:`BackupRecord.as_upload`). IntegrityError if the file is not a complete backup to the byte,
    EncryptionKeyError if this catalog cannot decrypt an archive, Conflict if its id exists or is being
    uploaded; either way nothing is left stored."""
    counted = _CountingReader(source)
    try:
        with tarfile.open(fileobj=counted, mode="r|") as tar:  # type: ignore[call-overload]  # any .read() serves
            members = iter(tar)
            marked_id = _read_marker(tar, next(members, None))
            record = _read_record(tar, next(members, None), marked_id)
            with _one_upload_of(record.id):
                _refuse_existing(storage, record.id)
                stored: list[str] = []
                try:
                    _store_archives(storage, record, tar, members, stored)
                    _check_end(counted, tar.offset)
                    _check_structure(storage, record)
                    storage.write(record)
                except BaseException:
                    for name in stored:
                        with contextlib.suppress(Exception):
                            storage.objects.delete(f"{record.id}/{name}")
                    raise
    except (tarfile.TarError, EOFError) as exc:
        raise IntegrityError(f"not a dcos-backup file: {exc}") from exc
    return record


class _CountingReader:
    """The upload's bytes as tarfile reads them, counted, with the last :data:`_TAIL` of them kept: what
    follows the tar's end must be checked, and tarfile reads ahead of where it stops."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.count = 0
        self.tail = bytearray()

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.count += len(data)
        self.tail += data
        del self.tail[: max(0, len(self.tail) - _TAIL)]
        return data


def _check_end(counted: _CountingReader, end: int) -> None:
    """After the last member (at ``end``) come the tar's two zero blocks and, at most, zeros up to the
    end of a 10240-byte tar record (as tar tools pad); anything else is refused."""
    padded = -(end + 2 * _BLOCK) % tarfile.RECORDSIZE + 2 * _BLOCK
    while counted.count - end <= padded and counted.read(_CHUNK):  # reads may come short: read to the end
        pass
    after = counted.count - end
    if after not in (2 * _BLOCK, padded) or counted.tail[-after:].count(0) != after:
        raise IntegrityError(
            "not a dcos-backup file: it does not end with the tar's end (two zero blocks, then nothing)"
        )


@contextlib.contextmanager
def _one_upload_of(backup_id: str) -> Iterator[None]:
    """One upload of an id at a time in this service (uploads go to the leader): a second one is refused
    (409) before it stores a byte, so its failure can never delete what the first one stored."""
    with _UPLOADS_LOCK:
        if backup_id in _UPLOADING:
            raise Conflict(f"backup {backup_id} is being uploaded already; wait for that upload to end")
        _UPLOADING.add(backup_id)
    try:
        yield
    finally:
        with _UPLOADS_LOCK:
            _UPLOADING.discard(backup_id)


def _refuse_existing(storage: Storage, backup_id: str) -> None:
    with contextlib.suppress(NotFound):
        storage.entry(backup_id)
        raise Conflict(f"backup {backup_id} already exists in this cluster; delete it first to replace it")


def _small_member(tar: tarfile.TarFile, member: tarfile.TarInfo | None, name: str) -> bytes:
    if member is None or member.name != name or not member.isfile() or member.size > MAX_METADATA:
        found = "nothing" if member is None else repr(member.name)
        raise IntegrityError(f"not a dcos-backup file: expected {name} next, found {found}")
    data = tar.extractfile(member)
    assert data is not None  # a regular file
    return data.read()


def _read_marker(tar: tarfile.TarFile, member: tarfile.TarInfo | None) -> str:
    """The backup id the marker names; IntegrityError unless it is exactly the documented marker."""
    try:
        marker = json.loads(_small_member(tar, member, MARKER))
    except ValueError as exc:
        raise IntegrityError(f"not a dcos-backup file: {MARKER} is not JSON") from exc
    if (
        not isinstance(marker, dict)
        or set(marker) != {"format", "version", "id"}
        or marker["format"] != FORMAT
        or marker["version"] != VERSION
        or not is_backup_id(marker["id"])
    ):
        raise IntegrityError(f"not a dcos-backup file (format {VERSION} of {FORMAT}): {MARKER} says {marker!r:.100}")
    return str(marker["id"])


def _read_record(tar: tarfile.TarFile, member: tarfile.TarInfo | None, marked_id: str) -> BackupRecord:
    """The record in the file as it enters this catalog (:meth:`BackupRecord.as_upload`)."""
    try:
        record = BackupRecord.model_validate_json(_small_member(tar, member, RECORD_FILE))
    except ValidationError as exc:  # archive names that are not plain file names among them (models.py)
        raise IntegrityError(f"not a dcos-backup file: its {RECORD_FILE} is not a backup record") from exc
    if not is_backup_id(record.id):
        raise IntegrityError(f"not a dcos-backup file: {record.id!r} is not a backup id")
    if record.id != marked_id:
        raise IntegrityError(f"not a dcos-backup file: {MARKER} names {marked_id}, {RECORD_FILE} {record.id}")
    if record.status != Status.READY or record.damaged is not None:
        raise IntegrityError(f"backup {record.id} in the file is {record.status.value}, not READY")
    archives = [comp.archive for comp in record.component_status.values() if comp.archive]
    if len(set(archives)) != len(archives):
        raise IntegrityError(f"not a dcos-backup file: two components of {record.id} name one archive")
    return record.as_upload()


def _store_archives(
    storage: Storage, record: BackupRecord, tar: tarfile.TarFile, members: Iterator[tarfile.TarInfo], stored: list[str]
) -> None:
    expected = {comp.archive: comp for comp in record.component_status.values() if comp.archive}
    for member in members:
        comp = expected.pop(member.name, None)
        if comp is None or not member.isfile():
            raise IntegrityError(f"not a dcos-backup file: unexpected member {member.name!r}")
        if member.size != comp.bytes:
            raise IntegrityError(f"{member.name} is {member.size} bytes, not the {comp.bytes} its record says")
        data = tar.extractfile(member)
        assert data is not None
        digest = hashlib.sha256()
        stored.append(member.name)
        with storage.objects.writer(f"{record.id}/{member.name}") as sink:
            while chunk := data.read(_CHUNK):
                digest.update(chunk)
                sink.write(chunk)
            if digest.hexdigest() != comp.sha256:
                raise IntegrityError(f"{member.name} fails its checksum (expected sha256 {comp.sha256})")
    if expected:
        raise IntegrityError(f"the file is incomplete: {', '.join(sorted(expected))} missing")


def _check_structure(storage: Storage, record: BackupRecord) -> None:
    """Read each stored archive back as a restore would: one this catalog cannot decrypt (another key,
    or none configured) is refused, naming the key id it needs."""
    for comp in record.component_status.values():
        if not comp.archive:
            continue
        try:
            with storage.archive_reader(record.id, comp.archive) as source:
                verify_archive(source, comp.sha256)
        except EncryptionKeyError as exc:
            raise EncryptionKeyError(f"refused: this cluster cannot restore it: {exc}") from exc
