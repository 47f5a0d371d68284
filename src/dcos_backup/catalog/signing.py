"""Authenticated catalog records: an HMAC-SHA256 of each record (``<id>.json``) under the cluster's record key.

The sha256 of an archive vouches for the archive only; what a restore acts on besides it (the archive's
name and sha256, the component roots, the id, the status, the encryption key's id, the journal of
restores and their safety backups) is in the record, which anyone with write access to the storage
can change. So the service signs every record it writes (``signature``: the HMAC, in hex, of the record's
canonical JSON without ``signature`` and ``damaged``) and reads back only records whose signature
verifies; any other one is a damaged entry (quarantined, ``storage.py``), never restored.

The canonical JSON leaves out fields that hold their default value: a later version that adds a field
with a default still verifies the records written before it. The key is 32 random bytes in a 0600 file
(the encryption key's format, :mod:`dcos_backup.storage.crypto`), one per cluster: every master's service
has the same one.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from dcos_backup.catalog.models import BackupRecord
from dcos_backup.storage.crypto import EncryptionKey

RecordKey = EncryptionKey  # 32 secret bytes and a public id: the same file format and checks
_CONTEXT = b"dcos-backup record v1\0"  # this key signs records and nothing else
_UNSIGNED = {"signature", "damaged"}


def record_signature(key: RecordKey, record: BackupRecord) -> str:
    """The HMAC-SHA256 (hex) of ``record`` under ``key``."""
    fields = record.model_dump(mode="json", exclude=_UNSIGNED, exclude_defaults=True)
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    return hmac.new(key.secret, _CONTEXT + canonical, hashlib.sha256).hexdigest()


def sign(key: RecordKey, record: BackupRecord) -> None:
    record.signature = record_signature(key, record)


def signature_problem(key: RecordKey, record: BackupRecord) -> str | None:
    """Why ``record`` cannot be trusted under ``key`` (one line), or None if its signature verifies."""
    if record.signature is None:
        return "it is not signed (written outside the service, or before records were signed)"
    if not hmac.compare_digest(record.signature, record_signature(key, record)):
        return "its signature does not verify (changed outside the service, or signed by another cluster's key)"
    return None
