"""Restored data without its sessions (``dcos-zk restore --drop-sessions``): ZooKeeper's data directory rewritten
as one snapshot of its last zxid that holds no session and no ephemeral znode of a session.

A restored snapshot brings back the sessions that were open when it was taken, and their ephemerals: a
leader latch or a lock of a process that died during the outage stays until that session times out on the
restored ensemble, and its owner cannot take it again meanwhile. Without them (etcd's ``--mark-compacted``
is the analogue), every client registers afresh at once. Container and TTL nodes are kept (their owner is
not a session).

The tree comes from the replay that checks the staged data (:mod:`.replay`, every digest checked on the
way); it is written in ZooKeeper's snapshot format (jute, Adler-32 seals) with ZooKeeper's tree digest of
the tree without the dropped nodes, so that ZooKeeper checks it on load as it checks its own. Every other
snapshot and log is removed: nothing is left to replay over it.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

from dcos_backup.master.layout import MasterLayout
from dcos_backup.physical import formats
from dcos_backup.physical.replay import TreeStore, session_owned
from dcos_backup.physical.verify import rebuilt_data_dir

log = logging.getLogger(__name__)

_MASK = (1 << 64) - 1
_SNAPSHOT_VERSION = 2
_NO_DBID = -1


class _SealedWriter:
    """Jute fields into a file, keeping the Adler-32 of every byte written (the snapshot's seals)."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.adler = 1

    def raw(self, data: bytes) -> None:
        self.adler = zlib.adler32(data, self.adler)
        self.out.write(data)

    def int32(self, value: int) -> None:
        self.raw(struct.pack(">i", value))

    def int64(self, value: int) -> None:
        self.raw(struct.pack(">q", value))

    def buffer(self, data: bytes | None) -> None:
        self.raw(struct.pack(">i", -1) if data is None else struct.pack(">i", len(data)) + data)

    def string(self, text: str) -> None:
        self.buffer(text.encode())

    def seal(self) -> None:
        self.int64(self.adler)
        self.string("/")


def _write_acls(w: _SealedWriter, acls: dict[str, int]) -> None:
    w.int32(len(acls))
    for text, key in acls.items():
        w.int64(key)
        entries = json.loads(text)
        w.int32(len(entries))
        for perms, scheme, ident in entries:
            w.int32(perms)
            w.string(scheme)
            w.string(ident)


def write_snapshot_without_sessions(store: TreeStore, last_zxid: int, target: Path) -> tuple[int, int]:
    """The store's tree as a snapshot at ``target``: no sessions, no session's ephemerals, ZooKeeper's tree
    digest at ``last_zxid``. Returns (nodes written, ephemerals dropped)."""
    store.flush()
    db = store.db
    # Parents before children, in ZooKeeper's own pre-order: '/' sorts before every other character.
    order = "ORDER BY replace(path, '/', char(1))"
    acls = {text: key for key, (text,) in enumerate(db.execute("SELECT DISTINCT acl FROM nodes ORDER BY acl"), 1)}
    digest, written, dropped = store.digest, 0, 0
    with open(target, "wb") as f:
        w = _SealedWriter(f)
        w.raw(formats.FILE_HEADER.pack(formats.SNAP_MAGIC, _SNAPSHOT_VERSION, _NO_DBID))
        w.int32(0)  # sessions: none
        _write_acls(w, acls)
        for path, data, acl, stat, owner, node_digest in db.execute(
            f"SELECT path, data, acl, stat, owner, digest FROM nodes {order}"
        ):
            if session_owned(owner):
                digest -= node_digest
                dropped += 1
                continue
            w.string(path)
            w.buffer(data)
            w.int64(acls[acl])
            w.raw(stat)
            written += 1
        w.string("/")
        w.seal()
        w.int64(last_zxid)
        w.int32(formats.DIGEST_VERSION)
        w.int64(_signed(digest & _MASK))
        w.seal()
        f.flush()
        os.fsync(f.fileno())
    return written, dropped


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def drop_sessions(staged: MasterLayout, tmp_dir: Path) -> tuple[int, int]:
    """Rewrite ``staged``'s ZooKeeper data as one snapshot without sessions (module docstring); returns
    (nodes kept, ephemerals dropped). The caller replays the result to check it and to mark it."""
    with rebuilt_data_dir(staged, tmp_dir, keep_data=True) as (store, replayed):
        last = int(replayed.last_zxid, 16)
        name = f"snapshot.{last:x}"
        partial = staged.snapshots_dir / f".{name}.partial"
        written, dropped = write_snapshot_without_sessions(store, last, partial)
        sessions = len(store.sessions)
    for directory in (staged.snapshots_dir, staged.logs_dir):
        for path in directory.iterdir():
            if formats.kind_of_name(path.name) is not None:
                path.unlink()
    os.rename(partial, staged.snapshots_dir / name)
    log.info(
        "--drop-sessions: the data rewritten as %s without its %d sessions' %d ephemeral nodes (%d nodes kept)",
        name,
        sessions,
        dropped,
        written,
    )
    return written, dropped
