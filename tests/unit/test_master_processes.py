"""Pid files and the processes behind them, with real processes."""

import sys

import psutil
import pytest

from dcos_backup.master.processes import live_process, read_pid, spawn_detached, terminate, write_pid_file


def test_pid_files(tmp_path):
    pid_file = tmp_path / "run" / "x.pid"
    assert read_pid(pid_file) is None
    write_pid_file(pid_file, 1234)
    assert read_pid(pid_file) == 1234 and not list(pid_file.parent.glob("*.tmp"))
    pid_file.write_text("garbage\n")
    assert read_pid(pid_file) is None and live_process(pid_file) is None


@pytest.fixture
def spawned(tmp_path):
    """``spawn(marker)`` starts a detached sleeper whose command line has ``marker``; all are ended after."""
    procs = []

    def spawn(marker: str):
        pid_file = tmp_path / f"{marker}.pid"
        spawn_detached([sys.executable, "-c", "import time; time.sleep(60)", marker], tmp_path / "log", pid_file)
        procs.append(psutil.Process(read_pid(pid_file)))
        return pid_file

    yield spawn
    for proc in procs:
        terminate(proc, timeout=10)


def test_a_process_just_started_is_ours_at_once(spawned):
    # Its command line reads empty for a moment after Popen returns (the kernel is still in the exec);
    # it must not be taken for a stranger then, or its master would look stopped.
    for i in range(20):
        pid_file = spawned(f"marker-{i}")
        assert live_process(pid_file, f"marker-{i}") is not None, i


def test_a_recycled_pid_is_not_ours_and_a_stopped_process_is_gone(spawned):
    pid_file = spawned("mine")
    assert live_process(pid_file, "someone-else") is None
    proc = live_process(pid_file, "mine")
    terminate(proc, timeout=10)
    assert live_process(pid_file, "mine") is None
