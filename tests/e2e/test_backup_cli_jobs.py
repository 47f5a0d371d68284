"""Following and stopping jobs with ``dcos backup`` (issue 16 item 1) on a real cluster whose service calls a
``before`` hook that parks every restore until the test lets it go: so the restore is running, for sure, while
``list`` shows it, Ctrl-C (a real SIGINT) stops the CLI's wait, ``show --wait`` follows it and ``cancel`` ends it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from tests.helpers import AMBIENT_SETTINGS, ok, run_tool, tool

from dcos_backup.logical import connect
from dcos_backup.testing.seed import seed_marathon

pytestmark = pytest.mark.e2e


class ParkingHook:
    """An application whose hook answers only once ``release`` is set; it keeps the connection alive meanwhile
    (a byte a second, so the service's read timeout never fires)."""

    def __init__(self) -> None:
        self.called = threading.Event()
        self.release = threading.Event()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                hook.called.set()
                self.send_response(200)
                self.end_headers()
                while not hook.release.wait(1):
                    self.wfile.write(b" ")
                    self.wfile.flush()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/before"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def dcos(cluster, *args: str):
    return run_tool("dcos", "backup", *args, cluster_dir=cluster.dir, timeout=120)


def start_dcos(cluster, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in AMBIENT_SETTINGS}
    env["DCOS_LOCAL_DIR"] = str(cluster.dir)
    return subprocess.Popen(
        [tool("dcos"), "backup", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # A suite started in the background (``scripts/test.sh &``) inherits SIGINT ignored, and Python then
        # never turns it into KeyboardInterrupt: give the CLI the disposition a terminal's user gives it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def ended(process: subprocess.Popen, timeout: float = 60) -> tuple[str, str]:
    """The output of a CLI process once it has exited; if it does not, kill it and fail with what it said."""
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        said = f"stdout {out!r}, stderr {err!r}"
        raise AssertionError(f"{process.args} did not exit within {timeout:g}s; {said}") from None


def test_list_ctrl_c_show_wait_and_cancel_of_a_running_restore(make_cluster):
    """Each step waits for the state it needs (the hook called, a line printed), never for a duration."""
    hook = ParkingHook()
    try:
        cluster = make_cluster(masters=1, hooks=[f"marathon:before={hook.url}"])
        zk = connect(cluster.zk_hosts)
        seed_marathon(zk, apps=5, seed=2)
        zk.stop()
        backup_id = ok(dcos(cluster, "create", "--label", "parked", "--wait")).stdout.strip()

        waiting = start_dcos(cluster, "restore", backup_id, "--wait")
        assert hook.called.wait(60), "the restore never called its before hook"
        rows = [line.split() for line in ok(dcos(cluster, "list", "parked")).stdout.splitlines()[1:]]
        assert [(r[0], r[2]) for r in rows] == [(backup_id, "STATUS_RESTORING")]

        restore_id = waiting.stdout.readline().strip()  # printed as the CLI starts to wait
        waiting.send_signal(signal.SIGINT)
        out, err = ended(waiting)
        assert waiting.returncode == 130 and out == "" and len(restore_id) == 36
        assert err.splitlines() == [
            f"error: stopped waiting; restoring {backup_id} goes on in the service: follow it with "
            f"'dcos backup show {backup_id} --wait', stop it with 'dcos backup cancel {backup_id}'"
        ]

        follower = start_dcos(cluster, "show", backup_id, "--wait")
        assert follower.stderr.readline() == f"waiting: restoring {backup_id} (Ctrl-C stops waiting, not the job)\n"
        cancelled = ok(dcos(cluster, "cancel", backup_id))
        assert cancelled.stdout.startswith(f"cancelling the job on {backup_id}")
        hook.release.set()
        out, err = ended(follower, 120)
        assert follower.returncode == 1, (out, err)
        assert err.strip() == f"error: the job on {backup_id} failed: cancelled"
        shown = json.loads(out)
        latest = shown["restores"][-1]
        assert latest["id"] == restore_id and latest["status"] == "STATUS_ERROR" and latest["reason"] == "cancelled"
        assert latest["safety_backup_id"] is None  # cancelled before the safety backup: nothing was changed

        again = dcos(cluster, "cancel", backup_id, "--json")
        assert again.returncode == 1 and again.stderr.splitlines() == [
            f"error: no backup, restore or drill runs on {backup_id}"
        ]
        # Nothing runs any more: --wait returns at once, and its exit still says the last job failed (as documented).
        already = dcos(cluster, "show", backup_id, "--wait")
        assert already.returncode == 1 and json.loads(already.stdout)["id"] == backup_id
        assert already.stderr.strip() == f"error: the job on {backup_id} failed: cancelled"
        assert ok(dcos(cluster, "show", backup_id)).returncode == 0  # without --wait: just the document
    finally:
        hook.close()
