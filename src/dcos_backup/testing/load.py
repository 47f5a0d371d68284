"""Steady-rate ZooKeeper write load for tests and benchmarks of online backups.

:class:`LoadGenerator` owns one kazoo client and one background thread that writes sequential creates,
sets and deletes under a root znode at a fixed rate, one acknowledged request at a time. It records every
acknowledged write with its zxid, so a test can compute exactly which children of the root a backup taken
at a given zxid must contain (:meth:`LoadGenerator.expected_children`).
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType

from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError, NoNodeError, RolledBackError

from dcos_backup.logical import connect

# Longer than the session timeout, so kazoo normally fails a stuck request first (ConnectionLoss,
# SessionExpired); this only bounds a request queued while no member answers, so stop() cannot hang.
REQUEST_TIMEOUT = 30.0
CREATE_SHARE = 0.60
SET_SHARE = 0.25  # the remaining 15% are deletes


@dataclass(frozen=True)
class Op:
    kind: str  # "create" | "set" | "delete"
    path: str  # absolute path
    data: bytes  # data written (b"" for delete)
    zxid: int  # zxid of the acknowledged write
    latency: float  # seconds from send to ack


@dataclass
class LoadReport:
    ops: list[Op] = field(default_factory=list)  # acknowledged writes, in order
    failures: list[str] = field(default_factory=list)  # one line per failed request
    started: float = 0.0  # time.monotonic()
    stopped: float = 0.0  # time.monotonic()

    def percentile(self, p: float) -> float:
        """Latency percentile in seconds (``p`` in 0..100, linear interpolation); 0.0 without ops."""
        if not 0.0 <= p <= 100.0:
            raise ValueError(f"percentile must be within 0..100, not {p}")
        latencies = sorted(op.latency for op in self.ops)
        if not latencies:
            return 0.0
        rank = (len(latencies) - 1) * p / 100.0
        low = int(rank)
        high = min(low + 1, len(latencies) - 1)
        return latencies[low] + (latencies[high] - latencies[low]) * (rank - low)

    def to_dict(self) -> dict:
        duration = self.stopped - self.started
        kinds = [op.kind for op in self.ops]
        return {
            "ops": len(self.ops),
            "creates": kinds.count("create"),
            "sets": kinds.count("set"),
            "deletes": kinds.count("delete"),
            "failures": len(self.failures),
            # A long outage fails hundreds of requests the same way; the first few tell the story.
            "first_failures": self.failures[:10],
            "duration_s": round(duration, 3),
            "ops_per_s": round(len(self.ops) / duration, 1) if duration > 0 else 0.0,
            "p50_ms": round(self.percentile(50) * 1000, 3),
            "p99_ms": round(self.percentile(99) * 1000, 3),
        }


class LoadGenerator:
    """Writes under ``root`` at ``rate`` ops/s from one thread; see the module docstring.

    Choices are drawn from ``random.Random(seed)``: ~60% create of a sequential child ``n-``, ~25% set of
    a child this generator created, ~15% delete of one (a create when there is none). A failed request is
    recorded in the report's failures and the load goes on; kazoo reconnects on its own.
    """

    def __init__(self, hosts: str, root: str = "/load", rate: float = 200.0, seed: int = 0, payload: int = 200) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, not {rate}")
        if payload < 0:
            raise ValueError(f"payload must not be negative, not {payload}")
        if not root.startswith("/") or root == "/" or root.endswith("/"):
            raise ValueError(f"root must be an absolute znode path other than '/', not {root!r}")
        self.hosts = hosts
        self.root = root
        self.rate = rate
        self.seed = seed
        self.payload = payload
        self._rng = random.Random(seed)
        self._client: KazooClient | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._report = LoadReport()
        self._initial: dict[str, bytes] = {}
        # Children this generator created and has not deleted, as a list so rng choices are reproducible.
        self._live: list[str] = []
        self._stopped = False

    def start(self) -> None:
        """Create ``root`` if missing, record its current children, start the writer thread."""
        if self._thread is not None:
            raise RuntimeError("load generator already started")
        client = connect(self.hosts)
        try:
            with contextlib.suppress(NodeExistsError):
                client.create(self.root, b"", makepath=True)
            self._initial = {
                f"{self.root}/{name}": client.get(f"{self.root}/{name}")[0]
                for name in sorted(client.get_children(self.root))
            }
        except BaseException:
            client.stop()
            client.close()
            raise
        self._client = client
        self._report.started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"zk-load{self.root}", daemon=True)
        self._thread.start()

    def stop(self) -> LoadReport:
        """Stop the writer thread (after its request in flight is answered), close the client, report."""
        if self._thread is None:
            raise RuntimeError("load generator was not started")
        if not self._stopped:
            self._stopping.set()
            self._thread.join()
            self._report.stopped = time.monotonic()
            assert self._client is not None
            self._client.stop()
            self._client.close()
            self._stopped = True
        return self._report

    def __enter__(self) -> LoadGenerator:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def acknowledged(self) -> list[Op]:
        """The writes acknowledged so far (a copy; the load may still be running)."""
        with self._lock:
            return list(self._report.ops)

    def expected_children(self, upto_zxid: int, ops: list[Op] | None = None) -> dict[str, bytes]:
        """Absolute path -> data of ``root``'s children once every op with zxid <= ``upto_zxid`` is applied.

        Starts from the children that existed at :meth:`start`; ``ops`` defaults to the acknowledged ops so
        far. A request that failed after the server applied it (connection lost before the ack) is unknown
        here, so the result is exact only for a run without failures.
        """
        if ops is None:
            ops = self.acknowledged()
        children = dict(self._initial)
        for op in ops:
            if op.zxid > upto_zxid:
                continue
            if op.kind == "delete":
                children.pop(op.path, None)
            else:
                children[op.path] = op.data
        return children

    def _run(self) -> None:
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while not self._stopping.is_set():
            self._one_op()
            next_at += interval
            now = time.monotonic()
            # Behind schedule (slow acks): start from now rather than firing the missed slots in a burst,
            # which would make the load spiky exactly when the cluster is struggling.
            next_at = max(next_at, now)
            self._stopping.wait(next_at - now)

    def _one_op(self) -> None:
        draw = self._rng.random()
        if not self._live or draw < CREATE_SHARE:
            kind = "create"
        elif draw < CREATE_SHARE + SET_SHARE:
            kind = "set"
        else:
            kind = "delete"
        index = self._rng.randrange(len(self._live)) if kind != "create" else -1
        data = self._rng.randbytes(self.payload) if kind != "delete" else b""
        target = self._live[index] if kind != "create" else f"{self.root}/n-"
        sent = time.monotonic()
        try:
            path, zxid = self._send(kind, target, data)
        except NoNodeError as exc:
            # The node is gone although we never saw its delete acked (a delete whose ack was lost):
            # stop picking it, or every later draw of it would fail again.
            if kind != "create":
                self._forget(index)
            self._fail(kind, target, exc)
            return
        except Exception as exc:
            self._fail(kind, target, exc)
            return
        latency = time.monotonic() - sent
        if kind == "create":
            self._live.append(path)
        elif kind == "delete":
            self._forget(index)
        with self._lock:
            self._report.ops.append(Op(kind, path, data, zxid, latency))

    def _send(self, kind: str, target: str, data: bytes) -> tuple[str, int]:
        """One request, waited for; returns the path written and the zxid of the write."""
        assert self._client is not None
        client = self._client
        if kind == "create":
            path, stat = client.create_async(target, data, sequence=True, include_data=True).get(
                timeout=REQUEST_TIMEOUT
            )
            return path, stat.czxid
        if kind == "set":
            stat = client.set_async(target, data).get(timeout=REQUEST_TIMEOUT)
            return target, stat.mzxid
        # A multi gets a single zxid; touching the root gives a stat that carries it (a delete returns none).
        transaction = client.transaction()
        transaction.delete(target)
        transaction.set_data(self.root, b"")
        results = transaction.commit_async().get(timeout=REQUEST_TIMEOUT)
        errors = [r for r in results if isinstance(r, Exception)]
        if errors:
            # Every op but the one that failed reports RolledBackError; raise the cause.
            raise next((e for e in errors if not isinstance(e, RolledBackError)), errors[0])
        return target, results[1].mzxid

    def _forget(self, index: int) -> None:
        # Swap-remove keeps this O(1); the order stays deterministic for a given seed and outcome.
        self._live[index] = self._live[-1]
        self._live.pop()

    def _fail(self, kind: str, path: str, exc: Exception) -> None:
        with self._lock:
            message = " ".join(str(exc).split())  # one line per failure, whatever the exception says
            self._report.failures.append(f"{kind} {path}: {type(exc).__name__}: {message}")
