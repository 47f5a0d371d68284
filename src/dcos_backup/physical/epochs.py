"""ZooKeeper's epoch files (``currentEpoch``, ``acceptedEpoch`` beside the snapshots), read and raised.

A zxid is (epoch, counter). ZooKeeper's next epoch is above the acceptedEpoch of the members that elect
its leader, so a data directory whose epoch files are below an epoch an archived history had would start
a history that reuses that history's zxids: one zxid, two states. Every way this master's data is
replaced raises them first (:func:`raise_epoch`): a point-in-time restore, and the supervisor before it
starts ZooKeeper on an archiving master (covering a plain archive restore, DC/OS's script, an empty data
directory).
"""

from __future__ import annotations

import contextlib
import os

from dcos_backup.master.layout import MasterLayout

EPOCH_FILES = ("currentEpoch", "acceptedEpoch")


def local_epoch(layout: MasterLayout) -> int:
    """The highest epoch this data directory's epoch files hold (0 without them)."""
    epochs = [0]
    for name in EPOCH_FILES:
        with contextlib.suppress(OSError, ValueError):
            epochs.append(int((layout.snapshots_dir / name).read_text().strip()))
    return max(epochs)


def data_epoch(layout: MasterLayout) -> int:
    """The highest epoch this data directory has seen: its epoch files, and the zxids its snapshots' and
    logs' names carry (ZooKeeper's next epoch is above it)."""
    from dcos_backup.physical.formats import epoch_of, zxid_of_name

    zxids = [
        zxid_of_name(p.name) or 0 for d in (layout.snapshots_dir, layout.logs_dir) if d.is_dir() for p in d.iterdir()
    ]
    return max([local_epoch(layout), *(epoch_of(z) for z in zxids)])


def raise_epoch(layout: MasterLayout, epoch: int) -> bool:
    """Make both epoch files at least ``epoch`` (each replaced atomically); True if one changed."""
    changed = False
    layout.snapshots_dir.mkdir(parents=True, exist_ok=True)
    for name in EPOCH_FILES:
        path = layout.snapshots_dir / name
        current = -1
        with contextlib.suppress(OSError, ValueError):
            current = int(path.read_text().strip())
        if current >= epoch:
            continue
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text(str(epoch))
        os.replace(tmp, path)
        changed = True
    return changed
