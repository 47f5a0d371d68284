"""The layout of a continuous archive (REPO) and its index: what is there, and which points it can restore.

::

    streams/<stream>/<generation>/generation.json          why it began, from which data directory
    streams/<stream>/<generation>/snap/<S>-<C>_<sha256>.snap.gz
    streams/<stream>/<generation>/snap/<S>-<S>-compacted_<sha256>.snap.gz   built by ``dcos-zk archive compact``
    streams/<stream>/<generation>/log/<F>-<L>_<Tf>-<Tl>_<sha256>.log
    streams/<stream>/<generation>/end.json                 why it ended, if the archiver closed it

A **stream** is one master's archive (``master-<myid>``); several masters share a REPO, each in its own
stream. A stream is a sequence of **generations**: a base snapshot and an unbroken run of log
**segments** after it. Whenever continuity is lost (a log purged before it was copied, the data
directory restored under the archiver, ZooKeeper truncating its log) the archiver starts a new
generation from a new base and closes the old one with ``end.json``.

Every object is immutable and its key says what it holds: a snapshot's zxid ``S``, the zxid ``C`` from
which it is consistent (its fuzzy range replayed; the digest record's zxid), a segment's first and last
zxid ``F``/``L`` (16 hex digits, so keys sort in zxid order) and the times of its first and last
transaction ``Tf``/``Tl`` (ms since the epoch), and a MAC under the cluster's repository key of all that
and the sha256 of the content (a snapshot's uncompressed bytes; :mod:`.repository`). So a listing is the
index: it answers "which zxids and times can I restore?" without reading data, and every byte read later
is checked against the MAC in its key. ``repository.json`` at the root names the cluster it belongs to.
A segment is a ZooKeeper log file (header, then complete records as the server wrote them, each with its Adler-32).
A **compacted** snapshot (:mod:`.compact`) is one this project wrote from an older snapshot and the
segments after it, at a transaction whose tree digest it matched; it is not fuzzy (``C`` = ``S``), and
its MAC covers the ``-compacted`` in its name like everything else, so none can be planted or renamed.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from dcos_backup.errors import UsageError
from dcos_backup.physical.formats import epoch_of, follows, zxid_hex
from dcos_backup.storage.base import ObjectInfo

if TYPE_CHECKING:
    from dcos_backup.physical.continuous.repository import Repository

STREAMS = "streams"
GENERATION_FILE = "generation.json"
END_FILE = "end.json"
_SEGMENT = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})_(\d{13})-(\d{13})_([0-9a-f]{64})\.log$")
_SNAPSHOT = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})(-compacted)?_([0-9a-f]{64})\.snap\.gz$")
COMPACTED = "-compacted"
_STREAM_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# ------------------------------------------------------------------------------------------ time
def format_time(ms: int) -> str:
    """RFC 3339 UTC with milliseconds, as ``dcos-zk log`` prints transaction times."""
    return (_EPOCH + timedelta(milliseconds=ms)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_time(text: str) -> int:
    """An RFC 3339 time (``Z`` or an offset, fractions allowed) as microseconds since the epoch."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise UsageError(f"{text!r} is not an RFC 3339 time (like 2026-01-31T15:42:00Z)") from exc
    if moment.tzinfo is None:
        raise UsageError(f"{text!r} has no time zone: add Z (UTC) or an offset like +02:00")
    return (moment - _EPOCH) // timedelta(microseconds=1)


def parse_zxid(text: str) -> int:
    """A zxid in decimal or ``0x`` hex."""
    try:
        value = int(text, 16) if text.lower().startswith("0x") else int(text)
    except ValueError as exc:
        raise UsageError(f"{text!r} is not a zxid (decimal, or hex with 0x)") from exc
    if not 0 <= value < 1 << 63:
        raise UsageError(f"zxid {text} is out of range")
    return value


def check_stream_name(name: str) -> str:
    if not _STREAM_NAME.match(name) or name.startswith("."):
        raise UsageError(f"stream name {name!r}: use 1-64 letters, digits, '.', '_' or '-'")
    return name


# ------------------------------------------------------------------------------------------ names
def generation_prefix(stream: str, generation: str) -> str:
    return f"{STREAMS}/{stream}/{generation}"


def new_generation_id(now: datetime | None = None) -> str:
    """Sortable by creation: UTC time to the millisecond, then a random tail."""
    import uuid

    moment = now or datetime.now(UTC)
    return moment.strftime("%Y%m%dT%H%M%S") + f"{moment.microsecond // 1000:03d}Z-{uuid.uuid4().hex[:4]}"


def segment_name(prefix: str, first: int, last: int, first_ms: int, last_ms: int) -> str:
    """A segment's key up to its MAC (what the MAC covers besides the content)."""
    return f"{prefix}/log/{first:016x}-{last:016x}_{first_ms:013d}-{last_ms:013d}"


def snapshot_name(prefix: str, zxid: int, consistent: int, compacted: bool = False) -> str:
    return f"{prefix}/snap/{zxid:016x}-{consistent:016x}" + (COMPACTED if compacted else "")


def segment_key(name: str, mac: str) -> str:
    return f"{name}_{mac}.log"


def snapshot_key(name: str, mac: str) -> str:
    return f"{name}_{mac}.snap.gz"


def key_name(key: str) -> str:
    """An object's key up to its MAC."""
    return key.rsplit("_", 1)[0]


@dataclass(frozen=True)
class SegmentRef:
    key: str
    first: int
    last: int
    first_ms: int
    last_ms: int
    mac: str  # over the name and the content's sha256 (repository.py)
    size: int


@dataclass(frozen=True)
class SnapshotRef:
    key: str
    zxid: int
    consistent: int  # the first zxid at which this snapshot plus logs make a consistent state
    mac: str  # over the name and the uncompressed content's sha256
    size: int
    compacted: bool = False  # written by compaction (dcos-zk archive compact), not copied from ZooKeeper


@dataclass(frozen=True)
class Range:
    """Restorable points: every zxid from ``first`` to ``last`` of one generation (times of the segment
    bounds: ``first_ms`` is at or before ``first``'s time, ``last_ms`` is ``last``'s time)."""

    stream: str
    generation: str
    first: int
    last: int
    first_ms: int
    last_ms: int

    def describe(self) -> str:
        return (
            f"{zxid_hex(self.first)}..{zxid_hex(self.last)} "
            f"({format_time(self.first_ms)} .. {format_time(self.last_ms)})"
        )


class _Run:
    """An unbroken run of segments with what :meth:`Generation._entries` bisects: their first zxids, and
    which of them begin an epoch (the only ones a zxid of an older epoch "follows" but the next one)."""

    def __init__(self, segments: list[SegmentRef]) -> None:
        self.segments = segments
        self.firsts = [s.first for s in segments]
        self.epoch_starts = [i for i, s in enumerate(segments) if s.first & 0xFFFFFFFF == 1]


@dataclass
class Generation:
    """One generation of one stream, as its listing shows it."""

    stream: str
    id: str
    info: dict | None = None  # generation.json
    end: dict | None = None  # end.json
    snapshots: list[SnapshotRef] = field(default_factory=list)
    segments: list[SegmentRef] = field(default_factory=list)
    strays: list[str] = field(default_factory=list)  # keys that are not ours

    @property
    def prefix(self) -> str:
        return generation_prefix(self.stream, self.id)

    @property
    def name(self) -> str:
        return f"{self.stream}/{self.id}"

    @property
    def base(self) -> int | None:
        return None if self.info is None else int(self.info["base_zxid"])

    @property
    def valid_until(self) -> int | None:
        """Past this zxid the archived log is not the cluster's history (ZooKeeper truncated it)."""
        return None if not self.end or self.end.get("valid_until") is None else int(self.end["valid_until"])

    @property
    def last_zxid(self) -> int | None:
        last = self.segments[-1].last if self.segments else self.base
        cap = self.valid_until
        return last if cap is None or last is None else min(last, cap)

    @property
    def objects(self) -> list[str]:
        keys = [s.key for s in self.segments] + [s.key for s in self.snapshots] + self.strays
        keys += [f"{self.prefix}/{name}" for name, doc in ((END_FILE, self.end), (GENERATION_FILE, self.info)) if doc]
        return keys

    def runs(self) -> list[list[SegmentRef]]:
        """The segments cut into unbroken runs (a missing segment breaks one)."""
        runs: list[list[SegmentRef]] = []
        for seg in self.segments:
            if runs and follows(runs[-1][-1].last, seg.first):
                runs[-1].append(seg)
            else:
                runs.append([seg])
        return runs

    def gaps(self) -> list[tuple[int, int]]:
        """(last zxid before, first zxid after) of each hole between runs."""
        return [(a[-1].last, b[0].first) for a, b in itertools.pairwise(self.runs())]

    def problems(self) -> list[str]:
        """What makes part of this generation unusable: a missing snapshot or segment, a missing record."""
        found = []
        if self.info is None:
            found.append(f"{self.prefix}/{GENERATION_FILE} is missing")
        if not self.snapshots:
            found.append(f"it has no snapshot: its base {zxid_hex(self.base or 0)} is missing ({self.prefix}/snap/)")
        elif self.segments and self._orphan_segments():
            # Pruning removes segments together with the snapshots they need; orphans mean a lost snapshot.
            found.append(
                f"the snapshot its segments from {zxid_hex(self.segments[0].first)} need is missing "
                f"(base {zxid_hex(self.base or 0)}, {self.prefix}/snap/)"
            )
        for before, after in self.gaps():
            found.append(
                f"segments are missing between zxid {zxid_hex(before)} and {zxid_hex(after)} ({self.prefix}/log/)"
            )
        return found

    def _orphan_segments(self) -> bool:
        """Whether archived records precede every snapshot that could replay them: a segment wholly before
        the first snapshot, or one from the base on while the base snapshot is gone. (A segment that the
        first snapshot falls inside is no orphan: pruning keeps it when that snapshot was compacted.)"""
        first_snap, first_seg = self.snapshots[0].zxid, self.segments[0]
        if first_snap <= first_seg.first:
            return False
        return first_snap >= first_seg.last or first_seg.first <= (self.base or 0) + 1

    def plan(self, target: int) -> tuple[SnapshotRef, list[SegmentRef]] | None:
        """The newest snapshot that can reach ``target`` and the segments that lead there, if any."""
        cap = self.valid_until
        if cap is not None and target > cap:
            return None
        for snap in sorted(self.snapshots, key=lambda s: s.zxid, reverse=True):
            if snap.zxid > target or snap.consistent > target:
                continue
            if snap.zxid == target:
                return snap, []
            needed = self._segments_after(snap.zxid, target)
            if needed is not None:
                return snap, needed
        return None

    def _entries(self, zxid: int, runs: list[_Run] | None = None) -> Iterator[tuple[list[SegmentRef], int]]:
        """Each run a replay from ``zxid`` can continue into, with the index of the segment holding the next
        record. A new epoch's first zxid "follows" any zxid of an older epoch, so that link only counts when
        no archived record lies between them (else a snapshot would skip a gap into a later epoch's run).
        By bisection: a week of segments, hundreds of snapshots, is a fraction of a second."""
        before: int | None = None  # the last zxid of the previous run
        for run in self._indexed_runs() if runs is None else runs:
            segs = run.segments
            found = [i for i in run.epoch_starts if epoch_of(segs[i].first) > epoch_of(zxid)]
            holder = bisect.bisect_right(run.firsts, zxid) - 1  # the segment whose first <= zxid < last, if any
            if holder >= 0 and zxid < segs[holder].last:
                found.append(holder)
            nxt = bisect.bisect_left(run.firsts, zxid + 1)
            if nxt < len(segs) and segs[nxt].first == zxid + 1:
                found.append(nxt)
            for i in sorted(set(found)):
                seg, previous = segs[i], segs[i - 1].last if i else before
                if seg.first <= zxid < seg.last or (
                    follows(zxid, seg.first) and (previous is None or previous <= zxid)
                ):
                    yield segs, i
                    break
            before = segs[-1].last

    def _indexed_runs(self) -> list[_Run]:
        return [_Run(run) for run in self.runs()]

    def _segments_after(self, zxid: int, target: int) -> list[SegmentRef] | None:
        for run, start in self._entries(zxid):
            if run[-1].last < target:
                continue
            chosen = []
            for seg in run[start:]:
                chosen.append(seg)
                if seg.last >= target:
                    return chosen
        return None

    def ranges(self) -> list[Range]:
        """Every restorable stretch, merged."""
        spans: list[tuple[int, int]] = []
        cap = self.valid_until
        runs = self._indexed_runs()
        for snap in self.snapshots:
            start = max(snap.zxid, snap.consistent)
            end = snap.zxid if snap.consistent <= snap.zxid else None
            for run, _ in self._entries(snap.zxid, runs):
                end = run[-1].last
            if end is not None and cap is not None:
                end = min(end, cap)
            if end is not None and end >= start:
                spans.append((start, end))
        merged: list[tuple[int, int]] = []
        for start, end in sorted(spans):
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        return [Range(self.stream, self.id, a, b, self._time_at_or_before(a), self._time_of(b)) for a, b in merged]

    def _time_at_or_before(self, zxid: int) -> int:
        for seg in self.segments:
            if seg.first <= zxid <= seg.last:
                return seg.first_ms
        before = [s.last_ms for s in self.segments if s.last < zxid]
        return before[-1] if before else (self.info or {}).get("base_time_ms", 0)

    def _time_of(self, zxid: int) -> int:
        for seg in self.segments:
            if seg.first <= zxid <= seg.last:
                return seg.last_ms if zxid == seg.last else seg.first_ms
        return self._time_at_or_before(zxid)

    def max_epoch(self) -> int:
        zxids = [s.last for s in self.segments] + [s.zxid for s in self.snapshots] + [self.base or 0]
        return max(epoch_of(z) for z in zxids)


def _parse_object(gen: Generation, obj: ObjectInfo, rest: str) -> None:
    if rest.startswith("log/"):
        match = _SEGMENT.match(rest[4:])
        if match:
            first, last, tf, tl, sha = match.groups()
            ref = SegmentRef(obj.key, int(first, 16), int(last, 16), int(tf), int(tl), sha, obj.size)
            gen.segments.append(ref)
            return
    elif rest.startswith("snap/"):
        match = _SNAPSHOT.match(rest[5:])
        if match:
            zxid, consistent, compacted, sha = match.groups()
            snap = SnapshotRef(obj.key, int(zxid, 16), int(consistent, 16), sha, obj.size, compacted is not None)
            gen.snapshots.append(snap)
            return
    elif rest in (GENERATION_FILE, END_FILE):
        return
    gen.strays.append(obj.key)


class RepoIndex:
    """Every generation of every stream in a repository (or of one ``stream``), read from one listing."""

    def __init__(self, repo: Repository, stream: str | None = None) -> None:
        self.repo = repo
        self.store = repo.store
        self.generations: list[Generation] = []
        by_name: dict[tuple[str, str], Generation] = {}
        prefix = f"{STREAMS}/{check_stream_name(stream)}/" if stream else f"{STREAMS}/"
        for obj in repo.store.list(prefix):
            parts = obj.key.split("/", 3)
            if len(parts) < 4:
                continue
            _, stream_name, gen_id, rest = parts
            gen = by_name.get((stream_name, gen_id))
            if gen is None:
                gen = by_name[(stream_name, gen_id)] = Generation(stream_name, gen_id)
                self.generations.append(gen)
            if rest in (GENERATION_FILE, END_FILE):
                doc = self._read_json(obj.key)
                if rest == GENERATION_FILE:
                    gen.info = doc
                else:
                    gen.end = doc
            _parse_object(gen, obj, rest)
        for gen in self.generations:
            gen.segments.sort(key=lambda s: (s.first, s.last))
            gen.snapshots.sort(key=lambda s: s.zxid)
        self.generations.sort(key=lambda g: (g.stream, g.id))

    def _read_json(self, key: str) -> dict:
        return self.repo.read_doc(key)

    def streams(self) -> list[str]:
        return sorted({g.stream for g in self.generations})

    def of_stream(self, stream: str) -> list[Generation]:
        return [g for g in self.generations if g.stream == stream]

    def ranges(self) -> list[Range]:
        return [r for g in self.generations for r in g.ranges()]

    def max_epoch(self) -> int:
        return max((g.max_epoch() for g in self.generations), default=0)

    def find(self, name: str) -> Generation:
        for gen in self.generations:
            if gen.name == name:
                return gen
        raise UsageError(f"no generation {name} in the repository")


def describe_ranges(ranges: Iterable[Range], limit: int = 6) -> str:
    """The distinct restorable stretches (masters' streams repeat each other), oldest first."""
    distinct = sorted({(r.first, r.last): r for r in ranges}.values(), key=lambda r: (r.first, r.last))
    if not distinct:
        return "nothing is restorable yet"
    text = ", ".join(r.describe() for r in distinct[:limit])
    return text + (f" and {len(distinct) - limit} more" if len(distinct) > limit else "")
