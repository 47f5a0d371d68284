"""Our extension of the backup API: backup schedules, under DC/OS's prefix beside its v1 routes (docs/api.md).

``GET|POST /schedules``, ``GET|DELETE /schedules/{name}``, ``POST /schedules/{name}/pause|resume``. The
schedules live in ZooKeeper (:class:`~dcos_backup.jobs.schedules.ScheduleStore`), so every instance of
the service answers these; the one that leads runs them (:class:`~dcos_backup.jobs.scheduler.Scheduler`)
and is woken by a change made here. A bad cron expression, name or retention is a 400 saying why.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from dcos_backup.api.models import ErrorBody
from dcos_backup.api.paths import SCHEDULES
from dcos_backup.jobs.scheduler import Scheduler
from dcos_backup.jobs.schedules import CRON_HELP, Schedule

ONE = SCHEDULES + "/{name}"


class CreateSchedule(BaseModel):
    name: str = Field(description="labels the schedule's backups (DC/OS's label rules): ids are <name>-<uuid4>")
    cron: str = Field(description=CRON_HELP)
    keep_last: int | None = Field(None, ge=1, description="retention: keep this many newest READY backups")
    keep_within: str | None = Field(None, description="retention: keep every READY backup younger than this (7d)")
    drill: bool = Field(False, description="drill each backup the schedule takes, once it is READY")


class ScheduleDocument(Schedule):
    """A schedule as the API shows it: as stored, and when it next runs (None while paused)."""

    next_run: datetime | None = None

    @classmethod
    def of(cls, schedule: Schedule) -> ScheduleDocument:
        return cls.model_validate({**dict(schedule), "next_run": None if schedule.paused else schedule.next_time()})


class ScheduleInfo(BaseModel):
    schedule: ScheduleDocument


class ScheduleList(BaseModel):
    schedules: list[ScheduleDocument]


def schedule_routes(scheduler: Scheduler, authorized: Callable[..., str]) -> APIRouter:
    """The schedule routes, each behind ``authorized`` (the same permission check as DC/OS's routes)."""
    errors = {"model": ErrorBody}
    router = APIRouter(
        dependencies=[Depends(authorized)], responses={400: errors, 401: errors, 403: errors, 503: errors}
    )
    store, clock = scheduler.store, scheduler.clock

    def changed(schedule: Schedule) -> ScheduleInfo:
        scheduler.wake()
        return ScheduleInfo(schedule=ScheduleDocument.of(schedule))

    @router.get(SCHEDULES, summary="List the backup schedules")
    def list_schedules() -> ScheduleList:
        return ScheduleList(schedules=[ScheduleDocument.of(s) for s in store.list()])

    @router.post(SCHEDULES, responses={409: errors}, summary="Create a backup schedule")
    def create(body: CreateSchedule) -> ScheduleInfo:
        schedule = Schedule.new(
            body.name, body.cron, body.keep_last, body.keep_within, created_at=clock.now(), drill=body.drill
        )
        return changed(store.create(schedule))

    @router.get(ONE, responses={404: errors}, summary="Show one backup schedule")
    def show(name: str) -> ScheduleInfo:
        return ScheduleInfo(schedule=ScheduleDocument.of(store.get(name)))

    @router.delete(ONE, responses={404: errors}, summary="Delete a backup schedule (its backups stay)")
    def delete(name: str) -> ScheduleInfo:
        return changed(store.delete(name))

    @router.post(ONE + "/pause", responses={404: errors}, summary="Pause a schedule: no runs until resumed")
    def pause(name: str) -> ScheduleInfo:
        return changed(store.update(name, lambda s: setattr(s, "paused", True)))

    @router.post(
        ONE + "/resume", responses={404: errors}, summary="Resume a schedule (runs due while paused are skipped)"
    )
    def resume(name: str) -> ScheduleInfo:
        def resumed(schedule: Schedule) -> None:
            if schedule.paused:  # the due times that passed while paused are let go, not run late
                schedule.last_due = max(schedule.cursor, clock.now())
            schedule.paused = False

        return changed(store.update(name, resumed))

    return router
