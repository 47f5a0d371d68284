"""What names a backup: DC/OS's label rules and backup ids (``<label>-<uuid4>``).

Plain regular expressions, so that the CLI can check a label without loading the records' models.
"""

from __future__ import annotations

import re
import uuid

from dcos_backup.errors import NotFound, UsageError

# DC/OS's API documents labels as 3-25 characters matching LABEL_PATTERN: the seed's rules (3-25 of
# [A-Za-z0-9_.-], not starting with '..'), and neither of the first two characters may be '.' or '-'.
LABEL_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_][A-Za-z0-9_.-]*$"
LABEL_RULES = "3-25 characters of [A-Za-z0-9_.-], the first two of [A-Za-z0-9_] (so never starting with '..')"
_LABEL_RE = re.compile(r"[A-Za-z0-9_]{2}[A-Za-z0-9_.-]{1,23}")
_UUID4 = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
# Ids keep the seed's looser label rule, so that backups labelled before DC/OS's pattern applied stay reachable.
_ID_RE = re.compile(rf"(?P<label>[A-Za-z0-9_.-]{{3,25}})-{_UUID4}")
ID_PATTERN = f"^[A-Za-z0-9_.-]{{3,25}}-{_UUID4}$"  # for schemas; is_backup_id also refuses a label '..'


def validate_label(label: str) -> str:
    """DC/OS's label rules; raises UsageError saying what a label is."""
    if not isinstance(label, str) or not _LABEL_RE.fullmatch(label):
        raise UsageError(f"invalid label {label!r}: a label is {LABEL_RULES}")
    return label


def new_backup_id(label: str) -> str:
    return f"{validate_label(label)}-{uuid.uuid4()}"


def is_backup_id(backup_id: object) -> bool:
    """Ids are ``<label>-<uuid4>``; anything else (``../x``, ``a/b``, a restore's bare uuid4) is not one."""
    match = _ID_RE.fullmatch(backup_id) if isinstance(backup_id, str) else None
    return match is not None and not match.group("label").startswith("..")


_ID_START = re.compile(r"[A-Za-z0-9_.-]{0,62}")  # what can begin an id: its characters, at most its length


def could_begin_id(prefix: str) -> bool:
    """Whether some backup id could start with ``prefix`` (a list by a prefix that cannot asks nothing)."""
    return _ID_START.fullmatch(prefix) is not None


_ARCHIVE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")
# The record's file in the catalog's first layout and in a portable file, and the portable file's marker: an
# archive under either name would overwrite a record (or be taken for the marker), so no archive is called that.
RESERVED_NAMES = frozenset({"backup.json", "dcos-backup.json"})


def valid_archive_name(name: object) -> bool:
    """An archive is a plain file name in its backup's folder: no ``/``, never ``..``, never hidden, never
    one of :data:`RESERVED_NAMES`."""
    return (
        isinstance(name, str)
        and _ARCHIVE_NAME.fullmatch(name) is not None
        and ".." not in name
        and name not in RESERVED_NAMES
    )


def validate_backup_id(backup_id: str) -> str:
    """A string that cannot be a backup id names no backup (NotFound)."""
    if not is_backup_id(backup_id):
        raise NotFound(f"no backup with id {backup_id!r}")
    return backup_id
