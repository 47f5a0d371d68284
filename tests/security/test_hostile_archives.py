"""Hostile and damaged dcos-zk archives (issue 15 items 7, 9-13): each is refused, nothing live changes.

Every archive here is built byte by byte the way an attacker or a failing disk would, then given to
restore, verify and info, which share one tar reader: a damaged header anywhere is an error, every size
a header claims is bounded before reading, member counts are capped, the sha256 file is checked, and a
restore refuses whatever verify refuses. No ZooKeeper server is needed: the data dir is "stopped".
"""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest
from tests.helpers import run_tool, small_tmpfs
from tests.zkfiles import make_exhibitor_dir, snapshot_file, tree_digest

from dcos_backup.errors import IntegrityError, StorageError, UsageError
from dcos_backup.master.layout import MasterLayout
from dcos_backup.physical import archive_info, archive_restore, archive_write, tarsafe
from dcos_backup.physical.verify import verify_data_archive


def good_archive(tmp_path: Path) -> tuple[Path, Path]:
    """A master's exhibitor dir and a verified backup of it (2 snapshots, 1 log, acceptedEpoch)."""
    ex = make_exhibitor_dir(tmp_path)
    archive = tmp_path / "good.tar.gz"
    archive_write.backup(ex, archive)
    return ex, archive


def tar_bytes(archive: Path) -> bytes:
    return gzip.decompress(archive.read_bytes())


def header_offsets(raw: bytes) -> list[int]:
    """Offsets of every member's header in an uncompressed tar (ustar/GNU, no pax)."""
    offsets, pos = [], 0
    while raw[pos : pos + 512].strip(b"\0"):
        offsets.append(pos)
        pos = member_end(raw, pos)
    return offsets


def member_end(raw: bytes, offset: int) -> int:
    """Where the member whose header is at ``offset`` ends (header plus padded data)."""
    size = tarfile.TarInfo.frombuf(raw[offset : offset + 512], "utf-8", "surrogateescape").size
    return offset + 512 + (size + 511) // 512 * 512


def rewritten(target: Path, raw: bytes) -> Path:
    target.write_bytes(gzip.compress(raw))
    return target


def every_reader_refuses(ex: Path, archive: Path, match: str) -> None:
    """restore, verify and info all refuse ``archive`` with ``match``; the live data is untouched."""
    before = tree_digest(ex)
    with pytest.raises(IntegrityError, match=match):
        archive_restore.restore(ex, archive)
    assert tree_digest(ex) == before
    with pytest.raises(IntegrityError, match=match):
        verify_data_archive(archive)
    with pytest.raises(IntegrityError, match=match):
        archive_info.info(archive)


# ------------------------------------------------------------------------------ item 7: damaged headers
def test_a_damaged_header_checksum_mid_archive_is_an_error_not_the_end(tmp_path):
    ex, archive = good_archive(tmp_path)
    raw = bytearray(tar_bytes(archive))
    last = header_offsets(bytes(raw))[-1]  # the last member: tarfile would stop before it and say nothing
    raw[last + 148 : last + 156] = b"0000000\0"  # the header checksum field
    every_reader_refuses(ex, rewritten(tmp_path / "bad-chksum.tar.gz", bytes(raw)), "damaged tar header")


def test_a_header_wiped_to_zeros_cannot_hide_the_rest(tmp_path):
    ex, archive = good_archive(tmp_path)
    raw = bytearray(tar_bytes(archive))
    third = header_offsets(bytes(raw))[2]
    raw[third : third + 512] = b"\0" * 512  # reads as the end-of-archive marker
    every_reader_refuses(ex, rewritten(tmp_path / "zeroed.tar.gz", bytes(raw)), "after the tar end-of-archive")


def test_a_tar_stream_without_its_end_marker_is_refused(tmp_path):
    ex, archive = good_archive(tmp_path)
    raw = tar_bytes(archive)
    cut = raw[: member_end(raw, header_offsets(raw)[-1])]  # every member whole, the zero blocks gone
    every_reader_refuses(ex, rewritten(tmp_path / "no-end.tar.gz", cut), "without its end-of-archive marker")


def test_the_sha256_file_is_checked_by_restore_verify_and_info(tmp_path):
    ex, archive = good_archive(tmp_path)
    sidecar = tmp_path / "good.tar.gz.sha256"
    sidecar.write_text("0" * 64 + "  good.tar.gz\n")
    every_reader_refuses(ex, archive, "does not match its sha256 file")
    sidecar.write_text("not a digest\n")
    every_reader_refuses(ex, archive, "does not hold a sha256")


# --------------------------------------------------------------- item 9: restore refuses what verify refuses
def crafted(path: Path, members: list[tuple[str, bytes | None]]) -> Path:
    """A gzip tar of ``members``: (name, data), data None for a directory."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


SNAP = "./zookeeper/snapshot/version-2/snapshot.100000abc"


def test_a_garbage_snapshot_is_refused_by_restore_as_by_verify(tmp_path):
    ex = make_exhibitor_dir(tmp_path)
    archive = crafted(tmp_path / "garbage.tar.gz", [("./zookeeper", None), (SNAP, b"\x00garbage" * 1000)])
    before = tree_digest(ex)
    with pytest.raises(IntegrityError) as refused:
        archive_restore.restore(ex, archive)
    with pytest.raises(IntegrityError) as verified:
        verify_data_archive(archive)
    assert str(refused.value) == str(verified.value)
    assert tree_digest(ex) == before


def test_a_snapshot_naming_an_acl_nothing_defines_is_refused(tmp_path):
    """A fuzzy snapshot may name an ACL its map lacks, for the transaction after it to define; a crafted one
    whose ACL nothing defines would leave a node no ACL can be fetched for: restore and verify refuse it,
    nothing live changes, and the CLI says so in one line."""
    ex = make_exhibitor_dir(tmp_path)
    snapshot = snapshot_file({"/app": b"x"}, 0x100000ABC, acl_ids={"/app": 4242})
    archive = crafted(tmp_path / "acl.tar.gz", [("./zookeeper", None), (SNAP, snapshot)])
    before = tree_digest(ex)
    with pytest.raises(IntegrityError, match="node /app refers to ACL 4242, which neither"):
        archive_restore.restore(ex, archive)
    with pytest.raises(IntegrityError, match="node /app refers to ACL 4242, which neither"):
        verify_data_archive(archive)
    assert tree_digest(ex) == before
    refused = run_tool("dcos-zk", "restore", str(archive), "--exhibitor-dir", str(ex))
    assert refused.returncode == 1 and len(refused.stderr.splitlines()) == 1, refused.stderr
    assert refused.stderr.startswith("error: ") and "ACL 4242" in refused.stderr


def test_no_verify_skips_the_replay_and_says_so_loudly(tmp_path):
    ex = make_exhibitor_dir(tmp_path)
    archive = crafted(tmp_path / "garbage.tar.gz", [("./zookeeper", None), (SNAP, b"\x00garbage" * 1000)])
    refused = run_tool("dcos-zk", "restore", str(archive), "--exhibitor-dir", str(ex))
    assert refused.returncode == 1 and refused.stderr.splitlines()[-1].startswith("error: "), refused.stderr
    assert "Traceback" not in refused.stderr
    forced = run_tool("dcos-zk", "restore", "--no-verify", str(archive), "--exhibitor-dir", str(ex))
    assert forced.returncode == 0, forced.stderr
    assert "WARNING: --no-verify" in forced.stderr and "NOT verified" in forced.stdout
    assert (MasterLayout(ex).snapshots_dir / "snapshot.100000abc").read_bytes() == b"\x00garbage" * 1000


def test_a_member_twice_is_refused(tmp_path):
    ex, archive = good_archive(tmp_path)
    raw = tar_bytes(archive)
    last = header_offsets(raw)[-1]
    end = member_end(raw, last)
    twice = raw[:end] + raw[last:end] + b"\0" * 1024  # the last member again, then the end marker
    every_reader_refuses(ex, rewritten(tmp_path / "twice.tar.gz", twice), "appears twice")


def test_an_archive_without_files_is_refused(tmp_path):
    ex = make_exhibitor_dir(tmp_path)
    archive = crafted(tmp_path / "dirs.tar.gz", [("./zookeeper", None), ("./zookeeper/snapshot", None)])
    every_reader_refuses(ex, archive, "holds no files")


# ------------------------------------------------------------------ item 10: sizes claimed by a header
def claiming(path: Path, size: int, kind: bytes = tarfile.REGTYPE) -> Path:
    info = tarfile.TarInfo(SNAP if kind == tarfile.REGTYPE else "././@LongLink")
    info.size, info.type = size, kind
    path.write_bytes(gzip.compress(info.tobuf(tarfile.GNU_FORMAT) + b"x" * 512))
    return path


@pytest.mark.parametrize(
    "size,kind", [(10 * 10**12, tarfile.REGTYPE), (100 * 10**9, tarfile.REGTYPE), (10**9, tarfile.GNUTYPE_LONGNAME)]
)
def test_a_tiny_archive_claiming_a_huge_member_is_refused_at_once(tmp_path, size, kind):
    ex = make_exhibitor_dir(tmp_path)
    archive = claiming(tmp_path / "claims.tar.gz", size, kind)
    assert archive.stat().st_size < 200
    every_reader_refuses(ex, archive, "claims")
    # and through the CLI, which before this spun at 100 % CPU: bounded by a deadline, not measured
    info = run_tool("dcos-zk", "info", str(archive), timeout=120)
    assert info.returncode == 1 and "claims" in info.stderr


# ------------------------------------------------------------------------- item 11: member counts
def many_empty_members(path: Path, count: int) -> Path:
    block = bytearray()
    with gzip.open(path, "wb", compresslevel=1) as gz:
        for i in range(count):
            info = tarfile.TarInfo(f"./zookeeper/snapshot/f{i}")
            block += info.tobuf(tarfile.GNU_FORMAT)
            if len(block) > 1 << 20:
                gz.write(block)
                block.clear()
        gz.write(bytes(block) + b"\0" * 1024)
    return path


def test_member_count_is_capped_at_the_documented_limit(tmp_path, monkeypatch):
    assert tarsafe.MAX_MEMBERS == 100_000  # docs/dcos-zk.md
    archive = many_empty_members(tmp_path / "many.tar.gz", tarsafe.MAX_MEMBERS + 1)
    info = run_tool("dcos-zk", "info", "--json", str(archive))
    assert info.returncode == 1 and f"more than {tarsafe.MAX_MEMBERS}" in info.stderr
    # Every reader goes through the same cap. Restore and verify unpack each member before the cap is reached
    # (100,000 empty files written twice took most of the suite's slowest minute), so they, and info again,
    # are shown refusing one member past a lower cap.
    monkeypatch.setattr(tarsafe, "MAX_MEMBERS", 1000)
    ex = make_exhibitor_dir(tmp_path)
    every_reader_refuses(ex, many_empty_members(tmp_path / "over.tar.gz", 1001), "more than 1000 files")


def test_members_below_the_cap_are_streamed_not_kept(tmp_path):
    archive = many_empty_members(tmp_path / "many.tar.gz", 5000)
    seen = 0
    for _ in tarsafe.iter_members(archive):
        seen += 1
    assert seen == 5000


# ------------------------------------------------------------------------------- item 12: disk full
def test_disk_full_during_restore_is_named_as_such_and_changes_nothing(tmp_path):
    with small_tmpfs(tmp_path / "small", "2m") as small:
        ex = make_exhibitor_dir(small, size=200_000)
        # compresses ~1000:1: passes the pre-check on the archive's size, fills the disk while extracting
        archive = crafted(tmp_path / "big.tar.gz", [("./zookeeper", None), (SNAP, b"\0" * (8 << 20))])
        before = tree_digest(ex)
        with pytest.raises(StorageError, match=f"{ex}.*filesystem is full"):
            archive_restore.restore(ex, archive)
        assert tree_digest(ex) == before
        assert sorted(p.name for p in ex.iterdir()) == ["zookeeper", "zookeeper.lock"]


def test_a_restore_that_cannot_fit_is_refused_before_it_starts(tmp_path):
    with small_tmpfs(tmp_path / "small", "2m") as small:
        ex = make_exhibitor_dir(small, size=200_000)
        big = make_exhibitor_dir(tmp_path / "big", size=3_000_000)  # random data: does not compress
        archive = tmp_path / "big.tar.gz"
        archive_write.backup(big, archive)
        result = run_tool("dcos-zk", "restore", str(archive), "--exhibitor-dir", str(ex))
        assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
        assert f"{ex} has" in result.stderr and "filesystem is full" in result.stderr
        assert "not a complete" not in result.stderr


def test_disk_full_during_backup_is_named_as_such(tmp_path):
    ex = make_exhibitor_dir(tmp_path, size=3_000_000)
    with small_tmpfs(tmp_path / "small", "1m") as small:
        with pytest.raises(StorageError, match=f"no space left in {small}"):
            archive_write.backup(ex, small / "zk.tar.gz")
        assert list(small.iterdir()) == []


# ------------------------------------------------------------------------------ item 13: smaller
def test_archive_and_sha256_are_private(tmp_path):
    _, archive = good_archive(tmp_path)
    assert archive.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "good.tar.gz.sha256").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("where", ["zookeeper", "zookeeper/snapshot"])
def test_a_backup_into_the_data_dir_is_refused(tmp_path, where):
    ex = make_exhibitor_dir(tmp_path)
    before = tree_digest(ex)
    with pytest.raises(UsageError, match="inside the ZooKeeper data directory"):
        archive_write.backup(ex, ex / where / "zk.tar.gz")
    with pytest.raises(UsageError, match="inside the ZooKeeper data directory"):
        archive_write.backup(ex, tmp_path / "zk.tar.gz", tmp_dir=ex / where)
    assert tree_digest(ex) == before
