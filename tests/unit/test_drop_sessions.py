"""``--drop-sessions`` (issue 26 item 2): the restored data rewritten as one snapshot without sessions and without
their ephemerals, in ZooKeeper's format, with the tree digest of what is left (checked by a replay here, by
ZooKeeper itself in tests/e2e/test_rewound_ensemble.py)."""

from __future__ import annotations

import struct
import zlib

from tests.zkfiles import OPEN_ACL, jute_acls, jute_buffer

from dcos_backup.master.layout import MasterLayout
from dcos_backup.physical import formats
from dcos_backup.physical.replay import CONTAINER_OWNER
from dcos_backup.physical.sessions import drop_sessions
from dcos_backup.physical.verify import rebuilt_data_dir

SESSION = 0x1234
ZXID = 0x100000009


def snapshot_with_a_session() -> bytes:
    out = struct.pack(">iiq", formats.SNAP_MAGIC, 2, -1)
    out += struct.pack(">i", 1) + struct.pack(">qi", SESSION, 30000)  # one session
    out += struct.pack(">i", 1) + struct.pack(">q", 1) + jute_acls(OPEN_ACL)
    tree = [
        ("", 0),
        ("/a", 0),
        ("/a/latch", SESSION),  # the session's ephemeral
        ("/a/b", 0),
        ("/a-x", 0),  # sorts between /a and /a/b by bytes: the rewrite must keep parents before children
        ("/c", CONTAINER_OWNER),
        ("/zookeeper", 0),
        ("/zookeeper/quota", 0),
    ]
    for i, (path, owner) in enumerate(tree):
        stat = formats.Stat(0x100000001 + i, 0x100000001 + i, 1, 1, 0, 0, 0, owner, 0x100000001 + i).pack()
        out += jute_buffer(path.encode()) + jute_buffer(path.encode() or None) + struct.pack(">q", 1) + stat
    out += jute_buffer(b"/")
    return out + struct.pack(">q", zlib.adler32(out)) + jute_buffer(b"/")


def test_drop_sessions_leaves_one_snapshot_without_sessions_or_their_ephemerals(tmp_path):
    layout = MasterLayout(tmp_path / "exhibitor")
    layout.snapshots_dir.mkdir(parents=True)
    layout.logs_dir.mkdir(parents=True)
    (layout.snapshots_dir / "acceptedEpoch").write_text("1")
    (layout.snapshots_dir / f"snapshot.{ZXID:x}").write_bytes(snapshot_with_a_session())
    with rebuilt_data_dir(layout, tmp_path) as (_, before):
        assert before.sessions == 1 and before.nodes == 8

    kept, dropped = drop_sessions(layout, tmp_path)

    assert (kept, dropped) == (7, 1)
    assert sorted(p.name for p in layout.snapshots_dir.iterdir()) == ["acceptedEpoch", f"snapshot.{ZXID:x}"]
    with open(layout.snapshots_dir / f"snapshot.{ZXID:x}", "rb") as f:
        reader = formats.SnapshotReader(f, "rewritten")
        assert reader.sessions == {}
        paths = [node.path for node in reader.nodes()]
        recorded = reader.finish()
    assert "/a/latch" not in paths and {"/a", "/a/b", "/a-x", "/c", "/zookeeper"} <= set(paths)
    assert paths.index("/a") < paths.index("/a/b") and paths[0] == ""
    assert recorded is not None and recorded.zxid == ZXID
    with rebuilt_data_dir(layout, tmp_path) as (_, after):  # the replay checks the recorded digest
        assert after.sessions == 0 and after.nodes == 7 and after.last_zxid == formats.zxid_hex(ZXID)
        assert after.digests_checked == 1 and recorded.digest & ((1 << 64) - 1) == int(after.digest, 16)
    assert formats.is_sealed_snapshot(layout.snapshots_dir / f"snapshot.{ZXID:x}")
