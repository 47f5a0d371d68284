"""dcos-zk on a data directory laid out as on a DC/OS master (no server needed: ZooKeeper is "stopped")."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import random
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from tests.helpers import tool, wait_for
from tests.zkfiles import data_of, left_in, make_exhibitor_dir, tree_digest

from dcos_backup.errors import Conflict, IntegrityError, NotFound, UsageError
from dcos_backup.master import restore_mark
from dcos_backup.master.layout import MasterLayout
from dcos_backup.physical import archive_info, archive_restore, archive_write, journal, swap


def original_script_archive(ex: Path, target: Path) -> None:
    """An archive exactly as DC/OS's dcos-zk writes it (tarfile 'x:gz', arcname ./zookeeper, filter)."""

    def drop_identity(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        return None if "myid" in info.name or "zookeeper.out" in info.name else info

    with tarfile.open(target, mode="x:gz") as tar:
        tar.add(str(ex / "zookeeper"), arcname="./zookeeper", filter=drop_identity)


def test_backup_is_seed_compatible_and_checksummed(tmp_path):
    ex = make_exhibitor_dir(tmp_path)
    archive = tmp_path / "zk.tar.gz"
    result = archive_write.backup(ex, archive)
    assert result.sha256 == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert (tmp_path / "zk.tar.gz.sha256").read_text() == f"{result.sha256}  zk.tar.gz\n"
    names = subprocess.run(["tar", "tzf", str(archive)], capture_output=True, text=True, check=True).stdout.split()
    assert names[0] == "./zookeeper/"
    assert all(n.startswith("./zookeeper/") for n in names)
    assert not [n for n in names if n.endswith(("myid", "zookeeper.out"))]
    # plain tar and the original script's extraction (tarfile r:gz extractall) both read it
    out = tmp_path / "tar-x"
    out.mkdir()
    subprocess.run(["tar", "xzf", str(archive), "-C", str(out)], check=True)
    assert data_of(out) == data_of(ex)
    out2 = tmp_path / "py-x"
    with tarfile.open(archive, mode="r:gz") as tar:
        tar.extractall(out2, filter="data")
    assert data_of(out2) == data_of(ex)
    assert not list(tmp_path.glob(".zk.tar.gz.partial*"))


def test_original_script_archive_restores_with_ours_and_keeps_myid(tmp_path):
    source = make_exhibitor_dir(tmp_path / "src", myid="1", seed=1)
    archive = tmp_path / "theirs.tar.gz"
    original_script_archive(source, archive)
    target = make_exhibitor_dir(tmp_path / "dst", myid="3", seed=2)
    result = archive_restore.restore(target, archive)
    assert data_of(target) == data_of(source)
    assert MasterLayout(target).myid_file.read_text().strip() == "3"
    assert result.myid == "3"
    assert left_in(target) == ["zookeeper"]  # no staging, journal or old copy left
    assert (target / "zookeeper.restore-mark").is_file()


def test_backup_refuses_existing_target_and_missing_parent(tmp_path):
    ex = make_exhibitor_dir(tmp_path)
    (tmp_path / "exists.tar.gz").write_text("x")
    with pytest.raises(UsageError, match="already exists"):
        archive_write.backup(ex, tmp_path / "exists.tar.gz")
    with pytest.raises(UsageError, match="does not exist"):
        archive_write.backup(ex, tmp_path / "nope" / "zk.tar.gz")
    with pytest.raises(NotFound, match="no ZooKeeper data"):
        archive_write.backup(tmp_path / "empty", tmp_path / "zk.tar.gz")


def test_failed_backup_leaves_nothing(tmp_path):
    ex = make_exhibitor_dir(tmp_path)
    os.mkfifo(MasterLayout(ex).snapshots_dir / "odd-fifo")
    with pytest.raises(IntegrityError, match="not a regular file"):
        archive_write.backup(ex, tmp_path / "zk.tar.gz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exhibitor"]


def evil_archive(path: Path, kind: str) -> Path:
    with tarfile.open(path, "w:gz") as tar:

        def add(name: str, data: bytes = b"x", **attrs) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            for key, value in attrs.items():
                setattr(info, key, value)
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)

        add("./zookeeper/snapshot/version-2/snapshot.1")
        if kind == "traversal":
            add("./zookeeper/../../etc/evil")
        elif kind == "absolute":
            add("/etc/evil")
        elif kind == "symlink":
            add("./zookeeper/snapshot/link", b"", type=tarfile.SYMTYPE, linkname="/etc/passwd")
        elif kind == "hardlink":
            add("./zookeeper/snapshot/hard", b"", type=tarfile.LNKTYPE, linkname="../../../etc/passwd")
        elif kind == "device":
            add("./zookeeper/snapshot/dev", b"", type=tarfile.CHRTYPE, devmajor=1, devminor=3)
        elif kind == "outside":
            add("./etc/passwd")
    return path


@pytest.mark.parametrize("kind", ["traversal", "absolute", "symlink", "hardlink", "device", "outside"])
def test_malicious_archives_are_refused_untouched(tmp_path, kind):
    ex = make_exhibitor_dir(tmp_path)
    before = tree_digest(ex)
    with pytest.raises(IntegrityError):
        archive_restore.restore(ex, evil_archive(tmp_path / f"{kind}.tar.gz", kind))
    assert tree_digest(ex) == before
    assert not (tmp_path / "etc").exists()


@pytest.mark.parametrize("cut", [10, 0.5, -20])
def test_truncated_or_garbage_archives_are_refused_untouched(tmp_path, cut):
    ex = make_exhibitor_dir(tmp_path)
    good = tmp_path / "good.tar.gz"
    archive_write.backup(ex, good)
    blob = good.read_bytes()
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(blob[: int(len(blob) * cut) if isinstance(cut, float) else cut])
    before = tree_digest(ex)
    with pytest.raises(IntegrityError):
        archive_restore.restore(ex, bad)
    assert tree_digest(ex) == before


def test_restore_input_errors(tmp_path):
    ex = make_exhibitor_dir(tmp_path)
    with pytest.raises(NotFound):
        archive_restore.restore(ex, tmp_path / "missing.tar.gz")
    with pytest.raises(UsageError, match="not a regular file"):
        archive_restore.restore(ex, tmp_path)
    (tmp_path / "text.tar.gz").write_text("hello")
    with pytest.raises(IntegrityError):
        archive_restore.restore(ex, tmp_path / "text.tar.gz")


def test_refuses_while_a_process_holds_the_data_dir(tmp_path):
    ex = make_exhibitor_dir(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", str(MasterLayout(ex).zoo_cfg)])
    try:
        with pytest.raises(Conflict, match=r"running.*stop it first"):
            archive_write.backup(ex, tmp_path / "zk.tar.gz")
        with pytest.raises(Conflict, match="running"):
            archive_restore.restore(ex, evil_archive(tmp_path / "a.tgz", "none"))
    finally:
        holder.kill()
        holder.wait()


def test_info_reads_without_extracting(tmp_path):
    ex = make_exhibitor_dir(tmp_path)
    archive = tmp_path / "zk.tar.gz"
    archive_write.backup(ex, archive)
    details = archive_info.info(archive)
    assert details.files == 4
    assert details.newest_snapshot.endswith("snapshot.100000abc")
    assert details.newest_log.endswith("log.100000001")
    assert details.newest_file_zxid == "0x100000abc"


def staged_data(ex: Path) -> bool:
    """A restore has extracted (some of) its new data beside the old and not swapped it in yet."""
    return any(MasterLayout(staged).zk_dir.is_dir() for staged in ex.glob(".restore-*"))


def before_the_swap(proc: subprocess.Popen, ex: Path) -> None:
    wait_for(lambda: staged_data(ex) or proc.poll() is not None, interval=0.001, what="staged data")


def after_the_swap(proc: subprocess.Popen, ex: Path) -> None:
    before_the_swap(proc, ex)
    wait_for(lambda: not staged_data(ex) or proc.poll() is not None, interval=0.001, what="the swap")


def at_random(seconds: float):
    return lambda proc, ex: time.sleep(seconds)


def frozen_restore(ex: Path, archive: Path, moment) -> tuple[Path | None, dict]:
    """Run ``dcos-zk restore``, freeze it (SIGSTOP) at ``moment``, then SIGKILL it. Returns what the frozen
    restore had in place (None while the swap had moved the old data aside) and a snapshot of the state."""
    proc = subprocess.Popen(
        [tool("dcos-zk"), "restore", str(archive), "--exhibitor-dir", str(ex)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        moment(proc, ex)
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGSTOP)
        layout = MasterLayout(ex)
        state = {"staged": staged_data(ex), "journal": layout.restore_journal.exists()}
        in_place = data_of(ex) if layout.zk_dir.exists() else None
    finally:
        proc.kill()
        proc.wait()
    return in_place, state


def test_sigkill_during_restore_leaves_old_or_new_never_a_mix(tmp_path):
    """Kill `dcos-zk restore` before its swap, after it, and at random moments (each frozen first, so that
    what it had done is known): recovery leaves exactly the data that was in place, or the old data while
    the swap had moved it aside; never a mix, never a leftover."""
    new_src = make_exhibitor_dir(tmp_path / "new", seed=7, size=3_000_000)
    archive = tmp_path / "new.tar.gz"
    archive_write.backup(new_src, archive, level=1)
    new_data = data_of(new_src)
    rng = random.Random(42)
    moments = [("before the swap", before_the_swap)] * 3 + [("after the swap", after_the_swap)]
    moments += [("at random", at_random(rng.uniform(0.05, 0.6))) for _ in range(4)]
    outcomes: dict[str, list[str]] = {}
    for trial, (name, moment) in enumerate(moments):
        ex = make_exhibitor_dir(tmp_path / f"t{trial}", seed=trial, size=3_000_000)
        old_data = data_of(ex)
        in_place, state = frozen_restore(ex, archive, moment)
        assert in_place in (old_data, new_data, None), f"{name}: a mix of old and new data in place"
        assert in_place is not None or state["journal"], f"{name}: no data and no journal to bring it back"
        journal.recover(ex)
        assert data_of(ex) == (in_place or old_data), f"{name}: recovery changed what it should keep ({state})"
        assert MasterLayout(ex).myid_file.read_text().strip() == "2"
        assert left_in(ex) == ["zookeeper"], name  # no staging, journal or old copy
        outcomes.setdefault(name, []).append("new" if in_place == new_data else "old")
    # Each trial that names a branch waited for its state: killed before the swap, the old data stays (one
    # of three may lose the race from seeing the staged data to the SIGSTOP); after it, the new data does.
    assert "old" in outcomes["before the swap"] and outcomes["after the swap"] == ["new"], outcomes


CRASH_POINTS = ["journal-half-written", "journal", "old-moved-aside", "new-in-place", "old-half-removed"]


@pytest.mark.parametrize("crash_after", CRASH_POINTS)
def test_recover_from_every_crash_point_of_the_swap(tmp_path, crash_after):
    ex = make_exhibitor_dir(tmp_path, seed=1)
    layout = MasterLayout(ex)
    old_data = data_of(ex)
    new = make_exhibitor_dir(tmp_path / "n", seed=2)
    staged = ex / ".restore-abcd"
    staged.mkdir()
    os.rename(MasterLayout(new).zk_dir, MasterLayout(staged).zk_dir)
    new_data = data_of(staged)
    old = ex / "zookeeper.old-x"
    step = CRASH_POINTS.index(crash_after)
    if crash_after == "journal-half-written":  # killed while writing the journal's temporary file
        layout.restore_journal.with_suffix(".tmp").write_text('{"staged": "')
    else:
        journal.write_journal(ex, staged, old)
    if step >= CRASH_POINTS.index("old-moved-aside"):
        os.rename(layout.zk_dir, old)
    if step >= CRASH_POINTS.index("new-in-place"):
        os.rename(MasterLayout(staged).zk_dir, layout.zk_dir)
    if crash_after == "old-half-removed":  # the clean-up after the swap, cut short
        next(old.rglob("snapshot.*")).unlink()
    did = journal.recover(ex)
    assert (did is None) == (crash_after == "journal-half-written"), did
    in_place_new = step >= CRASH_POINTS.index("new-in-place")
    assert data_of(ex) == (new_data if in_place_new else old_data)
    assert left_in(ex) == ["zookeeper"]
    assert journal.recover(ex) is None


@pytest.mark.parametrize("damage", ["log", "snapshot"])
def test_a_verified_backup_of_damaged_data_fails_and_leaves_nothing(tmp_path, damage):
    """The check runs while the archive is written, on the very bytes archived (issue 18, item 4)."""
    ex = make_exhibitor_dir(tmp_path)
    layout = MasterLayout(ex)
    target = layout.logs_dir / "log.100000001" if damage == "log" else layout.snapshots_dir / "snapshot.100000abc"
    blob = bytearray(target.read_bytes())
    blob[len(blob) // 3] ^= 0x10
    target.write_bytes(bytes(blob))
    with pytest.raises(IntegrityError, match=target.name):
        archive_write.backup(ex, tmp_path / "zk.tar.gz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exhibitor"]
    archive_write.backup(ex, tmp_path / "unchecked.tar.gz", verify=False)  # --no-verify archives it as it is


def test_recover_removes_a_restore_mark_killed_while_written(tmp_path):
    ex = make_exhibitor_dir(tmp_path)
    (ex / ".zookeeper.restore-mark.4242.tmp").write_text('{"last_zxid": ')
    before = data_of(ex)
    assert journal.recover(ex) is None
    assert left_in(ex) == ["zookeeper"] and data_of(ex) == before


def test_a_restore_raises_the_epoch_above_the_replaced_data(tmp_path):
    """Issue 26 item 2: clients that saw the replaced data's zxids are let in by ZooKeeper at once only if the
    restored ensemble's next epoch is above theirs."""
    source = make_exhibitor_dir(tmp_path / "src", seed=1)  # acceptedEpoch 1, zxids of epoch 1
    archive = tmp_path / "old.tar.gz"
    archive_write.backup(source, archive)
    target = make_exhibitor_dir(tmp_path / "dst", seed=2)
    old = MasterLayout(target)
    (old.snapshots_dir / "currentEpoch").write_text("5")
    (old.logs_dir / "log.100000001").rename(old.logs_dir / "log.900000001")  # a log of a later epoch, 9
    archive_restore.restore(target, archive)
    restored = MasterLayout(target)
    assert any(name.endswith("snapshot.100000abc") for name in data_of(target))  # the archive's data
    for name in ("currentEpoch", "acceptedEpoch"):
        assert (restored.snapshots_dir / name).read_text() == "9"


def test_data_restored_by_another_tool_gets_the_mark_our_restore_writes(tmp_path):
    """Issue 26 item 6: a master restored with tar from the same archive is recognised as the same restore."""
    source = make_exhibitor_dir(tmp_path / "src", seed=1)
    archive = tmp_path / "zk.tar.gz"
    archive_write.backup(source, archive)
    ours = make_exhibitor_dir(tmp_path / "ours", seed=2)
    archive_restore.restore(ours, archive)
    by_hand = make_exhibitor_dir(tmp_path / "by-hand", seed=3)
    layout = MasterLayout(by_hand)
    shutil.rmtree(layout.zk_dir)
    subprocess.run(["tar", "xzf", str(archive), "-C", str(by_hand)], check=True)
    found = swap.mark_found_data(layout)
    expected = restore_mark.read(MasterLayout(ours).restore_mark)
    assert found is not None and expected is not None and found.identity == expected.identity
    assert restore_mark.read(layout.restore_mark) == found and not found.served
    assert left_in(by_hand) == ["zookeeper"]  # the replay's workspace is gone
    shutil.rmtree(layout.zk_dir)
    layout.zk_dir.mkdir()
    assert swap.mark_found_data(layout) is None  # no data: nobody's restore
