"""``dcos-zk timeline``: one merged picture of a repository, read from its index alone (no segment data).

Per stream (master), its histories (generations) oldest first, each with its epoch range, first and last
zxid and time, its restorable ranges, snapshots, gaps and what began it (a restore, a lost log, the
first start). The JSON shape is documented in docs/dcos-zk.md (the web console reads it).
"""

from __future__ import annotations

from dcos_backup.physical.continuous.index import Generation, RepoIndex, format_time
from dcos_backup.physical.formats import epoch_of, zxid_hex


def _history(gen: Generation) -> dict:
    info, end = gen.info or {}, gen.end or {}
    first = gen.base
    last = gen.last_zxid
    first_ms = info.get("base_time_ms")
    last_ms = gen.segments[-1].last_ms if gen.segments else first_ms
    zxids = [z for z in (first, last) if z is not None]
    return {
        "generation": gen.id,
        "epochs": [epoch_of(min(zxids)), epoch_of(max(zxids))] if zxids else None,
        "first_zxid": zxid_hex(first) if first is not None else None,
        "first_time": format_time(first_ms) if first_ms is not None else None,
        "last_zxid": zxid_hex(last) if last is not None else None,
        "last_time": format_time(last_ms) if last_ms is not None else None,
        "live": gen.end is None,
        "began_by": info.get("reason"),
        "previous": info.get("previous"),
        "ended_by": end.get("reason"),
        "restorable": [
            {
                "first": zxid_hex(r.first),
                "last": zxid_hex(r.last),
                "first_time": format_time(r.first_ms),
                "last_time": format_time(r.last_ms),
            }
            for r in gen.ranges()
        ],
        "snapshots": [
            {"zxid": zxid_hex(s.zxid), "consistent": zxid_hex(s.consistent), "compacted": s.compacted}
            for s in gen.snapshots
        ],
        "gaps": [{"after": zxid_hex(a), "before": zxid_hex(b)} for a, b in gen.gaps()],
        "problems": gen.problems(),
    }


def timeline(index: RepoIndex) -> dict:
    """``{"repository": URL, "streams": [{"stream": NAME, "histories": [...]}, ...]}``."""
    return {
        "repository": index.store.url,
        "streams": [
            {"stream": stream, "histories": [_history(g) for g in index.of_stream(stream)]}
            for stream in index.streams()
        ],
    }


def text_lines(doc: dict) -> list[str]:
    lines = [f"repository {doc['repository']}"]
    for stream in doc["streams"]:
        lines.append(f"{stream['stream']}:")
        for h in stream["histories"]:
            state = "live" if h["live"] else f"ended: {h['ended_by']}"
            epochs = h["epochs"] or ["-", "-"]
            lines.append(
                f"  {h['generation']}  epochs {epochs[0]}..{epochs[1]}  {h['first_zxid']} ({h['first_time']}) .. "
                f"{h['last_zxid']} ({h['last_time']})  {state}"
            )
            lines.append(f"      began: {h['began_by']}")
            spans = ", ".join(f"{r['first']}..{r['last']}" for r in h["restorable"]) or "nothing"
            lines.append(f"      restorable: {spans}; {len(h['snapshots'])} snapshots")
            lines += [f"      GAP: {g['after']} .. {g['before']}" for g in h["gaps"]]
            lines += [f"      PROBLEM: {p}" for p in h["problems"]]
    return lines
