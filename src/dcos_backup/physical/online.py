"""Copy a serving member's ZooKeeper data to a consistent point, without stopping it (``--online``).

ZooKeeper's snapshots are fuzzy: written while transactions keep being applied. A server makes one
exact by replaying the transaction logs that follow it, and so does a restore from this copy:

1. take the newest *sealed* snapshot (a snapshot still being written has no seal yet);
2. copy every log from the one in force at the snapshot's zxid onwards. Each is copied record by record
   up to its last complete record whose checksum holds: the log being appended to may end in a torn
   record, which is left out (it was not acknowledged: ZooKeeper flushes a record before applying it).
   The copy ends in 64 KiB of zeros, as a preallocated ZooKeeper log does after its last record;
3. logs that appeared meanwhile (a roll-over) are copied too, then ``currentEpoch``/``acceptedEpoch``
   last, so they are never older than the newest transaction copied (ZooKeeper refuses that at start).

The result has the layout of the live directory, so the normal restore (and DC/OS's script) take it.
Snapshots are immutable once sealed and logs only grow, so reading while the server writes is safe;
a file purged by autopurge in the middle of the copy makes the copy fail cleanly (run it again).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from dcos_backup.errors import IntegrityError, NotFound
from dcos_backup.master.layout import MasterLayout
from dcos_backup.physical import formats
from dcos_backup.physical.epochs import EPOCH_FILES
from dcos_backup.physical.replay import log_files, logs_after, newest_sealed_snapshot

log = logging.getLogger(__name__)

_MAX_ROUNDS = 5
# Zeros after the last record: ZooKeeper preallocates 64 MiB; a restore needs only an end marker.
_PADDING = 64 * 1024


@dataclass
class OnlineCopy:
    snapshot: str
    snapshot_zxid: int
    logs: list[str] = field(default_factory=list)
    last_zxid: int = 0
    bytes: int = 0


def copy_log_prefix(source: Path, target: Path) -> formats.LogEnd:
    """Copy the complete, checksummed records of a log that may be growing; pad like ZooKeeper does."""
    with open(source, "rb") as src:
        reader = formats.LogReader(src, source.name, strict=False)
        for _ in reader.records():
            pass
        end = reader.end
        assert end is not None
        src.seek(0)
        with open(target, "wb") as dst:
            remaining = end.valid_end
            while remaining:
                chunk = src.read(min(remaining, 1 << 20))
                if not chunk:
                    raise IntegrityError(f"{source.name} shrank while being copied")
                dst.write(chunk)
                remaining -= len(chunk)
            # Zero padding, as after the last record of a preallocated ZooKeeper log.
            dst.truncate(end.valid_end + _PADDING)
    return end


def copy_online(source: MasterLayout, target: MasterLayout) -> OnlineCopy:
    """Copy ``source``'s live ``zookeeper/`` directory into ``target``'s at a consistent point."""
    target.snapshots_dir.mkdir(parents=True)
    target.logs_dir.mkdir(parents=True)

    newest = newest_sealed_snapshot(source)
    if newest is None:
        raise NotFound(f"no complete snapshot in {source.snapshots_dir}")
    snap_zxid, snap_path = newest
    try:
        shutil.copyfile(snap_path, target.snapshots_dir / snap_path.name)
    except FileNotFoundError as e:
        raise IntegrityError(f"{snap_path.name} was purged while being copied; run the backup again") from e
    result = OnlineCopy(snap_path.name, snap_zxid, bytes=snap_path.stat().st_size)
    log.info("copied %s (%d bytes)", snap_path.name, result.bytes)

    ends: dict[str, formats.LogEnd] = {}
    newest_name = None
    for _ in range(_MAX_ROUNDS):
        listing = logs_after(log_files(source), snap_zxid)
        # Re-copy the log that was newest last round: if it rolled over meanwhile, it got more records.
        for _, path in listing:
            if path.name in ends and path.name != newest_name:
                continue
            try:
                ends[path.name] = copy_log_prefix(path, target.logs_dir / path.name)
            except FileNotFoundError as e:
                raise IntegrityError(f"{path.name} was purged while being copied; run the backup again") from e
            log.info("copied %s up to offset %d (%s)", path.name, ends[path.name].valid_end, ends[path.name].reason)
        newest_name = listing[-1][1].name if listing else None
        relisted = logs_after(log_files(source), snap_zxid)
        if not relisted or relisted[-1][1].name == newest_name:
            break
    else:
        raise IntegrityError("the transaction logs kept rolling over during the copy; run the backup again")
    result.bytes += sum(end.valid_end for end in ends.values())
    result.last_zxid = max([snap_zxid, *(end.last_zxid for end in ends.values() if end.last_zxid is not None)])
    result.logs = sorted(ends, key=lambda name: formats.zxid_of_name(name) or 0)
    for name in EPOCH_FILES:  # last: an epoch file must not be older than the transactions copied
        epoch_file = source.snapshots_dir / name
        if epoch_file.exists():
            shutil.copyfile(epoch_file, target.snapshots_dir / name)
    return result
