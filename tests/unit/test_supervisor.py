"""The restart-always supervisor with real child processes."""

import os
import signal
import sys
import threading
import time

import psutil

from dcos_backup.exhibitor.supervisor import Supervisor, describe_exit
from dcos_backup.local.processes import read_pid


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_restarts_a_killed_child_and_stops_cleanly(tmp_path):
    pid_file = tmp_path / "child.pid"
    prepared = []
    sup = Supervisor(
        "sleeper",
        [sys.executable, "-c", "import time; time.sleep(60)"],
        output=tmp_path / "out.log",
        pid_file=pid_file,
        prepare=lambda: prepared.append(1),
        min_backoff=0.1,
    )
    thread = threading.Thread(target=sup.run)
    thread.start()
    wait_for(lambda: sup.state == "running" and read_pid(pid_file))
    first = read_pid(pid_file)
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: read_pid(pid_file) not in (None, first) and sup.state == "running")
    assert sup.starts == 2 and len(prepared) == 2  # prepare (myid, zoo.cfg) runs before every start
    second = read_pid(pid_file)
    sup.stop()
    thread.join(10)
    assert not thread.is_alive() and sup.state == "stopped"
    assert not pid_file.exists()
    wait_for(lambda: not psutil.pid_exists(second) or psutil.Process(second).status() == psutil.STATUS_ZOMBIE)


def test_backoff_grows_for_a_crashing_child(tmp_path):
    sup = Supervisor(
        "crasher",
        [sys.executable, "-c", "raise SystemExit(3)"],
        output=tmp_path / "o.log",
        min_backoff=0.05,
        max_backoff=0.4,
    )
    thread = threading.Thread(target=sup.run)
    thread.start()
    time.sleep(1.5)
    sup.stop()
    thread.join(5)
    # 0.05 + 0.1 + 0.2 + 0.4 + 0.4 ... : a handful of starts, not hundreds
    assert 3 <= sup.starts <= 8


def test_describe_exit():
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(3) == "exited with code 3"
