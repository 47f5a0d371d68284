"""A scratch ZooKeeper: a real standalone Debian ZooKeeper on loopback, for a drill, removed after.

``with ScratchZooKeeper(fill=...) as zk:`` makes a private directory (0700) laid out like a master's
(:class:`~.layout.MasterLayout`), lets ``fill(layout)`` put a data directory there (or leaves it empty),
starts ZooKeeper standalone on a free loopback port, waits until it answers ``ruok`` and ``srvr``, and
yields it (``zk.hosts``; ``zk.auth``, the digest credentials of its super user, reads and writes every
node whatever its ACL). Whatever happens in the block (a failure, a cancelled job, Ctrl-C), the server is
killed and the directory removed when it ends. The live ensemble is never involved.

The server's ``tickTime`` is huge on purpose: sessions loaded from an archived snapshot expire on
tick boundaries, and an expiry is a transaction that would change the tree a drill is checking.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from dcos_backup.errors import ClusterError, MissingDependency
from dcos_backup.master.fourlw import four_letter_word
from dcos_backup.master.layout import MasterLayout
from dcos_backup.master.zookeeper import SLF4J_BINDING, ZK_CLASSPATH, ZK_MAIN

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
START_TIMEOUT = 90.0  # seconds for the JVM to load the data directory and serve
STOP_TIMEOUT = 10.0
# ~23 days: no tick boundary (when loaded sessions expire) falls inside a drill, in practice.
SCRATCH_TICK_MS = 2_000_000_000
SCRATCH_SETTINGS = {
    "tickTime": str(SCRATCH_TICK_MS),
    "minSessionTimeout": "4000",
    "maxSessionTimeout": "60000",
    "4lw.commands.whitelist": "srvr,ruok",
    "admin.enableServer": "false",
    "maxClientCnxns": "0",
    "standaloneEnabled": "true",
}


def free_port(host: str = HOST) -> int:
    """A port nothing listens on now (the kernel's choice); ZooKeeper binds it right after."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ScratchZooKeeper:
    """A standalone ZooKeeper in a private temporary directory (see the module docstring)."""

    def __init__(
        self,
        fill: Callable[[MasterLayout], None] | None = None,
        tmp_dir: Path | None = None,
        *,
        java: str = "java",
        heap: str = "512m",
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        self.fill = fill
        self.tmp_dir = tmp_dir
        self.java = java
        self.heap = heap
        self.start_timeout = start_timeout
        self.layout: MasterLayout | None = None
        self.port = 0
        self._password = secrets.token_urlsafe(24)  # this object's only: the server sees its hash
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def hosts(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def auth(self) -> tuple[str, str]:
        """ZooKeeper auth (scheme, credential) of the scratch server's super user."""
        return "digest", f"super:{self._password}"

    def _super_digest(self) -> str:
        """ZooKeeper's DigestAuthenticationProvider hash of the super user's credential."""
        sha1 = hashlib.sha1(f"super:{self._password}".encode()).digest()  # ZooKeeper's own scheme
        return f"super:{base64.b64encode(sha1).decode()}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> ScratchZooKeeper:
        self._check_dependencies()
        self.layout = MasterLayout(Path(tempfile.mkdtemp(prefix="dcos-backup-scratch-zk-", dir=self.tmp_dir)))
        try:
            os.chmod(self.layout.exhibitor_dir, 0o700)
            for path in (self.layout.data_dir, self.layout.log_dir, self.layout.conf_dir):
                path.mkdir(parents=True, exist_ok=True)
            if self.fill is not None:
                self.fill(self.layout)
            self._start()
        except BaseException:
            self._remove()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self._remove()

    # ---------------------------------------------------------------- starting
    def _check_dependencies(self) -> None:
        if shutil.which(self.java) is None:
            raise MissingDependency(f"Java ({self.java}) is not installed: a drill needs it for its scratch ZooKeeper")
        if not Path(ZK_CLASSPATH).exists():
            raise MissingDependency(f"the ZooKeeper server ({ZK_CLASSPATH}) is not installed: a drill needs it")

    def _zoo_cfg(self) -> str:
        assert self.layout is not None
        settings = {
            **SCRATCH_SETTINGS,
            "dataDir": str(self.layout.data_dir),
            "dataLogDir": str(self.layout.log_dir),
            "clientPort": str(self.port),
            "clientPortAddress": HOST,
        }
        return "".join(f"{k}={v}\n" for k, v in settings.items())

    def _command(self) -> list[str]:
        assert self.layout is not None
        classpath = [str(self.layout.conf_dir), ZK_CLASSPATH]
        if Path(SLF4J_BINDING).exists():
            classpath.append(SLF4J_BINDING)
        return [
            self.java,
            f"-Xmx{self.heap}",
            "-XX:+UseSerialGC",
            f"-Dzookeeper.log.dir={self.layout.zk_dir}",
            f"-Dzookeeper.DigestAuthenticationProvider.superDigest={self._super_digest()}",
            "-cp",
            ":".join(classpath),
            ZK_MAIN,
            str(self.layout.zoo_cfg),
        ]

    def _start(self) -> None:
        """Start on a free port; another process may take the port between our probe and the JVM's bind,
        so a server that dies before it serves is tried again on another port (a few times)."""
        assert self.layout is not None
        for attempt in range(3):
            self.port = free_port()
            self.layout.zoo_cfg.write_text(self._zoo_cfg())
            with open(self.layout.console_log, "ab") as out:
                self._proc = subprocess.Popen(
                    self._command(),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,  # Ctrl-C on the caller's terminal is the caller's to handle
                )
            if self._wait_serving():
                log.info("scratch ZooKeeper serves on %s (pid %d)", self.hosts, self._proc.pid)
                return
            self._kill()
            if "Address already in use" not in self._console_tail() or attempt == 2:
                break
        raise ClusterError(f"the scratch ZooKeeper did not start: {self._console_tail() or 'no output'}")

    def _wait_serving(self) -> bool:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if not self.running:
                return False
            try:
                if four_letter_word(HOST, self.port, "ruok", 1.0).startswith("imok") and "Mode: standalone" in (
                    four_letter_word(HOST, self.port, "srvr", 1.0)
                ):
                    return True
            except OSError:
                pass
            time.sleep(0.1)
        return False

    def _console_tail(self, lines: int = 3) -> str:
        """The last error lines of the server's console log, for the reason of a failed start."""
        assert self.layout is not None
        try:
            text = self.layout.console_log.read_text(errors="replace")
        except OSError:
            return ""
        wanted = [line for line in text.splitlines() if "ERROR" in line or "Exception" in line] or text.splitlines()
        return " | ".join(line.strip() for line in wanted[-lines:])[:500]

    # ---------------------------------------------------------------- stopping
    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _remove(self) -> None:
        try:
            self._kill()
        finally:
            if self.layout is not None:
                shutil.rmtree(self.layout.exhibitor_dir, ignore_errors=True)
