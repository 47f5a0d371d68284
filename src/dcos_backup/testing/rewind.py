"""Clients ahead of a rewound ensemble (issue 25 item 3, issue 26 item 2), for tests/e2e and bench/rewind_bench.py.

Each kind of client is given the newest zxid before the ensemble is rewound (every master restored from an
archive, rolled back to a point of the repository, or rebuilt empty), then timed from "every member serves"
to "it reads again": the project's own client (:func:`dcos_backup.logical.connect`, with its RewindGuard), a
plain kazoo client (no guard: what ZooKeeper itself lets an ordinary client do), ZooKeeper's Java client
(``zkCli.sh``, one process kept running across the rewind) and the backup service's API.
"""

from __future__ import annotations

import contextlib
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException
from kazoo.retry import KazooRetry

from dcos_backup.errors import DcosBackupError, Forbidden, Unauthorized
from dcos_backup.local import cluster as local_cluster
from dcos_backup.local.spec import ClusterSpec, Master
from dcos_backup.logical import connect
from dcos_backup.logical.session import RECONNECT_MAX_DELAY
from dcos_backup.testing import fault_scenarios

ZKCLI = Path("/usr/share/zookeeper/bin/zkCli.sh")
PROBE = "/rewind-probe"
PROBE_DATA = "rewind-probe-data"


def plain_client(hosts: str, timeout: float = 10.0) -> KazooClient:
    """A kazoo client without the project's RewindGuard (reconnecting at most a second apart, as connect's)."""
    retry = KazooRetry(max_tries=-1, delay=0.1, backoff=2, max_delay=RECONNECT_MAX_DELAY)
    client = KazooClient(hosts=hosts, timeout=timeout, connection_retry=retry)
    client.start(timeout=30)
    return client


def reads(client: KazooClient) -> bool:
    """The client reads (the root's children: there whatever the ensemble was rewound to, even rebuilt empty)."""
    try:
        return client.connected and "zookeeper" in client.get_children("/")
    except KazooException:
        return False


class ZkCli:
    """One ``zkCli.sh`` process, fed commands on stdin (no JLine without a terminal); its output is watched
    for the root's children (``ls /``) and for its session's events. An expired session is what the Java
    client reports once a restored ensemble does not know its session: like a Java application, it then
    opens a new one (``connect``)."""

    def __init__(self, hosts: str) -> None:
        self.hosts = hosts
        self.proc = subprocess.Popen(
            [str(ZKCLI), "-server", hosts],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.expired = 0
        threading.Thread(target=self._read, name="zkcli-reader", daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").strip()
            if "state:Expired" in line:
                self.expired += 1
            self.lines.put(line)

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command.encode() + b"\n")
        self.proc.stdin.flush()

    def reads(self, timeout: float) -> bool:
        """List the root; True if the answer came within ``timeout`` seconds."""
        with contextlib.suppress(queue.Empty):
            while True:
                self.lines.get_nowait()  # earlier answers are not this one's
        self.send("ls /")
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
                if line.startswith("[") and "zookeeper" in line:
                    return True
            except queue.Empty:
                break
        return False

    def reconnect_if_expired(self, seen: int) -> int:
        if self.expired > seen:
            self.send(f"connect {self.hosts}")
        return self.expired

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.send("quit")
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def service_answers(cluster: ClusterSpec) -> Callable[[], bool]:
    """A probe: True once the backup service's API answers a request that needs its ZooKeeper session (the
    schedules, read from ZooKeeper, after the caller's token is checked against the user store in ZooKeeper).
    After an empty rebuild the user store is empty too: a 401/403 is then the answer, and says the same."""
    client = fault_scenarios.service_client(cluster)

    def answers() -> bool:
        try:
            client.schedules()
            return True
        except (Unauthorized, Forbidden):
            return True
        except DcosBackupError:
            return False

    return answers


def zkcli_available() -> bool:
    return ZKCLI.exists() and shutil.which("java") is not None


@dataclass
class Watchers:
    """The clients a rewind is measured with, each having seen the newest zxid."""

    guarded: KazooClient
    plain: KazooClient
    zkcli: ZkCli | None = None
    service: Callable[[], bool] | None = None  # True once the service's API answers a ZooKeeper request
    seen: int = 0

    def close(self) -> None:
        for client in (self.guarded, self.plain):
            client.stop()
            client.close()
        if self.zkcli is not None:
            self.zkcli.close()


@contextlib.contextmanager
def watchers(
    cluster: ClusterSpec, with_zkcli: bool = False, service: Callable[[], bool] | None = None
) -> Iterator[Watchers]:
    """Clients of ``cluster`` that have all seen the newest zxid (a write made just now, past the point a rewind
    goes back to, then read by each); the probe (:func:`create_probe`) must be in the data rewound to."""
    guarded = connect(cluster.zk_hosts)
    plain = plain_client(cluster.zk_hosts)
    w = Watchers(guarded, plain, ZkCli(cluster.zk_hosts) if with_zkcli else None, service)
    try:
        guarded.ensure_path(PROBE)
        guarded.set(PROBE, PROBE_DATA.encode())
        for client in (guarded, plain):
            client.sync(PROBE)
            client.exists(PROBE)
        if w.zkcli is not None:
            w.zkcli.send(f"sync {PROBE}")
            w.zkcli.send(f"get {PROBE}")  # its last zxid: the probe's write, at least
            if not w.zkcli.reads(60):
                raise AssertionError("zkCli.sh never read")
        w.seen = max(guarded.last_zxid, plain.last_zxid)
        yield w
    finally:
        w.close()


def create_probe(cluster: ClusterSpec) -> int:
    """The probe every watcher reads (it must be in the data a rewind goes back to); returns its zxid."""
    client = connect(cluster.zk_hosts)
    try:
        client.ensure_path(PROBE)
        return int(client.set(PROBE, PROBE_DATA.encode()).mzxid)
    finally:
        client.stop()
        client.close()


def rebuild_empty(master: Master) -> None:
    """A master's data lost (its snapshots and logs gone, its myid kept): ZooKeeper starts it empty."""
    layout = master.layout
    myid = layout.myid_file.read_bytes() if layout.myid_file.exists() else None
    for directory in (layout.snapshots_dir, layout.logs_dir):
        shutil.rmtree(directory, ignore_errors=True)
    if myid is not None:
        layout.myid_file.parent.mkdir(parents=True, exist_ok=True)
        layout.myid_file.write_bytes(myid)


@dataclass
class RewindTimes:
    """Seconds from every member serving to each client reading again (None: not within the timeout)."""

    path: str
    seen: int
    first_write: int = 0  # the zxid of the first write after the rewind (above ``seen`` if the epoch was raised)
    times: dict[str, float | None] = field(default_factory=dict)
    zkcli_expired: bool = False


def rewind(
    cluster: ClusterSpec,
    w: Watchers,
    restore_each: Callable[[Master], None],
    path: str,
    timeout: float = 120.0,
) -> RewindTimes:
    """Stop every master, ``restore_each`` one, start them all; then time each watcher back to reading."""
    for m in cluster.masters:
        local_cluster.stop_master(cluster, m.id)
    for m in cluster.masters:
        restore_each(m)
    for m in cluster.masters:
        local_cluster.start_master(cluster, m.id)
    local_cluster.wait_serving(cluster, 120)
    serving = time.monotonic()
    result = RewindTimes(path, w.seen)
    probes: dict[str, Callable[[], bool]] = {"connect()": lambda: reads(w.guarded), "kazoo": lambda: reads(w.plain)}
    if w.service is not None:
        probes["service API"] = w.service
    expired = 0
    if w.zkcli is not None:
        zkcli = w.zkcli

        def zkcli_reads() -> bool:
            nonlocal expired
            expired = zkcli.reconnect_if_expired(expired)
            return zkcli.reads(1.0)

        probes["zkCli.sh"] = zkcli_reads
    pending = dict(probes)
    while pending and time.monotonic() - serving < timeout:
        for name, probe in list(pending.items()):
            if probe():
                result.times[name] = round(time.monotonic() - serving, 2)
                del pending[name]
        time.sleep(0.1)
    result.times.update(dict.fromkeys(pending))
    result.zkcli_expired = expired > 0
    with contextlib.suppress(KazooException, DcosBackupError):
        result.first_write = w.guarded.create("/rewind-after-", b"", sequence=True, include_data=True)[1].czxid
    return result
