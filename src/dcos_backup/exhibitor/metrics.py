"""Exhibitor's Prometheus metrics of this master's archiver, ``GET /exhibitor/v1/metrics`` (docs/api.md "Metrics").

Read at scrape time from what ``GET /exhibitor/v1/archive/status`` answers: the archiver's state file
(``run/archiver.json``, rewritten after every pass; its restorable window surveyed from the repository every
few seconds), the supervisor that runs it, and the lag, read from ZooKeeper's own logs after the last
archived zxid (so a stuck or dead archiver still shows its lag growing). Every series is labelled
``master`` (this master's address), so the same numbers scraped directly and through the Admin Router
aggregate by master.

``dcos_zk_archive_lag_seconds`` is the age of the oldest transaction ZooKeeper has logged that the repository
does not hold yet, 0 when caught up: a quiet cluster has no lag however long ago its last write was.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

RUNNING = ("archiving", "waiting")  # the archiver's states in which its state file is current


def gauge(name: str, doc: str, master: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=["master"])
    family.add_metric([master], value)
    return family


class ArchiveCollector(Collector):
    """The archive's metrics from ``status()``, the document ``GET /exhibitor/v1/archive/status`` answers."""

    def __init__(self, master: str, status: Callable[[], dict[str, object]]) -> None:
        self.master = master
        self.status = status

    def collect(self) -> Iterator[Metric]:
        doc = self.status()
        master = self.master
        if not doc.get("enabled"):
            yield gauge("dcos_zk_archive_enabled", "1 if this master archives continuously", master, 0)
            return
        yield gauge("dcos_zk_archive_enabled", "1 if this master archives continuously", master, 1)
        up = doc.get("supervisor") == "running" and doc.get("state") in RUNNING
        yield gauge("dcos_zk_archive_up", "1 while the archiver runs and archives (or waits for work)", master, up)
        lag = doc.get("lag_seconds")
        yield gauge(
            "dcos_zk_archive_lag_seconds",
            "Age of the oldest transaction ZooKeeper logged that the repository does not hold yet (0: caught up)",
            master,
            float(lag) if isinstance(lag, int | float) else 0.0,
        )
        last = doc.get("last_zxid")
        if isinstance(last, str):
            yield gauge("dcos_zk_archive_last_zxid", "The newest zxid the repository holds", master, int(last, 16))
        since, until = doc.get("restorable_since"), doc.get("restorable_until")
        if isinstance(since, int | float) and isinstance(until, int | float):
            yield gauge(
                "dcos_zk_restorable_since_timestamp_seconds", "The oldest moment a restore can reach", master, since
            )
            yield gauge(
                "dcos_zk_restorable_window_seconds",
                "From the oldest to the newest moment a restore can reach",
                master,
                until - since,
            )
        yield gauge(
            "dcos_zk_archive_gaps",
            "Breaks in the restorable history (moments in one cannot be restored to)",
            master,
            float(doc.get("gaps") or 0),  # type: ignore[arg-type]
        )
        errors = CounterMetricFamily(
            "dcos_zk_archive_errors", "Archiver passes that failed since it started", labels=["master"]
        )
        errors.add_metric([master], float(doc.get("errors") or 0))  # type: ignore[arg-type]
        yield errors


def archive_registry(master: str, status: Callable[[], dict[str, object]]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ArchiveCollector(master, status))
    return registry
