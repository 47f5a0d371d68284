"""Point-in-time restore from a repository: ``dcos-zk restore --repo`` and ``dcos-zk export``.

1. **Plan** from the index alone: the target (a zxid, the last transaction at or before a time, or the
   latest archived) is found in a generation that can reach it (``Generation.plan``): its newest
   snapshot consistent at or before the target and the unbroken run of segments from there. A zxid
   names one point whatever the history (every restore starts a new epoch above every archived one);
   a time picks the history that was live then (the one whose last transaction at or before it is the
   latest). A target nothing reaches is refused with one line naming what is restorable; a zxid two
   histories hold with different transactions (an epoch reused) is refused naming both (``--generation``
   picks one); ``--before-zxid Z`` is the state just before transaction Z of its history.
2. **Assemble** a data directory: the snapshot (sha256-checked), one log file of the records after it
   up to the target (each segment checked against its key), and ``currentEpoch``/``acceptedEpoch`` set
   to the highest epoch the repository or this master has seen, so that the ensemble's next epoch is
   new: nothing written after the restore can reuse a zxid of an archived history.
3. **Check** it as ``dcos-zk verify`` does (replay with ZooKeeper's tree digests), fed with the bytes as
   they are written (in a process of its own, so the check overlaps the fetching), and that its last
   transaction is the target; only then does :func:`~dcos_backup.physical.swap.replace_data_dir`
   swap it in (same lock, journal and ``myid`` handling as every restore).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from dcos_backup.errors import IntegrityError, NotFound, UsageError
from dcos_backup.master.layout import MasterLayout
from dcos_backup.physical import archive_write, swap
from dcos_backup.physical.continuous import segments
from dcos_backup.physical.continuous.index import (
    Generation,
    RepoIndex,
    SegmentRef,
    SnapshotRef,
    describe_ranges,
    format_time,
)
from dcos_backup.physical.continuous.repository import Repository
from dcos_backup.physical.epochs import local_epoch, raise_epoch
from dcos_backup.physical.formats import FILE_HEADER, epoch_of, follows, zxid_hex
from dcos_backup.physical.replay import ReplayResult
from dcos_backup.physical.verify import StreamVerifier

log = logging.getLogger(__name__)

_PADDING = 64 * 1024  # zeros after the last record, as in a preallocated ZooKeeper log


@dataclass(frozen=True)
class Target:
    """What to restore: exactly one of a zxid, a time (µs since the epoch) or the latest point."""

    zxid: int | None = None
    time_us: int | None = None
    latest: bool = False
    before: int | None = None  # the state just before this transaction (what ``dcos-zk log`` shows)
    generation: str | None = None  # only this history (STREAM/GENERATION or GENERATION)

    def __post_init__(self) -> None:
        given = [self.zxid is not None, self.time_us is not None, self.latest, self.before is not None]
        if given.count(True) != 1:
            raise UsageError("give exactly one of --to-zxid, --before-zxid, --to-time or --latest")

    def describe(self) -> str:
        if self.zxid is not None:
            return f"zxid {zxid_hex(self.zxid)}"
        if self.before is not None:
            return f"the state before zxid {zxid_hex(self.before)}"
        if self.time_us is not None:
            return f"time {format_time(self.time_us // 1000)}"
        return "the latest archived point"


@dataclass
class Plan:
    generation: Generation
    snapshot: SnapshotRef
    segments: list[SegmentRef]
    zxid: int
    time_ms: int | None
    max_epoch: int
    note: str | None = None  # what the operator must know about the point chosen (a time past the end)

    def describe(self) -> str:
        when = f" ({format_time(self.time_ms)})" if self.time_ms is not None else ""
        return f"zxid {zxid_hex(self.zxid)}{when} from {self.generation.name}"


@dataclass
class PitrResult:
    plan: str
    zxid: str
    time: str | None
    generation: str
    snapshot: str
    transactions: int
    nodes: int
    myid: str | None
    seconds: float
    note: str | None = None


# ------------------------------------------------------------------------------------------ planning
def plan(repo: Repository, target: Target, stream: str | None = None, prefer: str | None = None) -> Plan:
    """Find the snapshot and segments that rebuild ``target``; UsageError naming what is restorable if none,
    or naming both histories if two hold the target zxid with different transactions."""
    index = RepoIndex(repo, stream)
    if target.generation is not None:
        chosen_gen = _find_generation(index, target.generation)
        index.generations = [g for g in index.generations if g is chosen_gen]
    if not index.generations:
        raise NotFound(f"the repository {repo.url} holds no archive" + (f" of stream {stream}" if stream else ""))
    time_ms = None
    note = None
    generations = index.generations
    if target.latest:
        ranges = index.ranges()
        if not ranges:
            raise _unreachable(index, target, None)
        best = max(ranges, key=lambda r: (r.last, r.stream == prefer, r.generation))
        zxid, time_ms = best.last, best.last_ms
    elif target.time_us is not None:
        found = _last_before(repo, index, target.time_us, prefer)
        if found is None:
            raise _unreachable(index, target, None)
        gen, zxid, time_ms = found
        generations = [gen]  # a time names a point of the history that was live then
        note = _short_of(index, target.time_us, time_ms)
    elif target.before is not None:
        found_before = _zxid_before(repo, index, target.before)
        if found_before is None:
            raise _unreachable(index, target, None)
        generations, zxid = found_before
    else:
        assert target.zxid is not None
        zxid = target.zxid
        generations = _one_history(repo, index.generations, zxid)
    plans = [(gen, p) for gen in generations if (p := gen.plan(zxid)) is not None]
    if not plans:
        raise _unreachable(index, target, zxid)
    # One history (a zxid's holders agree on its transaction): the shortest replay, compacted snapshots
    # included, whichever master's stream has it; else this master's own stream, then the newest.
    one_history = target.zxid is not None or target.before is not None
    gen, (snapshot, segments) = max(
        plans, key=lambda f: (f[1][0].zxid if one_history else 0, f[0].stream == prefer, f[0].id)
    )
    epoch = max(index.max_epoch(), epoch_of(zxid))
    if stream is not None or target.generation is not None:  # every epoch, not only those looked at
        epoch = max(epoch, RepoIndex(repo).max_epoch())
    return Plan(gen, snapshot, segments, zxid, time_ms, epoch, note)


def _short_of(index: RepoIndex, time_us: int, time_ms: int) -> str | None:
    """For a time after everything archived: which point that restores, and how far short of the time."""
    end_ms = max((s.last_ms for g in index.generations for s in g.segments), default=0)
    if time_us <= end_ms * 1000:
        return None
    short = time_us / 1e6 - time_ms / 1e3
    return (
        f"{format_time(time_us // 1000)} is after the archive's end: restored its last transaction, "
        f"{format_time(time_ms)}, {short:.1f}s short of it"
    )


def _find_generation(index: RepoIndex, name: str) -> Generation:
    found = [g for g in index.generations if name in (g.name, g.id)]
    if not found:
        raise UsageError(f"no generation {name} in the repository (dcos-zk timeline lists them)")
    if len(found) > 1:
        raise UsageError(f"{name} names {len(found)} generations: give STREAM/GENERATION")
    return found[0]


def _record_at(repo: Repository, gen: Generation, zxid: int) -> tuple[bytes, int] | None:
    """Transaction ``zxid`` of ``gen`` (its bytes and time), read from the one segment holding it."""
    for seg in gen.segments:
        if seg.first <= zxid <= seg.last:
            for record in segments.read_segment(repo, seg, parse=False):
                if record.zxid == zxid:
                    return record.raw, record.time
    return None


def _one_history(repo: Repository, generations: list[Generation], zxid: int) -> list[Generation]:
    """The generations that reach ``zxid`` if they all hold the same transaction there; UsageError naming
    two that hold different ones (an epoch reused by a later history: one zxid, two states)."""
    reaching = [g for g in generations if g.plan(zxid) is not None]
    seen: dict[bytes, tuple[Generation, int]] = {}
    for gen in reaching:
        found = _record_at(repo, gen, zxid)
        if found is not None:
            seen.setdefault(found[0], (gen, found[1]))
    if len(seen) > 1:
        (a, ta), (b, tb) = list(seen.values())[:2]
        raise UsageError(
            f"zxid {zxid_hex(zxid)} names two histories: {a.name} (at {format_time(ta)}) and {b.name} "
            f"(at {format_time(tb)}); choose one with --generation"
        )
    return reaching or generations


def _zxid_before(repo: Repository, index: RepoIndex, zxid: int) -> tuple[list[Generation], int] | None:
    """The generations holding transaction ``zxid`` (one history) and the zxid right before it there."""
    holders = _one_history(
        repo, [g for g in index.generations if any(s.first <= zxid <= s.last for s in g.segments)], zxid
    )
    for gen in holders:
        previous: int | None = gen.base if gen.base is not None and gen.base < zxid else None
        for seg in gen.segments:
            if seg.first > zxid:
                break
            for record in segments.read_segment(repo, seg, parse=False) if seg.last >= zxid else ():
                if record.zxid == zxid:
                    return ([gen], previous) if previous is not None else None
                previous = record.zxid
            if seg.last < zxid:
                previous = seg.last
    return None


def _last_before(
    repo: Repository, index: RepoIndex, time_us: int, prefer: str | None
) -> tuple[Generation, int, int] | None:
    """The generation and transaction (zxid, time) that is the last at or before ``time_us``, all histories."""
    best: tuple[tuple[int, int, bool], Generation, int, int] | None = None
    for gen in index.generations:
        before = [s for s in gen.segments if s.first_ms * 1000 <= time_us]
        if not before:
            continue
        segment = before[-1]
        candidates = [r for r in segments.read_segment(repo, segment) if r.time * 1000 <= time_us]
        if not candidates:
            continue
        record = candidates[-1]
        rank = (record.time, record.zxid, gen.stream == prefer)
        if best is None or rank > best[0]:
            best = (rank, gen, record.zxid, record.time)
    return None if best is None else best[1:]


def _unreachable(index: RepoIndex, target: Target, zxid: int | None) -> UsageError:
    what = (
        target.describe() if zxid is None or target.zxid is not None else f"{target.describe()} (zxid {zxid_hex(zxid)})"
    )
    problems = []
    for gen in index.generations:
        base, last = gen.base, gen.last_zxid
        if zxid is None or (base is not None and last is not None and base <= zxid <= last):
            problems += [f"{gen.name}: {p}" for p in gen.problems()]
    note = f"; {'; '.join(problems[:3])}" if problems else ""
    return UsageError(
        f"{what} is not restorable from {index.store.url}; restorable: {describe_ranges(index.ranges())}{note}"
    )


# ------------------------------------------------------------------------------------------ assembling
def assemble(
    repo: Repository, chosen: Plan, staged: MasterLayout, tmp_dir: Path | None = None
) -> tuple[int, ReplayResult]:
    """Write the data directory of ``chosen`` into ``staged``'s ``zookeeper/``, checked: every byte written
    also goes to a replay with ZooKeeper's tree digests (in its own process, beside the fetching), whose
    last transaction must be the target. Returns the transactions written and the replay's result."""
    staged.snapshots_dir.mkdir(parents=True, exist_ok=True)
    staged.logs_dir.mkdir(parents=True, exist_ok=True)
    verifier = StreamVerifier(tmp_dir)
    try:
        snap = chosen.snapshot
        name = f"snapshot.{snap.zxid:x}"
        log.info("fetching snapshot %s", snap.key)
        verifier.begin(name)
        segments.fetch_snapshot(repo, snap, staged.snapshots_dir / name, verifier.feed)
        verifier.end()
        written = write_log(repo, chosen, staged, verifier)
        replayed = verifier.finish()
    finally:
        verifier.abort()
    raise_epoch(staged, chosen.max_epoch)
    if int(replayed.last_zxid, 16) != chosen.zxid:
        raise IntegrityError(f"the assembled data ends at {replayed.last_zxid}, not at {zxid_hex(chosen.zxid)}")
    log.info("checked: %s, %d nodes, tree digest %s", replayed.last_zxid, replayed.nodes, replayed.digest)
    return written, replayed


def write_log(repo: Repository, chosen: Plan, staged: MasterLayout, verifier: StreamVerifier | None = None) -> int:
    """One log file of the records after the snapshot up to the target, padded like ZooKeeper's (its bytes
    fed to ``verifier`` too, if given)."""
    last, written = chosen.snapshot.zxid, 0
    with contextlib.ExitStack() as stack:
        out: BinaryIO | None = None

        def put(data: bytes) -> None:
            assert out is not None
            out.write(data)
            if verifier is not None:
                verifier.feed(data)

        size = sum(ref.size for ref in chosen.segments)
        log.info("fetching %d segments (%d bytes) up to %s", len(chosen.segments), size, zxid_hex(chosen.zxid))
        for ref in chosen.segments:
            log.debug("fetching segment %s", ref.key)
            body = repo.store.get_bytes(ref.key)
            for record in segments.read_segment_bytes(repo, ref, body, parse=False):  # checked against its key first
                if record.zxid <= last or record.zxid > chosen.zxid:
                    continue
                if not follows(last, record.zxid):
                    raise IntegrityError(f"{ref.key}: zxid {zxid_hex(record.zxid)} does not follow {zxid_hex(last)}")
                if out is None:
                    name = f"log.{record.zxid:x}"
                    out = stack.enter_context(open(staged.logs_dir / name, "xb"))
                    if verifier is not None:
                        verifier.begin(name)
                    put(body[: FILE_HEADER.size])  # the header of the log the records came from
                put(record.raw)
                last, written = record.zxid, written + 1
        if out is not None:
            put(b"\0" * _PADDING)
            if verifier is not None:
                verifier.end()
    if last != chosen.zxid:
        raise IntegrityError(f"the archived segments end at {zxid_hex(last)}, before {zxid_hex(chosen.zxid)}")
    return written


# ------------------------------------------------------------------------------------------ commands
def restore(
    exhibitor_dir: Path,
    repo: Repository,
    target: Target,
    stream: str | None = None,
    prefer: str | None = None,
    keep_old: bool = False,
    wait_lock: bool = False,
    drop_sessions: bool = False,
) -> PitrResult:
    """Rebuild this master's data directory at ``target`` from the repository; all or nothing (``drop_sessions``:
    without the point's sessions and their ephemerals, :mod:`dcos_backup.physical.sessions`)."""
    started = time.monotonic()
    layout = MasterLayout(Path(exhibitor_dir))
    chosen = plan(repo, target, stream, prefer)
    chosen.max_epoch = max(chosen.max_epoch, local_epoch(layout))
    log.info("restoring %s", chosen.describe())
    results: list[tuple[int, ReplayResult]] = []

    def fill(staged: MasterLayout) -> ReplayResult:
        results.append(assemble(repo, chosen, staged, staged.exhibitor_dir))
        return results[-1][1]

    myid = swap.replace_data_dir(
        layout.exhibitor_dir, fill, keep_old, wait_lock, "dcos-zk restore --repo", chosen.describe(), drop_sessions
    )
    written, replayed = results[0]
    return _result(chosen, written, replayed, myid, started)


def _result(chosen: Plan, written: int, replayed: ReplayResult, myid: str | None, started: float) -> PitrResult:
    return PitrResult(
        plan=chosen.describe(),
        zxid=zxid_hex(chosen.zxid),
        time=format_time(chosen.time_ms) if chosen.time_ms is not None else None,
        generation=chosen.generation.name,
        snapshot=f"snapshot.{chosen.snapshot.zxid:x}",
        transactions=written,
        nodes=replayed.nodes,
        myid=myid,
        seconds=time.monotonic() - started,
        note=chosen.note,
    )


def export(
    repo: Repository,
    target: Target,
    archive: Path,
    stream: str | None = None,
    tmp_dir: Path | None = None,
    level: int = 6,
) -> tuple[PitrResult, archive_write.BackupResult]:
    """Write the data directory of ``target`` as an ordinary ``dcos-zk`` archive (DC/OS layout)."""
    started = time.monotonic()
    archive = Path(archive).absolute()
    archive_write.check_new_archive(archive)
    chosen = plan(repo, target, stream)
    work = MasterLayout(Path(tempfile.mkdtemp(prefix=".dcos-zk-export-", dir=tmp_dir or archive.parent)))
    try:
        os.chmod(work.exhibitor_dir, 0o700)
        written, replayed = assemble(repo, chosen, work, work.exhibitor_dir)
        written_archive = archive_write.write_archive(work.zk_dir, archive, level=level)
    finally:
        shutil.rmtree(work.exhibitor_dir, ignore_errors=True)
    return _result(chosen, written, replayed, None, started), written_archive
