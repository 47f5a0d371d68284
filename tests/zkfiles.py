"""Builders of ZooKeeper snapshot and transaction-log bytes (jute layout), for unit tests.

Real server-written files are used end to end; these give unit tests small, valid files (and exact
offsets to damage) without a server.
"""

from __future__ import annotations

import hashlib
import random
import struct
import zlib
from pathlib import Path

from dcos_backup.master.layout import MasterLayout
from dcos_backup.physical import formats
from dcos_backup.physical.formats import OpCode

OPEN_ACL = [(31, "world", "anyone")]


def jute_buffer(raw: bytes | None) -> bytes:
    return struct.pack(">i", -1) if raw is None else struct.pack(">i", len(raw)) + raw


def jute_acls(acls: list[tuple[int, str, str]]) -> bytes:
    out = struct.pack(">i", len(acls))
    for perms, scheme, ident in acls:
        out += struct.pack(">i", perms) + jute_buffer(scheme.encode()) + jute_buffer(ident.encode())
    return out


def create_txn(zxid: int, path: str, data: bytes, digest: int | None = None, time: int = 1700000000000) -> bytes:
    header = struct.pack(">qiqqi", 0x1234, 1, zxid, time, OpCode.create)
    body = jute_buffer(path.encode()) + jute_buffer(data) + jute_acls(OPEN_ACL) + b"\x00" + struct.pack(">i", -1)
    tail = b"" if digest is None else struct.pack(">iq", 2, digest)
    return header + body + tail


def log_file(txns: list[bytes], padding: int = 64) -> bytes:
    out = struct.pack(">iiq", formats.LOG_MAGIC, 2, 0)
    for raw in txns:
        out += struct.pack(">qi", zlib.adler32(raw), len(raw)) + raw + b"B"
    return out + b"\x00" * padding


def snapshot_file(nodes: dict[str, bytes], zxid: int, acl_ids: dict[str, int] | None = None) -> bytes:
    """A snapshot (no digest record, as before 3.6) of a root with the given top-level children; every node
    names ACL 1 (open, the map's one entry) unless ``acl_ids`` gives it another id."""
    out = struct.pack(">iiq", formats.SNAP_MAGIC, 2, -1)
    out += struct.pack(">i", 0)  # sessions
    out += struct.pack(">i", 1) + struct.pack(">q", 1) + jute_acls(OPEN_ACL)  # the ACL map: id 1 -> open
    stat = formats.Stat(0, 0, 0, 0, 0, 0, 0, 0, 0).pack()
    tree = {"": b"", "/zookeeper": b"", "/zookeeper/quota": b"", **nodes}
    for path, data in tree.items():
        node_stat = formats.Stat(zxid, zxid, 1, 1, 0, 0, 0, 0, zxid).pack() if path.count("/") == 1 else stat
        acl_id = (acl_ids or {}).get(path, 1)
        out += jute_buffer(path.encode()) + jute_buffer(data) + struct.pack(">q", acl_id) + node_stat
    out += jute_buffer(b"/")
    return out + struct.pack(">q", zlib.adler32(out)) + jute_buffer(b"/")


def random_snapshot(rng: random.Random, zxid: int, size: int) -> bytes:
    """About ``size`` bytes of snapshot, mostly incompressible node data."""
    nodes = {f"/n{i:05d}": rng.randbytes(1000) for i in range(max(1, size // 1040))}
    return snapshot_file(nodes, zxid)


def random_log(rng: random.Random, first_zxid: int, size: int, padding: int) -> bytes:
    txns = [create_txn(first_zxid + i, f"/log{i:05d}", rng.randbytes(1000)) for i in range(max(1, size // 1100))]
    return log_file(txns, padding)


def make_exhibitor_dir(root: Path, myid: str = "2", seed: int = 0, size: int = 200_000) -> Path:
    rng = random.Random(seed)
    layout = MasterLayout(root / "exhibitor")
    layout.snapshots_dir.mkdir(parents=True)
    layout.logs_dir.mkdir(parents=True)
    layout.myid_file.write_text(myid + "\n")
    layout.console_log.write_text("console log\n")
    (layout.snapshots_dir / "acceptedEpoch").write_text("1")
    for zxid in (0x100000000, 0x100000ABC):
        (layout.snapshots_dir / f"snapshot.{zxid:x}").write_bytes(random_snapshot(rng, zxid, size))
    (layout.logs_dir / "log.100000001").write_bytes(random_log(rng, 0x100000001, size, padding=size))
    return layout.exhibitor_dir


def tree_digest(directory: Path) -> dict[str, str]:
    """Every file's sha256 (the data-dir lock file aside: a command that takes the lock creates it)."""
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(directory.rglob("*"))
        if p.name != "zookeeper.lock"
    }


def left_in(ex: Path) -> list[str]:
    """What an exhibitor dir holds besides the data-dir lock file (which stays, as lock files do) and the
    restore mark (what a restore leaves on purpose, for the supervisor's check)."""
    return sorted(p.name for p in ex.iterdir() if p.name not in ("zookeeper.lock", "zookeeper.restore-mark"))


def data_of(ex: Path) -> dict[str, str]:
    return {k: v for k, v in tree_digest(ex / "zookeeper").items() if not k.endswith(("myid", "zookeeper.out"))}
