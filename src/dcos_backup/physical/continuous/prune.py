"""``dcos-zk archive prune``: keep every point of the last N days restorable, remove what only older ones need.

Per stream, with ``cutoff = now - N days``:

- a generation whose transactions all precede the cutoff goes whole, unless it holds the stream's last
  transaction before the cutoff (the state *at* the cutoff, which ``--to-time <cutoff>`` restores) or is
  the stream's newest (the archiver is writing into it);
- in a generation that stays, the newest snapshot from which the oldest point to keep can be rebuilt
  stays, with every segment after it; older snapshots and the segments only they lead to go.

Deletion goes oldest first and a generation's ``generation.json`` last, so a prune that is killed leaves
a repository that restores everything it promised, and the next prune finishes the job.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from dcos_backup.errors import UsageError
from dcos_backup.physical.continuous.index import Generation, RepoIndex, format_time
from dcos_backup.physical.continuous.repository import Repository

log = logging.getLogger(__name__)

DAY_MS = 86_400_000


@dataclass
class PruneResult:
    cutoff: str
    objects: int = 0
    bytes: int = 0
    generations_removed: list[str] = field(default_factory=list)
    generations_kept: list[str] = field(default_factory=list)


def _anchor(generations: list[Generation], cutoff_ms: int) -> Generation | None:
    """The generation holding the stream's last segment that starts at or before the cutoff."""
    best: tuple[int, int, str] | None = None
    holder = None
    for gen in generations:
        before = [s for s in gen.segments if s.first_ms <= cutoff_ms]
        if before and (best is None or (before[-1].first_ms, before[-1].first, gen.id) > best):
            best, holder = (before[-1].first_ms, before[-1].first, gen.id), gen
    return holder


def _trim(gen: Generation, cutoff_ms: int) -> list[tuple[str, int]]:
    """What a generation that stays can lose: snapshots and segments before the snapshot the oldest
    point to keep needs."""
    before = [s for s in gen.segments if s.first_ms <= cutoff_ms]
    if not before:
        return []  # its every point is recent: keep it all
    oldest_kept = before[-1].first  # the state at the cutoff lies in this segment or after it
    usable = [s for s in gen.snapshots if s.zxid <= oldest_kept and s.consistent <= oldest_kept]
    if not usable:
        return []
    keep = usable[-1]
    doomed = [(s.key, s.size) for s in gen.segments if s.last <= keep.zxid]
    return doomed + [(s.key, s.size) for s in gen.snapshots if s.zxid < keep.zxid]


def _whole(gen: Generation) -> list[tuple[str, int]]:
    sizes = {s.key: s.size for s in gen.segments} | {s.key: s.size for s in gen.snapshots}
    return [(key, sizes.get(key, 0)) for key in gen.objects]  # generation.json comes last


def prune_repository(repo: Repository, keep_days: float, now_ms: int, dry_run: bool = False) -> PruneResult:
    if keep_days < 0:
        raise UsageError("--keep-days must not be negative")
    cutoff_ms = now_ms - int(keep_days * DAY_MS)
    result = PruneResult(format_time(cutoff_ms))
    index = RepoIndex(repo)
    for stream in index.streams():
        generations = index.of_stream(stream)
        anchor = _anchor(generations, cutoff_ms)
        for gen in generations:
            recent = gen is generations[-1] or any(s.last_ms >= cutoff_ms for s in gen.segments)
            if not recent and gen is not anchor:
                doomed = _whole(gen)
                result.generations_removed.append(gen.name)
            else:
                doomed = _trim(gen, cutoff_ms)
                result.generations_kept.append(gen.name)
            for key, size in doomed:
                if not dry_run:
                    repo.store.delete(key)
                result.objects += 1
                result.bytes += size
    log.info("pruned %d objects (%d bytes) older than %s", result.objects, result.bytes, result.cutoff)
    return result
