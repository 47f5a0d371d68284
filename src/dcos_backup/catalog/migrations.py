"""Reading ``backup.json`` files of earlier formats: each is upgraded to the current one when it is read.

Format 1 (the service before it spoke DC/OS's v1 API) kept ``created_at``, a ``components`` map whose
entries repeated their name, and ``restores`` as one object: the latest restore's fields at top level
(derived, never authoritative) plus every restore in ``history``, with component statuses as bare strings
and the counts of changes in ``stats`` per component. Format 2 is DC/OS's BackupMetadata with our fields
beside it (:mod:`.models`). A file is rewritten in the current format the next time its record is written.
"""

from __future__ import annotations

from typing import Any

UNKNOWN_VERSION = "unknown"  # format 1 did not record the cluster's version


def upgrade(doc: Any) -> Any:
    """``doc`` in the current format; anything that is not a format-1 document is returned as it is."""
    if not isinstance(doc, dict) or doc.get("format_version") != 1 or "components" not in doc:
        return doc
    return {
        "dcos_version": UNKNOWN_VERSION,
        "id": doc.get("id"),
        "timestamp": doc.get("created_at"),
        "status": doc.get("status"),
        "component_status": {name: _component_v1(c) for name, c in (doc.get("components") or {}).items()},
        "restores": [_restore_v1(r) for r in (doc.get("restores") or {}).get("history", [])],
        "label": doc.get("label"),
        "reason": doc.get("reason"),
        "finished_at": doc.get("finished_at"),
        "safety": doc.get("safety", False),
        "safety_for": doc.get("safety_for"),
        "format_version": 2,
    }


def _component_v1(component: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in component.items() if key != "name"}


def _restore_v1(restore: dict[str, Any]) -> dict[str, Any]:
    stats = restore.get("stats") or {}
    return {
        "id": restore.get("id"),
        "status": restore.get("status"),
        "component_status": {
            name: {"status": status, "stats": stats.get(name)}
            for name, status in (restore.get("component_status") or {}).items()
        },
        "timestamp": restore.get("started_at"),
        "finished_at": restore.get("finished_at"),
        "reason": restore.get("reason"),
        "safety_backup_id": restore.get("safety_backup_id"),
    }
