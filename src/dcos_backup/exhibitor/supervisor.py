"""A restart-always supervisor for one child process (ZooKeeper here; the backup service in dcos-local).

Like systemd's ``Restart=always``: when the child dies it is started again after a backoff that doubles
from ``min_backoff`` up to ``max_backoff`` and resets once the child has stayed up for ``reset_after``
seconds. Every exit is logged with its cause. ``stop()`` ends the child with SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from dcos_backup.master import activity
from dcos_backup.master.processes import write_pid_file

log = logging.getLogger(__name__)


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"


class Supervisor:
    """Run ``command`` until :meth:`stop`, restarting it whenever it dies."""

    def __init__(
        self,
        name: str,
        command: list[str],
        *,
        output: Path,
        pid_file: Path | None = None,
        prepare: Callable[[], None] | None = None,
        min_backoff: float = 0.5,
        max_backoff: float = 30.0,
        reset_after: float = 60.0,
        stop_timeout: float = 20.0,
        env: dict[str, str] | None = None,
        events: Path | None = None,
    ) -> None:
        self.name = name
        self.command = command
        self.output = output
        self.pid_file = pid_file
        self.prepare = prepare
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.reset_after = reset_after
        self.stop_timeout = stop_timeout
        self.env = env
        self.events = events  # the master's status log, for restarts worth an operator's eye
        self.state = "starting"
        self.starts = 0
        self._stopping = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def _spawn(self) -> subprocess.Popen[bytes]:
        if self.prepare is not None:
            self.prepare()
        self.output.parent.mkdir(parents=True, exist_ok=True)
        with open(self.output, "ab") as out:
            proc = subprocess.Popen(
                self.command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env
            )
        if self.pid_file is not None:
            write_pid_file(self.pid_file, proc.pid)
        self.starts += 1
        log.info("%s started (pid %d)", self.name, proc.pid)
        return proc

    def run(self) -> None:
        """Supervise until :meth:`stop` is called. Blocks; run it in a thread if needed."""
        backoff = self.min_backoff
        while not self._stopping.is_set():
            with self._lock:
                if self._stopping.is_set():
                    break
                try:
                    self._proc = self._spawn()
                except Exception as exc:  # keep supervising: the cause may be transient (disk, fork)
                    log.error("%s could not be started: %s; retrying in %.1fs", self.name, exc, backoff)
                    self.state = "backoff"
                    self._stopping.wait(backoff)
                    backoff = min(backoff * 2, self.max_backoff)
                    continue
                self.state = "running"
            started = time.monotonic()
            returncode = self._proc.wait()
            if self.pid_file is not None:
                self.pid_file.unlink(missing_ok=True)
            if self._stopping.is_set():
                break
            if time.monotonic() - started >= self.reset_after:
                backoff = self.min_backoff
            message = f"{self.name} (pid {self._proc.pid}) {describe_exit(returncode)}; restarting in {backoff:.1f}s"
            log.warning("%s", message)
            if self.events is not None:
                activity.record(self.events, message)
            self.state = "backoff"
            self._stopping.wait(backoff)
            backoff = min(backoff * 2, self.max_backoff)
        self.state = "stopped"

    def stop(self) -> None:
        """Stop supervising and end the child: SIGTERM, then SIGKILL after ``stop_timeout``."""
        with self._lock:
            self._stopping.set()
            proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        log.info("stopping %s (pid %d)", self.name, proc.pid)
        proc.terminate()
        try:
            proc.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.0fs; killing it", self.name, self.stop_timeout)
            proc.kill()
            proc.wait()
        if self.pid_file is not None:
            self.pid_file.unlink(missing_ok=True)
