"""The data-dir lock (issue 15, item 1): two dcos-zk commands never change one master's data at once.

The race the issue found: ``dcos-zk restore A & sleep 0.4; dcos-zk restore B`` (or ``recover``) emptied the
data dir, both exiting 0, because the second command's recovery took the first one's staging for a
leftover. Nothing here depends on timing: the first writer is either this test holding the lock with a
staging directory in place, or a real restore frozen (SIGSTOP) once the kernel shows it holding the lock.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from tests.helpers import run_tool, tool, wait_for
from tests.zkfiles import data_of, left_in, make_exhibitor_dir

from dcos_backup.errors import Conflict
from dcos_backup.master.layout import MasterLayout
from dcos_backup.master.lock import data_dir_lock, holders
from dcos_backup.physical import archive_restore, archive_write


def archive_of(tmp_path: Path, name: str, seed: int, size: int = 200_000) -> tuple[Path, dict]:
    source = make_exhibitor_dir(tmp_path / f"src-{name}", seed=seed, size=size)
    archive = tmp_path / f"{name}.tar.gz"
    archive_write.backup(source, archive, level=1)
    return archive, data_of(source)


def one_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_restore_in_progress_keeps_its_staging_from_a_second_restore_and_recover(tmp_path):
    """This test is restore A: it holds the exclusive lock with half-extracted data staged, as A does."""
    ex = make_exhibitor_dir(tmp_path, seed=1)
    layout = MasterLayout(ex)
    archive_b, _ = archive_of(tmp_path, "b", seed=2)
    old = data_of(ex)
    with data_dir_lock(layout.lock_file, exclusive=True, what="dcos-zk restore"):
        staging = ex / ".restore-0000a1a1"
        (staging / "zookeeper" / "snapshot").mkdir(parents=True)
        (staging / "zookeeper" / "snapshot" / "half-written").write_bytes(b"x" * 1000)
        me = f"pid {os.getpid()} (dcos-zk restore)"

        second = run_tool("dcos-zk", "restore", str(archive_b), "--exhibitor-dir", str(ex))
        assert second.returncode == 1 and me in one_line(second) and "--wait-lock" in second.stderr
        recover = run_tool("dcos-zk", "recover", "--exhibitor-dir", str(ex))
        assert recover.returncode == 1 and me in one_line(recover)
        assert (staging / "zookeeper" / "snapshot" / "half-written").exists()
        assert data_of(ex) == old
    # Once A is gone (here: without finishing), recovery may clean its staging.
    assert run_tool("dcos-zk", "recover", "--exhibitor-dir", str(ex)).returncode == 0
    assert not staging.exists() and data_of(ex) == old


def test_staggered_restores_refuse_or_wait_and_end_with_one_archive_in_place(tmp_path):
    ex = make_exhibitor_dir(tmp_path, seed=1, size=2_000_000)
    lock_file = MasterLayout(ex).lock_file
    archive_a, data_a = archive_of(tmp_path, "a", seed=3, size=2_000_000)
    archive_b, data_b = archive_of(tmp_path, "b", seed=4)
    first = subprocess.Popen(
        [tool("dcos-zk"), "restore", str(archive_a), "--exhibitor-dir", str(ex)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    waiter = None
    try:
        # Freeze restore A at a known point: once the kernel shows it holding the lock.
        wait_for(lambda: first.pid in [h.pid for h in holders(lock_file)], interval=0.001, what="A holds the lock")
        first.send_signal(signal.SIGSTOP)
        refused = run_tool("dcos-zk", "restore", str(archive_b), "--exhibitor-dir", str(ex))
        assert refused.returncode == 1 and f"pid {first.pid} (dcos-zk restore)" in one_line(refused)
        recover = run_tool("dcos-zk", "recover", "--exhibitor-dir", str(ex))
        assert recover.returncode in (0, 1)  # nothing to clean yet, or A's staging: refused, never removed
        assert recover.returncode == 0 or f"pid {first.pid}" in one_line(recover)

        stderr = tmp_path / "waiter.err"
        with open(stderr, "w") as err:
            waiter = subprocess.Popen(
                [tool("dcos-zk"), "restore", str(archive_b), "--wait-lock", "--exhibitor-dir", str(ex)],
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        wait_for(lambda: f"waiting for pid {first.pid}" in stderr.read_text(), what="B waiting for A")
        assert waiter.poll() is None
        first.send_signal(signal.SIGCONT)
        assert first.wait(120) == 0
        assert waiter.wait(120) == 0, stderr.read_text()
    finally:
        for proc in (first, waiter):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
                proc.wait()
    assert data_of(ex) == data_b != data_a  # B ran after A, whole
    assert left_in(ex) == ["zookeeper"]
    assert MasterLayout(ex).myid_file.read_text().strip() == "2"


def test_readers_share_the_lock_and_writers_do_not(tmp_path):
    ex = make_exhibitor_dir(tmp_path, seed=1)
    layout = MasterLayout(ex)
    archive_b, _ = archive_of(tmp_path, "b", seed=2)
    with data_dir_lock(layout.lock_file, exclusive=False, what="dcos-zk archive"):
        archive_write.backup(ex, tmp_path / "while-archiving.tar.gz")  # a second reader
        with pytest.raises(Conflict, match=rf"in use by pid {os.getpid()} \(dcos-zk (archive|backup)\)"):
            archive_restore.restore(ex, archive_b)
    with data_dir_lock(layout.lock_file, exclusive=True, what="dcos-zk restore"):
        with pytest.raises(Conflict, match=rf"in use by pid {os.getpid()} \(dcos-zk restore\)"):
            archive_write.backup(ex, tmp_path / "during-restore.tar.gz")
        with pytest.raises(Conflict, match="in use"):
            data_dir_lock(layout.lock_file, exclusive=False, what="x").__enter__()
    archive_restore.restore(ex, archive_b)  # free again once the holders are gone
