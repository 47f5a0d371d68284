"""``dcos-zk log``: every archived transaction, one line each, to find the moment of an accident.

The repository's streams (one per master) and generations hold the same committed history several
times over; the listing merges them in zxid order and shows each transaction once, with the generation
it was read from. A zxid that two histories hold with different transactions (an epoch a later history
reused, before restores raised the epoch) is shown once per history; ``--generation`` shows one. A
``multi`` shows one line per operation, all with its zxid. Segments wholly outside ``--since``/``--until`` are
skipped without being read.
"""

from __future__ import annotations

from collections.abc import Iterator

from dcos_backup.physical.continuous.index import RepoIndex, SegmentRef, format_time
from dcos_backup.physical.continuous.segments import read_segment
from dcos_backup.physical.formats import (
    Check,
    CloseSession,
    Create,
    Delete,
    Multi,
    OpCode,
    SetACL,
    SetData,
    Txn,
    zxid_hex,
)

TYPE_NAMES = {
    OpCode.create: "create",
    OpCode.create2: "create",
    OpCode.createContainer: "createContainer",
    OpCode.createTTL: "createTTL",
    OpCode.delete: "delete",
    OpCode.deleteContainer: "deleteContainer",
    OpCode.setData: "setData",
    OpCode.setACL: "setACL",
    OpCode.check: "check",
    OpCode.multi: "multi",
    OpCode.reconfig: "reconfig",
    OpCode.createSession: "createSession",
    OpCode.closeSession: "closeSession",
    OpCode.error: "error",
}


def _path(record: object) -> str | None:
    if isinstance(record, Create | Delete | SetData | SetACL | Check):
        return record.path or "/"
    return None


def entries(txn: Txn) -> Iterator[dict]:
    """The lines of one transaction: ``{"zxid", "time", "type", "path", "session"}`` (+ ``"multi": true``)."""
    base = {"zxid": txn.zxid, "time": format_time(txn.time)}
    if isinstance(txn.record, Multi) and txn.record.ops:
        for kind, sub in txn.record.ops:
            name = TYPE_NAMES.get(kind, str(kind))
            yield {**base, "type": name, "path": _path(sub), "session": txn.client_id, "multi": True}
        return
    doc = {**base, "type": TYPE_NAMES.get(txn.type, str(txn.type)), "path": _path(txn.record), "session": txn.client_id}
    if isinstance(txn.record, CloseSession) and txn.record.paths:
        doc["ephemerals"] = txn.record.paths
    yield doc


def _under(path: str | None, prefix: str) -> bool:
    if path is None:
        return False
    top = prefix.rstrip("/")
    return not top or path == top or path.startswith(top + "/")


def transactions(
    index: RepoIndex,
    since_us: int | None = None,
    prefix: str | None = None,
    until_us: int | None = None,
    generation: str | None = None,
) -> Iterator[dict]:
    """Every archived transaction's lines in zxid order, filtered, each with its ``generation``.

    A zxid several streams hold with the same transaction (one history, archived by every master) is shown
    once; one that two histories hold with different transactions (an epoch reused) is shown once per
    history, each line naming its generation."""
    caps: dict[str, int | None] = {}
    owner: dict[str, str] = {}
    refs: list[SegmentRef] = []
    for gen in index.generations:
        if generation is not None and generation not in (gen.name, gen.id):
            continue
        for seg in gen.segments:
            caps[seg.key], owner[seg.key] = gen.valid_until, gen.name
            refs.append(seg)
    shown = -1
    recent: dict[int, bytes] = {}  # zxid -> record bytes, for zxids some later segment may hold again
    for seg in sorted(refs, key=lambda s: (s.first, -s.last)):
        if (since_us is not None and seg.last_ms * 1000 < since_us) or (
            until_us is not None and seg.first_ms * 1000 > until_us
        ):
            continue
        recent = {z: raw for z, raw in recent.items() if z >= seg.first}  # bounded by the overlap
        cap = caps[seg.key]
        for record in read_segment(index.repo, seg):
            if cap is not None and record.zxid > cap:
                continue
            if record.zxid <= shown and recent.get(record.zxid, record.raw) == record.raw:
                continue  # the same transaction, archived by another master
            recent[record.zxid] = record.raw
            shown = max(shown, record.zxid)
            if (since_us is not None and record.time * 1000 < since_us) or (
                until_us is not None and record.time * 1000 > until_us
            ):
                continue
            assert record.txn is not None
            for doc in entries(record.txn):
                if prefix is None or _under(doc["path"], prefix):
                    yield {**doc, "generation": owner[seg.key]}


def text_line(doc: dict) -> str:
    where = doc["path"] if doc["path"] is not None else "-"
    multi = " (multi)" if doc.get("multi") else ""
    return (
        f"{zxid_hex(doc['zxid'])}  {doc['time']}  {doc['type']:<15} {where}  session {doc['session']:#x}{multi}"
        f"  [{doc['generation']}]"
    )
