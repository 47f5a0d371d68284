"""The restart-always supervisor with real child processes."""

import logging
import os
import re
import signal
import sys
import threading

import psutil
import pytest
from tests.helpers import wait_for

from dcos_backup.exhibitor.supervisor import Supervisor, describe_exit
from dcos_backup.master.processes import read_pid


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
    thread.join(60)
    assert not thread.is_alive() and sup.state == "stopped"
    assert not pid_file.exists()
    wait_for(lambda: not psutil.pid_exists(second) or psutil.Process(second).status() == psutil.STATUS_ZOMBIE)


def restart_waits(tmp_path, caplog, starts: int, **backoff: float) -> list[str]:
    """Run a child that exits at once until it was started ``starts`` times; the backoffs logged between."""
    sup = Supervisor("crasher", [sys.executable, "-c", "raise SystemExit(3)"], output=tmp_path / "o.log", **backoff)
    thread = threading.Thread(target=sup.run)
    with caplog.at_level(logging.WARNING, logger="dcos_backup.exhibitor.supervisor"):
        thread.start()
        wait_for(lambda: sup.starts >= starts, what=f"{starts} starts")
        sup.stop()
        thread.join(60)
    messages = [r.getMessage() for r in caplog.records if "restarting in" in r.getMessage()]
    assert all("exited with code 3" in m for m in messages), messages  # every exit is logged with its cause
    return [re.search(r"restarting in ([0-9.]+)s", m).group(1) for m in messages]


def test_backoff_doubles_up_to_its_cap_for_a_crashing_child(tmp_path, caplog):
    waits = restart_waits(tmp_path, caplog, 6, min_backoff=0.1, max_backoff=0.8, reset_after=3600)
    assert waits[:5] == ["0.1", "0.2", "0.4", "0.8", "0.8"]


def test_backoff_starts_again_after_a_child_that_stayed_up(tmp_path, caplog):
    # reset_after=0: every child counts as having stayed up long enough, so the backoff never grows.
    waits = restart_waits(tmp_path, caplog, 4, min_backoff=0.1, max_backoff=0.8, reset_after=0)
    assert waits[:3] == ["0.1", "0.1", "0.1"]


@pytest.mark.parametrize(("code", "text"), [(-9, "killed by SIGKILL"), (3, "exited with code 3")])
def test_describe_exit(code, text):
    assert describe_exit(code) == text
