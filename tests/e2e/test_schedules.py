"""Backup schedules and retention through the API, against the real shared ensemble.

The service, its API (in-process) and its scheduler are real; the scheduler's clock is a :class:`FakeClock`
the test moves on, so that a per-minute schedule runs many times without waiting minutes. The backups it
starts are real backups of a chroot on the real ensemble. (``test_schedule_cli.py`` has the real clock.)
"""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from tests.helpers import in_process_api, wait_for

from dcos_backup.api.models import CREATE
from dcos_backup.api.paths import SCHEDULES
from dcos_backup.catalog.storage import LocalStorage
from dcos_backup.jobs.engine import ZkEngine
from dcos_backup.jobs.scheduler import Scheduler
from dcos_backup.jobs.schedules import ScheduleStore
from dcos_backup.jobs.service import BackupService
from dcos_backup.logical import connect
from dcos_backup.testing.faulty_engine import FaultyEngine
from dcos_backup.testing.seed import seed_marathon

pytestmark = pytest.mark.e2e

T0 = datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


class FakeClock:
    """The scheduler's time, moved on by the test; waiting on it returns once it has been moved far enough."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def move_to(self, when: datetime) -> None:
        with self._lock:
            self._now = when

    def wait(self, wake: threading.Event, seconds: float) -> bool:
        until = self.now() + timedelta(seconds=seconds)
        while self.now() < until:
            if wake.wait(0.01):
                return True
        return False


@pytest.fixture
def env(cluster, tmp_path):
    chroot = f"/sched-{uuid.uuid4().hex[:10]}"
    admin = connect(cluster.zk_hosts)
    admin.create(chroot)
    zk = connect(cluster.zk_hosts + chroot)
    seed_marathon(zk, apps=5, seed=3)
    engine = ZkEngine(cluster.zk_hosts + chroot)
    service = BackupService(LocalStorage(tmp_path / "backups"), FaultyEngine(engine), dcos_version="2.2.0")
    clock = FakeClock(T0)
    scheduler = Scheduler(service, ScheduleStore(engine.client), clock, recheck=3600, retry=1)
    with in_process_api(service, cluster.zk_hosts + chroot, scheduler) as api:
        yield api.http, service, scheduler, clock
    scheduler.stop()
    service.close()
    engine.close()
    zk.stop()
    admin.delete(chroot, recursive=True)
    admin.stop()


def schedule_doc(http, name: str) -> dict:
    response = http.get(f"{SCHEDULES}/{name}")
    assert response.status_code == 200, response.text
    return response.json()["schedule"]


def taken_by(service: BackupService, name: str) -> list:
    """The schedule's backups, oldest first."""
    return [r for r in service.list(name) if r.schedule == name]


def settled(service: BackupService, http, name: str, due: datetime, ready: int):
    """Once the run for ``due`` has been started, has ended, and retention has left ``ready`` READY backups."""

    def check():
        # The schedule first, then its backups: listed the other way round, a run started in between would
        # be missing from a list that looks settled.
        doc = schedule_doc(http, name)
        if doc["last_due"] != due.isoformat().replace("+00:00", "Z"):
            return None
        runs = taken_by(service, name)
        if doc["last_backup_id"] not in {r.id for r in runs}:
            return None
        if any(r.in_progress for r in runs) or len(runs) != ready:
            return None
        return runs

    return wait_for(check, timeout=120, what=f"the run of {name} due {due} and its retention")


def test_schedule_routes_and_bad_input(env):
    http, *_ = env
    created = http.post(SCHEDULES, json={"name": "nightly", "cron": "0 3 * * *", "keep_last": 7})
    assert created.status_code == 200, created.text
    doc = created.json()["schedule"]
    assert doc["name"] == "nightly" and doc["keep_last"] == 7 and not doc["paused"]
    assert doc["next_run"] == "2026-03-02T03:00:00Z"
    assert http.post(SCHEDULES, json={"name": "nightly", "cron": "@daily"}).status_code == 409
    bad = http.post(SCHEDULES, json={"name": "oops", "cron": "61 * * * *"})
    assert bad.status_code == 400 and "invalid cron expression '61 * * * *'" in bad.json()["errors"][0]
    assert "out of range" in bad.json()["errors"][0]
    for body in (
        {"name": "x", "cron": "@daily"},
        {"name": "weekly", "cron": "@daily", "keep_last": 0},
        {"name": "weekly", "cron": "@daily", "keep_within": "a week"},
        {"name": "weekly"},
    ):
        assert http.post(SCHEDULES, json=body).status_code == 400, body
    assert [s["name"] for s in http.get(SCHEDULES).json()["schedules"]] == ["nightly"]
    paused = http.post(f"{SCHEDULES}/nightly/pause").json()["schedule"]
    assert paused["paused"] and paused["next_run"] is None
    assert not http.post(f"{SCHEDULES}/nightly/resume").json()["schedule"]["paused"]
    assert http.post(f"{SCHEDULES}/weekly/pause").status_code == 404
    assert http.delete(f"{SCHEDULES}/nightly").status_code == 200
    assert http.get(f"{SCHEDULES}/nightly").status_code == 404
    assert http.get(SCHEDULES).json() == {"schedules": []}
    assert http.get(SCHEDULES, headers={"Authorization": ""}).status_code == 401


def test_per_minute_with_keep_last_2_keeps_exactly_the_2_newest(env, caplog):
    http, service, scheduler, clock = env
    caplog.set_level(logging.INFO, logger="dcos_backup.jobs")
    manual = http.post(CREATE, json={"label": "every-minute"}).json()["backup_info"]["id"]  # same label, by hand
    wait_for(lambda: not service.get(manual).in_progress, what="the manual backup")
    assert http.post(SCHEDULES, json={"name": "every-minute", "cron": "* * * * *", "keep_last": 2}).status_code == 200
    scheduler.start()
    started = []
    for run in range(1, 5):
        due = datetime(2026, 3, 1, 12, run, tzinfo=UTC)
        clock.move_to(due + timedelta(seconds=1))
        runs = settled(service, http, "every-minute", due, min(run, 2))
        started.append(schedule_doc(http, "every-minute")["last_backup_id"])
        assert all(r.status.value == "STATUS_READY" and r.label == "every-minute" for r in runs)
    assert [r.id for r in taken_by(service, "every-minute")] == started[-2:]
    assert service.get(manual).status.value == "STATUS_READY"  # never a manual backup
    pruned = [m for m in caplog.messages if "retention of schedule every-minute: deleted" in m]
    assert len(pruned) == 2 and started[0] in pruned[0] and "beyond --keep-last 2" in pruned[0]


def test_a_run_due_during_another_job_waits_and_runs_once(env, caplog):
    http, service, scheduler, clock = env
    caplog.set_level(logging.INFO, logger="dcos_backup.jobs")
    gate = threading.Event()
    service.engine.gate = gate  # the manual backup below stops mid-read until the gate opens
    try:
        manual = service.create("by-hand")
        assert http.post(SCHEDULES, json={"name": "busy", "cron": "* * * * *"}).status_code == 200
        scheduler.start()
        clock.move_to(T0 + 3 * MINUTE)  # three due times pass while the manual backup runs
        wait_for(lambda: any("busy is due; it waits for" in m for m in caplog.messages), what="the wait")
        assert taken_by(service, "busy") == []
    finally:
        gate.set()
    settled(service, http, "busy", datetime(2026, 3, 1, 12, 3, tzinfo=UTC), 1)
    assert service.get(manual.id).status.value == "STATUS_READY"
    assert any("3 due times passed while it waited; running once" in m for m in caplog.messages)


def test_runs_missed_while_no_scheduler_ran_run_once_at_start_and_are_logged(env, caplog):
    http, service, scheduler, clock = env
    caplog.set_level(logging.INFO, logger="dcos_backup.jobs")
    assert http.post(SCHEDULES, json={"name": "missed", "cron": "*/10 * * * *"}).status_code == 200
    clock.move_to(T0 + 35 * MINUTE)  # 12:10, 12:20, 12:30 fell due with no scheduler running
    scheduler.start()
    settled(service, http, "missed", datetime(2026, 3, 1, 12, 30, tzinfo=UTC), 1)
    warning = next(m for m in caplog.messages if "schedule missed: 3 run(s) due from" in m)
    assert "2026-03-01T12:10:00+00:00 to 2026-03-01T12:30:00+00:00" in warning


def test_pause_stops_runs_and_resume_skips_what_fell_due_meanwhile(env):
    http, service, scheduler, clock = env
    assert http.post(SCHEDULES, json={"name": "pausable", "cron": "* * * * *"}).status_code == 200
    scheduler.start()
    clock.move_to(T0 + MINUTE)
    settled(service, http, "pausable", datetime(2026, 3, 1, 12, 1, tzinfo=UTC), 1)
    assert http.post(f"{SCHEDULES}/pausable/pause").status_code == 200
    clock.move_to(T0 + 5 * MINUTE)  # 12:02 .. 12:05 fall due while paused
    resumed = http.post(f"{SCHEDULES}/pausable/resume").json()["schedule"]
    assert resumed["last_due"] == (T0 + 5 * MINUTE).isoformat().replace("+00:00", "Z")
    assert resumed["next_run"] == "2026-03-01T12:06:00Z"
    assert len(taken_by(service, "pausable")) == 1
    clock.move_to(T0 + 6 * MINUTE)
    settled(service, http, "pausable", datetime(2026, 3, 1, 12, 6, tzinfo=UTC), 2)


def test_a_schedule_with_drill_drills_each_backup_it_takes(env):
    http, service, scheduler, clock = env
    body = {"name": "drilled", "cron": "* * * * *", "drill": True}
    created = http.post(SCHEDULES, json=body)
    assert created.status_code == 200 and created.json()["schedule"]["drill"] is True
    assert http.post(SCHEDULES, json={"name": "plain", "cron": "@daily"}).json()["schedule"]["drill"] is False
    scheduler.start()
    due = datetime(2026, 3, 1, 12, 1, tzinfo=UTC)
    clock.move_to(due + timedelta(seconds=1))
    (run,) = settled(service, http, "drilled", due, 1)

    def drilled():
        drills = service.get(run.id).drills
        return drills and not service.job_runs_on(run.id) and drills

    (drill,) = wait_for(drilled, timeout=120, what="the schedule's drill")
    assert drill.status.value == "STATUS_READY" and drill.nodes == run.component_status["marathon"].nodes > 0
