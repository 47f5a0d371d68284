"""Backup schedules: what one is (a cron expression, a retention policy, paused or not), when it falls due,
and where schedules live: one JSON znode each, ``/dcos-backup/schedules/<name>``.

They live in ZooKeeper, not beside the backups, because every instance of the service must see the same
schedules and whichever instance leads runs them (``docs/operations.md``). Besides what the user set, a
schedule records how far the scheduler got: ``last_due``, the latest due time it dealt with (ran, or let go
by a pause), so that a leader that takes over knows which runs were missed while none ran.

Cron expressions are read by croniter, in UTC: five fields (minute hour day month weekday), the
``@hourly``-style names, or six fields whose last one is seconds (for tests and very frequent schedules).
A schedule's name labels its backups (ids ``<name>-<uuid4>``), so it follows DC/OS's label rules.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from croniter import CroniterError, croniter
from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, KazooException, NoAuthError, NodeExistsError, NoNodeError
from pydantic import BaseModel, Field, ValidationError

from dcos_backup.catalog.ids import LABEL_RULES, validate_label
from dcos_backup.durations import parse_duration
from dcos_backup.errors import AccessDenied, Conflict, IntegrityError, NotFound, UsageError, ZooKeeperUnavailable
from dcos_backup.iam import znodes

SCHEDULES_PATH = znodes.SCHEDULES
CRON_HELP = "5 fields (minute hour day-of-month month day-of-week, UTC), an @hourly-style name, or 6 with seconds last"
REQUEST_TIMEOUT = 10.0  # seconds for one ZooKeeper request of the store
MAX_DUE_TIMES = 10_000  # due times counted when a schedule is far behind (a per-second one after a long outage)


def validate_cron(expression: str) -> str:
    """A cron expression croniter reads and that falls due some day; UsageError with croniter's reason."""
    fields = expression.split() if isinstance(expression, str) else []
    if not (len(fields) in (5, 6) or (len(fields) == 1 and fields[0].startswith("@"))):
        raise UsageError(f"invalid cron expression {expression!r}: want {CRON_HELP}")
    try:
        croniter(expression, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except (CroniterError, ValueError, KeyError) as exc:  # croniter reports a bad field as any of these
        raise UsageError(f"invalid cron expression {expression!r}: {exc or type(exc).__name__}") from exc
    return expression


def validate_name(name: str) -> str:
    try:
        return validate_label(name)
    except UsageError as exc:
        raise UsageError(f"invalid schedule name {name!r}: it labels the schedule's backups: {LABEL_RULES}") from exc


def next_due(expression: str, after: datetime) -> datetime:
    """The first time ``expression`` falls due strictly after ``after``."""
    return croniter(expression, after).get_next(datetime)


class Schedule(BaseModel):
    """One schedule as its znode holds it (and the API shows it, with ``next_run``)."""

    name: str = Field(description="labels the schedule's backups: ids are <name>-<uuid4>")
    cron: str = Field(description=CRON_HELP)
    keep_last: int | None = Field(None, ge=1, description="keep this many newest READY backups")
    keep_within: str | None = Field(None, description="keep every READY backup younger than this (7d, 12h, ...)")
    paused: bool = False
    drill: bool = Field(False, description="drill each backup the schedule takes, once it is READY (POST /drill)")
    created_at: datetime
    last_due: datetime | None = Field(None, description="the latest due time the scheduler dealt with")
    last_run_at: datetime | None = Field(None, description="when the scheduler last started a backup of it")
    last_backup_id: str | None = None

    @classmethod
    def new(
        cls,
        name: str,
        cron: str,
        keep_last: int | None,
        keep_within: str | None,
        created_at: datetime,
        drill: bool = False,
    ) -> Schedule:
        """A checked new schedule (UsageError saying what is wrong)."""
        if keep_within is not None:
            parse_duration(keep_within, "--keep-within")
        if keep_last is not None and keep_last < 1:
            raise UsageError(f"invalid --keep-last {keep_last}: keep at least 1 backup")
        return cls(
            name=validate_name(name),
            cron=validate_cron(cron),
            keep_last=keep_last,
            keep_within=keep_within,
            created_at=created_at,
            drill=drill,
        )

    @property
    def cursor(self) -> datetime:
        """Due times after this one are still to be dealt with."""
        return self.last_due or self.created_at

    @property
    def retention_window(self) -> timedelta | None:
        return parse_duration(self.keep_within, "--keep-within") if self.keep_within else None

    @property
    def has_retention(self) -> bool:
        return self.keep_last is not None or self.keep_within is not None

    def next_time(self) -> datetime:
        return next_due(self.cron, self.cursor)

    def due_times(self, now: datetime) -> list[datetime]:
        """The due times after the cursor up to ``now`` (at most :data:`MAX_DUE_TIMES`, the latest last)."""
        due: list[datetime] = []
        it = croniter(self.cron, self.cursor)
        while (when := it.get_next(datetime)) <= now:
            due.append(when)
            if len(due) > MAX_DUE_TIMES:
                # Far behind: count no further, jump to the latest due time (croniter's get_prev from now).
                due[-1] = croniter(self.cron, now + timedelta(microseconds=1)).get_prev(datetime)
                break
        return due


class ScheduleStore:
    """The schedules in ZooKeeper, on the service's kazoo client (``acl``: the znodes' ACL, default open).

    A request waits at most :data:`REQUEST_TIMEOUT` and fails at once while the client has no connection
    (kazoo would queue it until one comes back): a ZooKeeperUnavailable, 503 to an API client.
    """

    def __init__(self, client: KazooClient, acl: list | None = None, timeout: float = REQUEST_TIMEOUT) -> None:
        self.client = client
        self.acl = acl
        self.timeout = timeout

    def list(self) -> list[Schedule]:
        """Every schedule, by name."""
        try:
            names = self._wait(self.client.get_children_async(SCHEDULES_PATH), "listing the schedules")
        except NoNodeError:
            return []
        found = []
        for name in sorted(names):
            try:
                found.append(self.get(name))
            except NotFound:
                continue  # deleted between the listing and the read
        return found

    def get(self, name: str) -> Schedule:
        return self._read(validate_name(name))[0]

    def create(self, schedule: Schedule) -> Schedule:
        try:
            self._wait(
                self.client.create_async(self._path(schedule.name), self._encode(schedule), self.acl, makepath=True),
                f"creating schedule {schedule.name}",
            )
        except NodeExistsError as exc:
            raise Conflict(f"a schedule named {schedule.name!r} exists already") from exc
        return schedule

    def update(self, name: str, change: Callable[[Schedule], None]) -> Schedule:
        """Apply ``change`` to the schedule and write it, again if someone else wrote it meanwhile."""
        while True:
            schedule, version = self._read(validate_name(name))
            change(schedule)
            try:
                self._wait(
                    self.client.set_async(self._path(name), self._encode(schedule), version),
                    f"changing schedule {name}",
                )
                return schedule
            except BadVersionError:
                continue
            except NoNodeError as exc:
                raise NotFound(f"no schedule named {name!r}") from exc

    def delete(self, name: str) -> Schedule:
        schedule = self.get(name)
        try:
            self._wait(self.client.delete_async(self._path(name)), f"deleting schedule {name}")
        except NoNodeError as exc:
            raise NotFound(f"no schedule named {name!r}") from exc
        return schedule

    # ---------------------------------------------------------------- inside
    @staticmethod
    def _path(name: str) -> str:
        return f"{SCHEDULES_PATH}/{name}"

    @staticmethod
    def _encode(schedule: Schedule) -> bytes:
        return schedule.model_dump_json(indent=2).encode()

    def _read(self, name: str) -> tuple[Schedule, int]:
        try:
            data, stat = self._wait(self.client.get_async(self._path(name)), f"reading schedule {name}")
        except NoNodeError as exc:
            raise NotFound(f"no schedule named {name!r}") from exc
        try:
            return Schedule.model_validate_json(data), stat.version
        except ValidationError as exc:
            raise IntegrityError(f"schedule {name} in ZooKeeper ({self._path(name)}) is unreadable") from exc

    def _wait(self, pending, what: str):
        """The result of a kazoo async request; ZooKeeper's refusals other than these become our errors."""
        if not self.client.connected:
            raise ZooKeeperUnavailable(f"ZooKeeper unavailable: the service has no ZooKeeper session ({what})")
        try:
            return pending.get(timeout=self.timeout)
        except (NoNodeError, NodeExistsError, BadVersionError):
            raise
        except self.client.handler.timeout_exception as exc:
            raise ZooKeeperUnavailable(f"ZooKeeper unavailable: no answer within {self.timeout:g}s ({what})") from exc
        except NoAuthError as exc:
            raise AccessDenied(f"ZooKeeper refuses the service's credentials {what}", path=SCHEDULES_PATH) from exc
        except KazooException as exc:
            raise ZooKeeperUnavailable(f"ZooKeeper unavailable ({what}): {type(exc).__name__}") from exc
