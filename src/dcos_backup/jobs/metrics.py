"""The backup service's Prometheus metrics (names are a contract: docs/api.md "Metrics").

Two parts, both collected into a registry of the app's own (never prometheus-client's global one: a
process may run several services, the tests do):

- :class:`JobMetrics`, what only the job runner sees: every job that ends is counted by kind and outcome
  and its duration observed (``dcos_backup_jobs_total``, ``dcos_backup_job_duration_seconds``). The kind
  is the runner's own (backup, restore, recovery, drill ...): a new kind of job is counted with no change here.
- :class:`StateCollector`, what is read at scrape time from where it is true: the catalog (newest success
  and attempt per component, sizes, counts by status, whether the storage answers), the schedules, the
  leadership and the running job. Nothing is cached, so a scrape never shows a stale state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from dcos_backup.catalog.models import BackupRecord, Status
from dcos_backup.errors import DcosBackupError

if TYPE_CHECKING:
    from dcos_backup.jobs.scheduler import Scheduler
    from dcos_backup.jobs.service import BackupService

log = logging.getLogger(__name__)

KINDS = ("backup", "restore", "drill")  # shown from the first scrape on, at 0; other kinds once they run
OUTCOMES = ("ok", "error", "cancelled")
# Jobs last from a second (a small backup) to hours (a large restore).
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, float("inf"))


class JobMetrics(Collector):
    """Counts and times the jobs that end (the runner calls :meth:`job_ended`)."""

    def __init__(self) -> None:
        self.jobs = Counter(
            "dcos_backup_jobs", "Jobs that ended, by kind and outcome", ("kind", "outcome"), registry=None
        )
        self.duration = Histogram(
            "dcos_backup_job_duration_seconds",
            "How long jobs took, start to end, by kind",
            ("kind",),
            buckets=DURATION_BUCKETS,
            registry=None,
        )
        for kind in KINDS:
            self.duration.labels(kind)
            for outcome in OUTCOMES:
                self.jobs.labels(kind, outcome)

    def job_ended(self, kind: str, outcome: str, seconds: float) -> None:
        self.jobs.labels(kind, outcome).inc()
        self.duration.labels(kind).observe(seconds)

    def collect(self) -> Iterable[Metric]:
        yield from self.jobs.collect()
        yield from self.duration.collect()


class StateCollector(Collector):
    """The gauges read at scrape time (see the module's docstring)."""

    def __init__(
        self,
        service: BackupService,
        scheduler: Scheduler | None = None,
        is_leader: Callable[[], bool] | None = None,
    ) -> None:
        self.service = service
        self.scheduler = scheduler
        self.is_leader = is_leader or (lambda: True)  # without leadership, this instance runs every job

    def collect(self) -> Iterator[Metric]:
        yield from self._jobs_running()
        leader = GaugeMetricFamily("dcos_backup_leader", "1 on the leading service instance", labels=["instance"])
        leader.add_metric([self.service.instance], 1.0 if self.is_leader() else 0.0)
        yield leader
        try:
            records = self.service.list()
        except DcosBackupError as exc:
            log.warning("metrics: cannot list the catalog: %s", exc)
            records = None
        yield GaugeMetricFamily(
            "dcos_backup_storage_up", "1 if the catalog's storage answered this scrape", value=records is not None
        )
        if records is not None:
            yield from catalog_metrics(records)
            yield from self._schedules(records)

    def _jobs_running(self) -> Iterator[Metric]:
        running = GaugeMetricFamily("dcos_backup_job_running", "1 while a job of this kind runs here", labels=["kind"])
        job = self.service.running
        kinds = dict.fromkeys(KINDS, 0.0)
        if job is not None:
            kinds[job.kind] = 1.0
        for kind, value in kinds.items():
            running.add_metric([kind], value)
        yield running

    def _schedules(self, records: list[BackupRecord]) -> Iterator[Metric]:
        if self.scheduler is None:
            return
        try:
            schedules = self.scheduler.store.list()
        except DcosBackupError as exc:
            log.warning("metrics: cannot read the schedules: %s", exc)
            return
        next_run = GaugeMetricFamily(
            "dcos_backup_schedule_next_run_timestamp_seconds", "When the schedule runs next", labels=["schedule"]
        )
        last_success = GaugeMetricFamily(
            "dcos_backup_schedule_last_success_timestamp_seconds",
            "When the schedule's newest STATUS_READY backup finished",
            labels=["schedule"],
        )
        for schedule in schedules:
            if not schedule.paused:
                next_run.add_metric([schedule.name], schedule.next_time().timestamp())
            ready = [r for r in records if r.schedule == schedule.name and r.status == Status.READY and r.finished_at]
            if ready:
                last_success.add_metric([schedule.name], max(r.finished_at.timestamp() for r in ready if r.finished_at))
        yield next_run
        yield last_success


def catalog_metrics(records: list[BackupRecord]) -> Iterator[Metric]:
    """The catalog's gauges; safety backups (taken by restores) count by status only."""
    by_status = GaugeMetricFamily("dcos_backup_catalog_backups", "Backups in the catalog by status", labels=["status"])
    for status in Status:
        by_status.add_metric([status.value], sum(1 for r in records if r.status == status))
    yield by_status
    success = GaugeMetricFamily(
        "dcos_backup_last_success_timestamp_seconds",
        "When the newest STATUS_READY backup of the component finished",
        labels=["component"],
    )
    attempt = GaugeMetricFamily(
        "dcos_backup_last_attempt_timestamp_seconds",
        "When the newest backup of the component started, whatever became of it",
        labels=["component"],
    )
    size = GaugeMetricFamily(
        "dcos_backup_size_bytes",
        "Stored bytes of the component in its newest STATUS_READY backup",
        labels=["component"],
    )
    newest_ready: dict[str, BackupRecord] = {}
    newest_attempt: dict[str, BackupRecord] = {}
    for record in records:
        if record.safety or record.damaged:
            continue
        for name in record.component_status:
            if name not in newest_attempt or record.timestamp > newest_attempt[name].timestamp:
                newest_attempt[name] = record
            finished = record.status == Status.READY and record.finished_at is not None
            if finished and (name not in newest_ready or record.finished_at > newest_ready[name].finished_at):  # type: ignore[operator]
                newest_ready[name] = record
    for name, record in sorted(newest_attempt.items()):
        attempt.add_metric([name], record.timestamp.timestamp())
    for name, record in sorted(newest_ready.items()):
        success.add_metric([name], record.finished_at.timestamp())  # type: ignore[union-attr]
        size.add_metric([name], record.component_status[name].bytes)
    yield success
    yield attempt
    yield size


def registry_for(
    service: BackupService, scheduler: Scheduler | None = None, is_leader: Callable[[], bool] | None = None
) -> CollectorRegistry:
    """A registry of the service's own with every metric of the backup service."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(service.job_metrics)
    registry.register(StateCollector(service, scheduler, is_leader))
    return registry
