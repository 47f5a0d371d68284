"""The snapshot writer (compaction's): what it writes reads back through the snapshot reader node for node,
with the tree digest it records equal to the digest the reader computes from the nodes."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
from tests.zkfiles import snapshot_file

from dcos_backup.errors import IntegrityError
from dcos_backup.physical import formats
from dcos_backup.physical.formats import OpCode, Txn
from dcos_backup.physical.replay import TreeStore

OPEN = [(31, "world", "anyone")]
PRIVATE = [(31, "digest", "svc:hash"), (1, "world", "anyone")]


def loaded(tmp_path: Path, name: str, raw: bytes, keep_data: bool = True) -> tuple[TreeStore, formats.SnapshotReader]:
    store = TreeStore(tmp_path / f"{name}.db", keep_data=keep_data)
    reader = formats.SnapshotReader(io.BytesIO(raw), name)
    store.load_snapshot(reader)
    return store, reader


def create(zxid: int, path: str, data: bytes | None, acl=OPEN, session: int = 0, ephemeral: bool = False) -> Txn:
    record = formats.Create(path, data, acl, ephemeral, -1)
    return Txn(session, 1, zxid, 1_700_000_000_000 + zxid, OpCode.create, record, None)


def grown_tree(tmp_path: Path, rng: random.Random) -> TreeStore:
    """A tree whose sorted paths are not its pre-order ("/a-b" sorts between "/a" and "/a/c"), with
    several ACLs, null and binary data, sessions and an ephemeral node."""
    store, _ = loaded(tmp_path, "base", snapshot_file({"/a": b"1"}, 0x100000005))
    store.sessions = {0x51: 30000, 0x52: 40000}
    zxid = 0x100000006
    for path in ["/a/c", "/a-b", "/a/c/d", "/a.z", "/a-b/x", "/b"]:
        store.apply(create(zxid, path, rng.randbytes(rng.randrange(0, 300)), PRIVATE if "b" in path else OPEN))
        zxid += 1
    store.apply(create(zxid, "/b/null", None))
    store.apply(create(zxid + 1, "/b/eph", b"e", session=0x51, ephemeral=True))
    store.apply(Txn(0, 1, zxid + 2, 1, OpCode.setData, formats.SetData("/a/c", b"changed", 3), None))
    return store


def test_a_written_snapshot_reads_back_node_for_node_with_its_digest(tmp_path):
    store = grown_tree(tmp_path, random.Random(1))
    out = io.BytesIO()
    assert store.write_snapshot(out, 0x100000010, dbid=-1) == store.count
    raw = out.getvalue()

    back, reader = loaded(tmp_path, "back", raw)
    recorded = reader.finish()
    assert recorded is not None and (recorded.zxid, recorded.version) == (0x100000010, formats.DIGEST_VERSION)
    assert recorded.digest & (1 << 64) - 1 == back.digest == store.digest
    assert back.sessions == {0x51: 30000, 0x52: 40000}
    assert [(n.path, n.data, n.acl, n.stat) for n in back.iter_nodes()] == [
        (n.path, n.data, n.acl, n.stat) for n in store.iter_nodes()
    ]
    assert back.node("/b/null").data is None and back.node("/b/eph").stat.ephemeral_owner == 0x51
    assert formats.snapshot_digest_zxid(_file(tmp_path, raw)) == 0x100000010
    assert formats.is_sealed_snapshot(_file(tmp_path, raw))


def test_the_same_tree_writes_the_same_bytes(tmp_path):
    a, b = io.BytesIO(), io.BytesIO()
    (tmp_path / "1").mkdir()
    (tmp_path / "2").mkdir()
    grown_tree(tmp_path / "1", random.Random(2)).write_snapshot(a, 7)
    grown_tree(tmp_path / "2", random.Random(2)).write_snapshot(b, 7)
    assert a.getvalue() == b.getvalue()


@pytest.mark.parametrize("where", ["node", "seal", "digest"])
def test_a_changed_byte_of_a_written_snapshot_is_refused(tmp_path, where):
    out = io.BytesIO()
    grown_tree(tmp_path, random.Random(3)).write_snapshot(out, 0x100000010)
    raw = bytearray(out.getvalue())
    offset = {"node": raw.index(b"/a-b/x") + 2, "seal": len(raw) - 30, "digest": len(raw) - 15}[where]
    raw[offset] ^= 0x01
    with pytest.raises(IntegrityError):
        _, reader = loaded(tmp_path, "bad", bytes(raw))
        reader.finish()


def test_a_store_without_data_cannot_write_a_snapshot(tmp_path):
    store, _ = loaded(tmp_path, "nodata", snapshot_file({"/a": b"1"}, 5), keep_data=False)
    with pytest.raises(ValueError):
        store.write_snapshot(io.BytesIO(), 5)


def _file(tmp_path: Path, raw: bytes) -> Path:
    path = tmp_path / "snapshot.100000010"
    path.write_bytes(raw)
    return path
