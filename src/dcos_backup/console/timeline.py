"""What the continuous archive can restore, as the console's timeline draws it: per master (stream), its
histories (generations) with their restorable ranges, snapshots, gaps and why each began and ended.

Read from the repository's listing and its small ``generation.json``/``end.json`` documents only
(:class:`~dcos_backup.physical.continuous.index.RepoIndex`), never a segment or snapshot: a week of
segments opens in well under a second. :func:`archive_timeline` is the one place that shapes it.
"""

from __future__ import annotations

import bisect
from typing import Any

from dcos_backup.physical.continuous.index import Generation, RepoIndex
from dcos_backup.physical.continuous.repository import Repository
from dcos_backup.physical.formats import zxid_hex


def archive_timeline(repository: Repository | None) -> dict[str, Any]:
    """``{"configured": bool, "masters": [{"stream", "generations": [...]}]}`` (times in ms since the epoch)."""
    if repository is None:
        return {"configured": False, "masters": []}
    index = RepoIndex(repository)
    return {
        "configured": True,
        "masters": [
            {"stream": stream, "generations": [generation_entry(g) for g in index.of_stream(stream)]}
            for stream in index.streams()
        ],
    }


def generation_entry(gen: Generation) -> dict[str, Any]:
    info, end = gen.info or {}, gen.end or {}
    times = {s.first: s.first_ms for s in gen.segments} | {s.last: s.last_ms for s in gen.segments}
    lasts = [s.last for s in gen.segments]  # sorted: segments are in zxid order
    return {
        "id": gen.id,
        "reason": info.get("reason"),
        "started_ms": info.get("base_time_ms"),
        "ended": end.get("reason"),
        "ranges": [
            {"first": zxid_hex(r.first), "last": zxid_hex(r.last), "first_ms": r.first_ms, "last_ms": r.last_ms}
            for r in gen.ranges()
        ],
        "snapshots": [
            {"zxid": zxid_hex(s.zxid), "time_ms": _time_near(gen, s.zxid, times, lasts), "bytes": s.size}
            for s in gen.snapshots
        ],
        "gaps": [
            {"after": zxid_hex(a), "before": zxid_hex(b), "from_ms": times.get(a), "to_ms": times.get(b)}
            for a, b in gen.gaps()
        ],
        "segments": len(gen.segments),
        "bytes": sum(s.size for s in gen.segments) + sum(s.size for s in gen.snapshots),
        "problems": gen.problems(),
    }


def _time_near(gen: Generation, zxid: int, times: dict[int, int], lasts: list[int]) -> int | None:
    """The time of ``zxid`` as the segment keys tell it: the last transaction at or before it."""
    if zxid in times:
        return times[zxid]
    before = bisect.bisect_right(lasts, zxid)
    if before:
        return gen.segments[before - 1].last_ms
    return (gen.info or {}).get("base_time_ms")
