"""Pid files and the processes behind them: is it alive, is it really ours, is it listening, stop it for good;
and the last words of a process's log when it is not."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def write_pid_file(path: Path, pid: int) -> None:
    """Write ``pid`` to ``path`` atomically: a reader never sees a half-written pid."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{pid}\n")
    os.replace(tmp, path)


def live_process(pid_file: Path, marker: str | None = None) -> psutil.Process | None:
    """The process named by ``pid_file`` if it runs (not a zombie) and its command line has ``marker``.

    The marker guards against a recycled pid belonging to some unrelated process.
    """
    pid = read_pid(pid_file)
    if pid is None:
        return None
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        if marker is not None and not any(marker in part for part in command_line(proc)):
            return None
        return proc
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def command_line(proc: psutil.Process, patience: float = 1.0) -> list[str]:
    """``proc``'s command line. It reads empty for a moment while a process execs (the kernel sets the new
    one after the point where the parent's ``Popen`` returns), so an empty one is read again for up to
    ``patience`` seconds: a process started a moment ago must not look like a stranger (measured: 1 start
    in 10 on a busy 2-core machine). Only kernel threads keep an empty one."""
    deadline = time.monotonic() + patience
    while not (cmdline := proc.cmdline()) and time.monotonic() < deadline:
        time.sleep(0.01)
    return cmdline


def terminate(proc: psutil.Process, timeout: float = 30.0) -> None:
    """SIGTERM, wait, then SIGKILL; returns once the process is gone (or a zombie).

    A zombie counts as gone: when the process is a child of some other process of ours (a test run,
    say), only that parent can reap it, and waiting for the pid to vanish would hang.
    """
    terminate_all([proc], timeout)


def terminate_all(procs: list[psutil.Process], timeout: float = 30.0) -> None:
    """:func:`terminate` for processes that may stop together: SIGTERM to each, then one wait for all of them
    (SIGKILL for those left), so that stopping N of them takes the slowest one's time, not the sum."""
    signalled = []
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(signal.SIGTERM)
            signalled.append(proc)
    left = set(wait_until_gone([p.pid for p in signalled], timeout))
    killed = []
    for proc in signalled:
        if proc.pid in left:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
                killed.append(proc.pid)
    wait_until_gone(killed, 10)


def spawn_detached(command: list[str], log_file: Path, pid_file: Path, env: dict[str, str] | None = None) -> int:
    """Start ``command`` in its own session (it outlives us, as a systemd unit would) and record its pid;
    ``env`` adds to the environment it inherits."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as out:
        proc = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
            env={**os.environ, **env} if env else None,
        )
    write_pid_file(pid_file, proc.pid)
    return proc.pid


def python_module_command(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def wait_until_gone(pids: list[int], timeout: float = 10.0) -> list[int]:
    """Wait for ``pids`` to exit; returns the ones still alive."""
    deadline = time.monotonic() + timeout
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if _alive(p)]
        if alive:
            time.sleep(0.1)
    return alive


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def last_complaint(path: Path) -> str:
    """The most telling line of a Java log: its last ``Caused by``/ERROR line, else its last line."""
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except FileNotFoundError:
        return ""
    for line in reversed(lines):
        if line.startswith("Caused by:") or (" ERROR " in line and "Exiting JVM" not in line):
            return line
    return lines[-1] if lines else ""


def last_lines(path: Path, count: int = 1) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except FileNotFoundError:
        return ""
    return " | ".join(lines[-count:])
