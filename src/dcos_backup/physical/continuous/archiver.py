"""``dcos-zk archive``: stream one master's ZooKeeper transaction logs and snapshots into a repository.

Beside a running (or stopped) ZooKeeper, in a loop every ``interval`` seconds:

- **segments**: the complete, checksummed records appended to the log being written since the last
  pass become one immutable segment object (:mod:`.objects`); when the log rolls over, the finished
  one is read to its end first, then the new one is followed. Each record is in the repository within
  about one interval of ZooKeeper writing it.
- **snapshots**: every new sealed snapshot is compressed and stored by a second thread, so a large one
  never holds up the segments. A snapshot is stored only once the segments have passed its zxid.
- **continuity**: a generation is a base snapshot plus an unbroken run of segments. The archiver checks
  each step (the next record follows the last one archived, the log it was reading still holds that
  record, the data directory is the one the generation began on). When a check fails (a log purged
  before it was copied, a restore under it, ZooKeeper truncating its log after a leader change), it
  closes the generation with ``end.json`` saying why, says so loudly (its log and the master's status
  log) and starts a new generation from the newest sealed snapshot.
- **restarts**: all it knows is in the repository. Started again, it reads its stream's last generation,
  finds the last archived record in the local logs (same zxid, same checksum) and goes on from there;
  a killed write leaves only a hidden partial object, removed at start.
- **a full repository**: it says so (log, status log, state file), leaves ZooKeeper alone and tries
  again until there is space; nothing is skipped unless ZooKeeper purged it meanwhile (then: a new base).

It holds the master's data-dir lock shared (backups may run beside it, a restore may not) and a lock of
its own, so one master has one archiver.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import struct
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from dcos_backup.errors import DcosBackupError, IntegrityError, StorageError
from dcos_backup.master import activity
from dcos_backup.master.layout import MasterLayout
from dcos_backup.master.lock import data_dir_lock
from dcos_backup.physical import formats
from dcos_backup.physical.continuous import segments
from dcos_backup.physical.continuous.index import (
    END_FILE,
    GENERATION_FILE,
    Generation,
    Range,
    RepoIndex,
    format_time,
    generation_prefix,
    new_generation_id,
)
from dcos_backup.physical.continuous.repository import Repository
from dcos_backup.physical.continuous.segments import Record
from dcos_backup.physical.epochs import data_epoch
from dcos_backup.physical.formats import follows, zxid_hex
from dcos_backup.physical.replay import log_files, logs_after, newest_sealed_snapshot, snapshot_files

log = logging.getLogger(__name__)

SEGMENT_BYTES = 4 << 20  # a catch-up after a pause is cut into segments of about this size
RETRY_SECONDS = 2.0
SURVEY_SECONDS = 10.0  # how often the repository's restorable window is surveyed (one listing of the stream)


class Discontinuity(Exception):
    """The run of archived records cannot go on; ``valid_until`` caps the old generation if ZooKeeper
    dropped records that were archived (they were never the cluster's history)."""

    def __init__(self, reason: str, valid_until: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.valid_until = valid_until


class NotYet(Exception):
    """Nothing to start from yet (no sealed snapshot, no log): try again next pass."""


@dataclass
class Position:
    """Where the archive stands in the local logs."""

    log: Path | None  # the log being followed (None: ZooKeeper has written no log yet)
    offset: int  # byte offset after the last archived record in it
    last_zxid: int  # the last archived zxid (or the base snapshot's)
    last_raw: bytes | None  # that record's bytes, to notice a log that was cut or replaced


def data_dir_identity(layout: MasterLayout) -> list[int]:
    """The data directory's (device, inode): a restore swaps in a new directory, so this changes."""
    st = layout.zk_dir.stat()
    return [st.st_dev, st.st_ino]


@dataclass
class State:
    """What ``run/archiver.json`` says (and the Exhibitor API shows)."""

    stream: str
    repo: str
    state: str = "starting"  # archiving | waiting | paused | stopped
    message: str = ""
    generation: str | None = None
    last_zxid: str | None = None
    last_time: str | None = None
    archived_at: float | None = None
    segments: int = 0
    snapshots: int = 0
    pid: int = 0
    # For the metrics (Exhibitor's /exhibitor/v1/metrics, docs/api.md):
    log: str | None = None  # the local log the archiver reads, and the offset after its last archived record
    offset: int = 0
    errors: int = 0  # passes that failed (repository, log or local file errors) since this archiver started
    restorable_since: float | None = None  # the stream's oldest restorable moment (epoch seconds), as last surveyed
    restorable_until: float | None = None  # its newest
    gaps: int = 0  # breaks between the stream's restorable stretches (moments in one cannot be restored to)
    surveyed_at: float | None = None


class Archiver:
    """Archives ``layout``'s ZooKeeper data into ``repo`` as ``stream``; see the module docstring."""

    def __init__(self, layout: MasterLayout, repo: Repository, stream: str, interval: float = 0.5) -> None:
        self.layout = layout
        self.repo = repo
        self.store = repo.store
        self.stream = stream
        self.interval = interval
        self.gen: Generation | None = None
        self.pos: Position | None = None
        self.dbid = 0
        self.state = State(stream, repo.url, pid=os.getpid())
        self._archived_snapshots: set[int] = set()
        self._lock = threading.Lock()  # gen/pos between the segment loop and the snapshot thread
        self._stop = threading.Event()
        self._paused: str | None = None

    # ------------------------------------------------------------------------------- running
    def run(self) -> None:
        """Archive until :meth:`stop`; holds the locks meanwhile."""
        guard = self.layout.run_dir / "archiver.lock"
        self.layout.run_dir.mkdir(parents=True, exist_ok=True)
        subject = f"archiving of {self.layout.exhibitor_dir}"
        with (
            data_dir_lock(guard, exclusive=True, what="dcos-zk archive", subject=subject),
            data_dir_lock(self.layout.lock_file, exclusive=False, what="dcos-zk archive"),
        ):
            removed = self.store.remove_partials(generation_prefix(self.stream, "").rstrip("/"))
            if removed:
                log.info("removed %d partial objects a killed archiver left", removed)
            self._event(f"archiving {self.layout.zk_dir} into {self.store.url} as stream {self.stream}")
            snapshots = threading.Thread(target=self._snapshot_loop, name="snapshots", daemon=True)
            snapshots.start()
            try:
                while not self._stop.is_set():
                    busy = self.step()
                    self._write_state()
                    if not busy:
                        self._stop.wait(self.interval)
            finally:
                self._stop.set()
                self._drain()
                snapshots.join(timeout=60)
                self.state.state = "stopped"
                self._write_state()

    def stop(self) -> None:
        self._stop.set()

    def _drain(self) -> None:
        """On a clean stop, archive what ZooKeeper wrote since the last pass (the supervisor stops
        ZooKeeper first, so this is everything)."""
        try:
            with self._lock:
                for _ in range(1000):
                    if self.gen is None or not self._ship():
                        break
        except (Discontinuity, DcosBackupError, OSError) as exc:
            log.warning("stopping without the last records: %s", exc)

    def step(self) -> bool:
        """One pass; True if it archived something (then the next pass comes at once)."""
        try:
            with self._lock:
                if self.gen is None:
                    self._begin()
                busy = self._ship()
            self._resumed()
            self.state.state = "archiving"
            return busy
        except NotYet as exc:
            self._set("waiting", str(exc))
        except Discontinuity as exc:
            self._close(exc)
            return True
        except StorageError as exc:
            self.state.errors += 1
            self._pause(exc)
        except (IntegrityError, OSError) as exc:
            self.state.errors += 1
            self._set("waiting", f"{exc}; retrying")
            log.error("%s; retrying in %.0fs", exc, RETRY_SECONDS)
        self._stop.wait(RETRY_SECONDS)
        return False

    # ------------------------------------------------------------------------------- generations
    def _begin(self) -> None:
        """Resume the stream's last generation if continuity holds, else start a new one."""
        index = RepoIndex(self.repo, self.stream)
        generations = index.of_stream(self.stream)
        latest = generations[-1] if generations else None
        reason = "first generation of this stream"
        if latest is not None:
            try:
                self._resume(latest)
                return
            except Discontinuity as exc:
                reason = exc.reason
                if latest.end is None:
                    self._put_end(latest, exc)
        self._new_generation(reason, latest)

    def _resume(self, gen: Generation) -> None:
        if gen.end is not None:
            raise Discontinuity(str(gen.end.get("reason", f"generation {gen.id} was closed")))
        if gen.info is None:
            raise Discontinuity(f"generation {gen.id} has no {GENERATION_FILE}")
        if gen.info.get("data_dir") != data_dir_identity(self.layout):
            raise Discontinuity("the data directory was replaced (restored?) since the last generation began")
        base = int(gen.info["base_zxid"])
        if not any(s.zxid == base for s in gen.snapshots):
            self._store_base(gen, base)
        last_raw = None
        last = base
        if gen.segments:
            try:
                records = segments.read_segment(self.repo, gen.segments[-1])
            except IntegrityError as exc:
                raise Discontinuity(f"the last segment of {gen.id} is unreadable: {exc}") from exc
            last, last_raw = records[-1].zxid, records[-1].raw
        self.pos = self._locate(last, last_raw)
        self.gen = gen
        self._archived_snapshots = {s.zxid for s in gen.snapshots}
        self.state.segments, self.state.snapshots = len(gen.segments), len(gen.snapshots)
        self._set_progress(last, gen.segments[-1].last_ms if gen.segments else None)
        log.info("resuming generation %s after zxid %s", gen.id, zxid_hex(last))

    def _store_base(self, gen: Generation, base: int) -> None:
        path = next((p for z, p in snapshot_files(self.layout) if z == base), None)
        if path is None or not formats.is_sealed_snapshot(path):
            raise Discontinuity(f"the base snapshot {zxid_hex(base)} of {gen.id} is gone before it was archived")
        ref = segments.put_snapshot(self.repo, gen.prefix, path, base)
        gen.snapshots.append(ref)

    def _new_generation(self, reason: str, previous: Generation | None) -> None:
        newest = newest_sealed_snapshot(self.layout)
        if newest is None:
            raise NotYet(f"no sealed snapshot in {self.layout.snapshots_dir} yet")
        zxid, path = newest
        self._check_epoch_is_new()
        gen = Generation(self.stream, new_generation_id())
        gen.info = {
            "stream": self.stream,
            "generation": gen.id,
            "created": format_time(int(time.time() * 1000)),
            "reason": reason,
            "previous": previous.id if previous else None,
            "host": socket.gethostname(),
            "exhibitor_dir": str(self.layout.exhibitor_dir),
            "data_dir": data_dir_identity(self.layout),
            "base_zxid": zxid,
            "base_time_ms": int(path.stat().st_mtime * 1000),
        }
        pos = self._locate(zxid, None)
        gen.info = self.repo.put_doc(f"{gen.prefix}/{GENERATION_FILE}", gen.info)
        gen.snapshots.append(segments.put_snapshot(self.repo, gen.prefix, path, zxid))
        self.gen, self.pos = gen, pos
        self._archived_snapshots = {zxid}
        self.state.segments, self.state.snapshots = 0, 1
        self._set_progress(zxid, None)
        self._event(f"new base: generation {gen.id} from {path.name} ({reason})", logging.WARNING)

    def _close(self, exc: Discontinuity) -> None:
        with self._lock:
            gen, self.gen, self.pos = self.gen, None, None
        if gen is not None:
            try:
                self._put_end(gen, exc)
            except StorageError as err:
                self._pause(err)
        self._event(f"continuity lost: {exc.reason}", logging.WARNING)

    def _put_end(self, gen: Generation, exc: Discontinuity) -> None:
        doc = {"reason": exc.reason, "closed": format_time(int(time.time() * 1000)), "valid_until": exc.valid_until}
        gen.end = self.repo.put_doc(f"{gen.prefix}/{END_FILE}", doc)

    def _check_epoch_is_new(self) -> None:
        """A new history must not reuse an epoch an archived one had (then one zxid would name two states):
        ZooKeeper's next epoch is above this member's acceptedEpoch, so that must be at least every epoch
        the repository has seen. The supervisor and every restore see to it before ZooKeeper starts."""
        seen = RepoIndex(self.repo).max_epoch()
        mine = data_epoch(self.layout)
        if mine < seen:
            message = (
                f"not archiving {self.layout.zk_dir} as a new history: its epoch {mine} is below epoch "
                f"{seen} of the archived history, so its transactions would reuse archived zxids (raise it "
                "with the supervisor's start, or restore with dcos-zk restore, which set it)"
            )
            self._event(message, logging.ERROR)
            raise NotYet(message)

    # ------------------------------------------------------------------------------- following the logs
    def _locate(self, zxid: int, raw: bytes | None) -> Position:
        """The position right after ``zxid`` in the local logs; Discontinuity if it is not there.

        ``raw`` (resuming) is the record archived last: the local one must be the same bytes.
        """
        candidates = logs_after(log_files(self.layout), zxid)
        if not candidates:
            return Position(None, 0, zxid, raw)
        start, path = candidates[0]
        self.dbid = _dbid(path)
        if start > zxid:
            if follows(zxid, start) and (raw is None or start == zxid + 1):
                return Position(path, 0, zxid, raw)
            raise Discontinuity(f"the log holding zxid {zxid_hex(zxid + 1)} was purged before it was archived")
        with open(path, "rb") as f:
            records, end = segments.read_log_records(f, path.name)
        for record in records:
            if record.zxid == zxid:
                if raw is not None and record.raw != raw:
                    raise Discontinuity(f"zxid {zxid_hex(zxid)} in {path.name} is not the record archived")
                return Position(path, record.end, zxid, record.raw)
        if raw is not None or (records and records[-1].zxid > zxid):
            raise Discontinuity(f"zxid {zxid_hex(zxid)} is no longer in {path.name} (purged, cut or rewritten)")
        # A snapshot taken at an epoch's start (its zxid is no transaction): go on from this log's end.
        return Position(path, end if records else 0, zxid, raw)

    def _ship(self) -> bool:
        assert self.gen is not None and self.pos is not None
        pos = self.pos
        listing = log_files(self.layout)  # before reading: a newer log seen here means ours was complete
        if pos.log is None:
            if not listing:
                return False
            pos.log, pos.offset = logs_after(listing, pos.last_zxid)[0][1], 0
            self.dbid = _dbid(pos.log)
        try:
            with open(pos.log, "rb") as f:
                records, _ = segments.read_log_records(f, pos.log.name, start=pos.offset)
        except FileNotFoundError:
            return self._next_log(listing, purged=True)
        if pos.offset == 0:  # a log followed from its start may begin before the base snapshot
            records = [r for r in records if r.zxid > pos.last_zxid]
        if records:
            # More right away only after a catch-up (several segments' worth); else the next pass.
            return self._archive(records) > 1
        return self._next_log(listing, purged=False)

    def _archive(self, records: list[Record]) -> int:
        assert self.gen is not None and self.pos is not None
        if not follows(self.pos.last_zxid, records[0].zxid):
            raise Discontinuity(
                f"{self.pos.log.name if self.pos.log else 'the log'} jumps from {zxid_hex(self.pos.last_zxid)} "
                f"to {zxid_hex(records[0].zxid)}: transactions in between are not in the logs"
            )
        chunks = _chunks(records)
        for chunk in chunks:
            ref = segments.put_segment(self.repo, self.gen.prefix, self.dbid, chunk)  # not kept: memory stays flat
            # Advanced per segment: a failure on the next one (a full repository) resumes right here.
            self.pos.offset, self.pos.last_zxid, self.pos.last_raw = chunk[-1].end, chunk[-1].zxid, chunk[-1].raw
            self.state.segments += 1
            self._set_progress(ref.last, ref.last_ms)
        self.state.log, self.state.offset = self.pos.log.name if self.pos.log else None, self.pos.offset
        return len(chunks)

    def _next_log(self, listing: list[tuple[int, Path]], purged: bool) -> bool:
        """Move on to the next log once the current one is finished; False if there is none yet."""
        pos = self.pos
        assert pos is not None and pos.log is not None
        current = formats.zxid_of_name(pos.log.name) or 0
        newer = [(z, p) for z, p in listing if z > current]
        if not newer:
            if purged:
                raise Discontinuity(f"{pos.log.name} was purged before it was archived")
            return False
        if purged:
            # Unread records may have gone with it; only a next log that follows within the epoch proves not.
            if newer[0][0] != pos.last_zxid + 1:
                raise Discontinuity(f"{pos.log.name} was purged before it was archived to its end")
        else:
            self._check_not_cut(pos)
        pos.log, pos.offset = newer[0][1], 0
        self.dbid = _dbid(pos.log)
        return True

    def _check_not_cut(self, pos: Position) -> None:
        """ZooKeeper truncates its log to the leader's history after a leader change: records archived
        past the cut were never committed, and the generation must not offer them."""
        assert pos.log is not None
        raw = pos.last_raw
        if raw is None or pos.offset < len(raw):
            return
        with open(pos.log, "rb") as f:
            f.seek(pos.offset - len(raw))
            if f.read(len(raw)) == raw:
                return
            f.seek(0)
            records, _ = segments.read_log_records(f, pos.log.name)
        kept = records[-1].zxid if records else None
        raise Discontinuity(
            f"ZooKeeper cut {pos.log.name} back to zxid {zxid_hex(kept or 0)} (a leader change dropped "
            "transactions that were never committed)",
            valid_until=kept,
        )

    # ------------------------------------------------------------------------------- snapshots
    def _snapshot_loop(self) -> None:
        surveyed = 0.0
        while not self._stop.wait(self.interval * 4):
            try:
                self._store_new_snapshot()
            except StorageError as exc:
                self.state.errors += 1
                self._pause(exc)
            except (DcosBackupError, OSError) as exc:
                self.state.errors += 1
                log.warning("snapshot not archived yet: %s", exc)
            if time.monotonic() - surveyed >= SURVEY_SECONDS:
                surveyed = time.monotonic()
                try:
                    self._survey()
                except (DcosBackupError, OSError) as exc:  # the metrics keep the last survey's numbers
                    log.warning("could not survey the restorable window: %s", exc)

    def _survey(self) -> None:
        """What the repository holds of this stream, restorable: its window and its gaps (one listing)."""
        ranges = sorted(RepoIndex(self.repo, self.stream).ranges(), key=lambda r: (r.first_ms, r.first))
        state = self.state
        state.restorable_since = ranges[0].first_ms / 1000 if ranges else None
        state.restorable_until = max(r.last_ms for r in ranges) / 1000 if ranges else None
        state.gaps = count_gaps(ranges)
        state.surveyed_at = time.time()

    def _store_new_snapshot(self) -> None:
        with self._lock:
            gen, pos = self.gen, self.pos
        if gen is None or pos is None:
            return
        newest = newest_sealed_snapshot(self.layout)
        if newest is None:
            return
        zxid, path = newest
        # Only once the segments passed it: then it belongs to this generation's history.
        if zxid in self._archived_snapshots or zxid < (gen.base or 0) or zxid > pos.last_zxid:
            return
        ref = segments.put_snapshot(self.repo, gen.prefix, path, zxid)
        with self._lock:
            if self.gen is gen:
                gen.snapshots.append(ref)
                self._archived_snapshots.add(zxid)
                self.state.snapshots += 1
        log.info("archived %s (%d bytes stored)", path.name, ref.size)

    # ------------------------------------------------------------------------------- reporting
    def _event(self, message: str, level: int = logging.INFO) -> None:
        log.log(level, "%s", message)
        activity.record(self.layout.activity_log, f"archiver: {message}")

    def _set(self, state: str, message: str) -> None:
        self.state.state, self.state.message = state, message

    def _set_progress(self, zxid: int, ms: int | None) -> None:
        self.state.generation = self.gen.id if self.gen else None
        self.state.last_zxid = zxid_hex(zxid)
        if ms is not None:
            self.state.last_time = format_time(ms)
        self.state.archived_at = time.time()

    def _pause(self, exc: StorageError) -> None:
        full = exc.details.get("reason") == "full"
        message = (
            f"repository {self.store.url} is full: archiving paused, ZooKeeper untouched; retrying every "
            f"{RETRY_SECONDS:.0f}s"
            if full
            else f"repository error: {exc}; retrying every {RETRY_SECONDS:.0f}s"
        )
        if self._paused != message:
            self._event(message, logging.ERROR)
        self._paused = message
        self._set("paused", message)

    def _resumed(self) -> None:
        if self._paused is not None:
            self._paused = None
            self._event("repository writable again: archiving resumed")
            self.state.message = ""

    def _write_state(self) -> None:
        path = self.layout.archiver_state
        tmp = path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(asdict(self.state)) + "\n")
            os.replace(tmp, path)
        except OSError:
            pass  # the state file is a courtesy; the archive is what counts


def oldest_unarchived(layout: MasterLayout, state: dict) -> float | None:
    """When ZooKeeper logged the oldest transaction the repository does not hold yet (epoch seconds), read
    from the local logs after the last archived zxid the archiver's ``state`` names; None when it holds
    everything (or nothing was archived yet). Independent of the archiver running: a stuck one still lags."""
    if not isinstance(state.get("last_zxid"), str):
        return None
    last = int(str(state["last_zxid"]), 16)
    for _, path in logs_after(log_files(layout), last):
        start = int(state.get("offset") or 0) if path.name == state.get("log") else 0
        try:
            with open(path, "rb") as f:
                for record in formats.LogReader(f, path.name, strict=False, start=start).records():
                    if record.txn.zxid > last:
                        return record.txn.time / 1000
        except (OSError, IntegrityError):
            continue  # purged or cut meanwhile: the archiver reports that itself
    return None


def count_gaps(ranges: list[Range]) -> int:
    """Breaks between restorable stretches (sorted by start): a stretch starting after every earlier one ended."""
    gaps, reached = 0, None
    for r in ranges:
        if reached is not None and r.first_ms > reached:
            gaps += 1
        reached = r.last_ms if reached is None else max(reached, r.last_ms)
    return gaps


def _dbid(path: Path) -> int:
    """The database id in a log's header (0 if unreadable): segments carry the header of their log."""
    try:
        with open(path, "rb") as f:
            return formats.FILE_HEADER.unpack(f.read(formats.FILE_HEADER.size))[2]
    except (OSError, struct.error):
        return 0


def _chunks(records: list[Record]) -> list[list[Record]]:
    chunks: list[list[Record]] = [[]]
    size = 0
    for record in records:
        if chunks[-1] and size + len(record.raw) > SEGMENT_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(record)
        size += len(record.raw)
    return chunks
