"""A point-in-time repository in hostile hands (issue 24 item 6), through ``dcos-zk`` as an operator runs it.

Someone with write access to the repository rewrites a log segment so that it passes every check a
ZooKeeper log has (a transaction's data changed, its Adler-32 fixed, the object renamed with the sha256
of its new content), or edits a generation's ``generation.json``/``end.json``; a second cluster archives
into the first one's repository. Every one of them is refused before a byte of it is used, with one
line, and the first cluster's restores stay its own.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from pathlib import Path

import pytest
from tests import zkfiles
from tests.unit.test_physical_continuous import E1, DataDir

from dcos_backup.physical.continuous.archiver import Archiver
from dcos_backup.physical.continuous.index import RepoIndex
from dcos_backup.physical.continuous.repository import Repository
from dcos_backup.physical.formats import OpCode
from dcos_backup.physical.replay import _DigestCheck
from dcos_backup.storage.crypto import load_key
from dcos_backup.storage.local import LocalStore
from dcos_backup.testing.tools import run_tool

HEADER = 16  # a log file's header: magic, version, dbid


def key_file(path: Path) -> Path:
    path.write_bytes(os.urandom(32))
    path.chmod(0o600)
    return path


@pytest.fixture
def archived(tmp_path: Path) -> tuple[Path, Path, DataDir]:
    """A repository holding one stream archived under this cluster's key: (repo, key file, data)."""
    data = DataDir(tmp_path / "master")
    data.snapshot(E1, {"/a": b"x"})
    data.write(E1 + 1, range(E1 + 1, E1 + 11))
    key = key_file(tmp_path / "repo.key")
    repo = tmp_path / "repo"
    repository = Repository(LocalStore(repo), load_key(key))
    repository.check_identity(create=True)
    Archiver(data.layout, repository, "master-1").step()
    return repo, key, data


def dcos_zk(*args: str, key: Path) -> tuple[int, str, str]:
    done = run_tool("dcos-zk", *args, "--repo-key-file", str(key))
    return done.returncode, done.stdout, done.stderr


def rewrite(body: bytes, zxid: int, data: bytes) -> bytes:
    """The segment with transaction ``zxid``'s data replaced, every record's Adler-32 right (an attacker's
    rewrite that any ZooKeeper log reader accepts)."""
    out, pos = body[:HEADER], HEADER
    while pos < len(body):
        _, length = struct.unpack_from(">qi", body, pos)
        raw = body[pos + 12 : pos + 12 + length]
        if struct.unpack_from(">q", raw, 12)[0] == zxid:  # header: session, cxid, zxid, time
            raw = zkfiles.create_txn(zxid, f"/n{zxid:x}", data, time=struct.unpack_from(">q", raw, 20)[0])
        out += struct.pack(">qi", zlib.adler32(raw), len(raw)) + raw + b"B"
        pos += 12 + length + 1
    return out


def test_a_rewritten_segment_renamed_with_its_new_sha256_is_refused(archived, tmp_path):
    repo, key, _ = archived
    (segment,) = RepoIndex(Repository(LocalStore(repo), load_key(key))).generations[0].segments
    forged = rewrite((repo / segment.key).read_bytes(), E1 + 5, b"attacker")
    assert forged != (repo / segment.key).read_bytes()
    (repo / segment.key).unlink()
    renamed = segment.key.rsplit("_", 1)[0] + f"_{hashlib.sha256(forged).hexdigest()}.log"
    (repo / renamed).write_bytes(forged)

    code, _, err = dcos_zk("archive", "verify", "--repo", str(repo), key=key)
    assert code == 1 and "its MAC does not verify" in err and len(err.strip().splitlines()) == 1
    target = DataDir(tmp_path / "restored", myid="2")
    args = ("restore", "--repo", str(repo), "--latest", "--exhibitor-dir", str(target.layout.exhibitor_dir))
    code, _, err = dcos_zk(*args, key=key)
    assert code == 1 and "its MAC does not verify" in err
    assert not any(target.layout.logs_dir.iterdir())  # nothing restored


def test_an_edited_generation_document_is_refused(archived):
    repo, key, _ = archived
    (info,) = repo.glob("streams/master-1/*/generation.json")
    info.write_text(info.read_text().replace('"reason": "first generation', '"reason": "edited'))
    code, _, err = dcos_zk("log", "--repo", str(repo), key=key)
    assert code == 1 and "generation.json: its MAC does not verify" in err


def test_a_second_cluster_is_refused_with_one_line(archived, tmp_path):
    repo, key, _ = archived
    other_key = key_file(tmp_path / "other.key")
    other = DataDir(tmp_path / "other-master")
    other.snapshot(E1, {"/b": b"y"})
    args = ("archive", "--repo", str(repo), "--exhibitor-dir", str(other.layout.exhibitor_dir), "--stream", "master-1")
    code, _, err = dcos_zk(*args, key=other_key)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "belongs to another cluster" in err and load_key(key).id in err
    for command in (("log",), ("export", str(tmp_path / "x.tar.gz"), "--latest")):
        code, _, err = dcos_zk(*command, "--repo", str(repo), key=other_key)
        assert code == 2 and "belongs to another cluster" in err
    # The first cluster's stream is untouched: still one generation, still live.
    (gen,) = RepoIndex(Repository(LocalStore(repo), load_key(key))).generations
    assert gen.end is None


def test_a_transaction_whose_digest_was_dropped_is_refused(tmp_path):
    from dcos_backup.errors import IntegrityError
    from dcos_backup.physical.replay import TreeStore

    check = _DigestCheck(TreeStore(tmp_path / "tree.db"), None, required=True)  # ZooKeeper wrote digests with this data
    with pytest.raises(IntegrityError, match="has no tree digest"):
        check.after(E1 + 1, None, OpCode.setData)
    check.after(E1 + 2, None, OpCode.createSession)  # ZooKeeper writes some session transactions without one


def test_a_planted_or_renamed_compacted_snapshot_is_refused(archived, tmp_path):
    """Issue 29 item 3: a "compacted snapshot" (the newest at its point, so a restore would start from it)
    written by someone without the repository key, or an archived snapshot renamed into one, is never
    restored from: its MAC covers the ``-compacted`` in its name like the rest."""
    import gzip

    repo, key, _ = archived
    (gen,) = RepoIndex(Repository(LocalStore(repo), load_key(key))).generations
    (snap,) = gen.snapshots
    planted = zkfiles.snapshot_file({"/a": b"attacker"}, E1 + 5)
    name = f"{gen.prefix}/snap/{E1 + 5:016x}-{E1 + 5:016x}-compacted"
    (repo / f"{name}_{hashlib.sha256(planted).hexdigest()}.snap.gz").write_bytes(gzip.compress(planted))
    (newest,) = [
        s for s in RepoIndex(Repository(LocalStore(repo), load_key(key))).generations[0].snapshots if s.compacted
    ]
    assert newest.zxid == E1 + 5  # the index lists it; the plan would pick it for any point after E1+5

    target = DataDir(tmp_path / "restored", myid="2")
    args = (
        "restore",
        "--repo",
        str(repo),
        "--to-zxid",
        hex(E1 + 8),
        "--exhibitor-dir",
        str(target.layout.exhibitor_dir),
    )
    code, _, err = dcos_zk(*args, key=key)
    assert code == 1 and "-compacted_" in err and "its MAC does not verify" in err
    assert not any(target.layout.logs_dir.iterdir()) and not any(target.layout.snapshots_dir.glob("snapshot.*"))
    code, _, err = dcos_zk("archive", "verify", "--repo", str(repo), key=key)
    assert code == 1 and "its MAC does not verify" in err

    # The genuine snapshot renamed as a compacted one (its MAC kept): refused too.
    for planted_file in repo.glob("streams/*/*/snap/*-compacted_*"):
        planted_file.unlink()
    renamed = snap.key.replace(f"-{snap.consistent:016x}_", f"-{snap.consistent:016x}-compacted_")
    (repo / snap.key).rename(repo / renamed)
    code, _, err = dcos_zk(*args, key=key)
    assert code == 1 and "its MAC does not verify" in err
