"""Fault scenarios with real processes and real signals, shared by tests/e2e/test_faults.py (a few trials)
and bench/reliability_report.py (many trials). Each returns an :class:`Outcome` (the branch that occurred
and the time from the fault to recovery) and raises AssertionError when data is not intact.

Each scenario hits the branch it names, and checks that it did: the fault is dealt while the backup service
is frozen (SIGSTOP) and its catalog (``<storage>/<id>/backup.json``, written before every step that
matters) shows the job still at that point. A job that got past it before the freeze is left to finish and
the scenario starts another, so that what happens at random is only *where* in that stretch the fault lands.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import front_door, wait_for

from dcos_backup.catalog.archive import read_archive, verify_archive
from dcos_backup.catalog.objects import PARTIAL
from dcos_backup.errors import Conflict
from dcos_backup.local.cluster import Cluster
from dcos_backup.master.processes import read_pid
from dcos_backup.service.client import BackupClient, backup_finished, latest_restore, restore_finished
from dcos_backup.service.engine import ZkEngine
from dcos_backup.service.leadership import LEADER_PATH
from dcos_backup.testing.trees import snapshot
from dcos_backup.zk import connect

ATTEMPTS = 10


@dataclass(frozen=True)
class Outcome:
    """What a trial ended in: the accepted branch that occurred, and the seconds from the fault to recovery
    (the job finished, or the cluster serving again; what a scenario waits for is in its docstring)."""

    branch: str
    recover_seconds: float | None = None


class FaultClock:
    """When the fault was dealt: wrap an action with :meth:`timed`, read :meth:`since` once recovered."""

    def __init__(self) -> None:
        self.at: float | None = None

    def timed(self, action: Callable[[int], None]) -> Callable[[int], None]:
        def act(pid: int) -> None:
            self.at = time.monotonic()
            action(pid)

        return act

    def since(self) -> float | None:
        return None if self.at is None else time.monotonic() - self.at


def leading_service(cluster: Cluster) -> dict[str, str]:
    """The cluster.json entry of the backup service that leads (runs the jobs); master 1's when none is known.
    A kill must hit that one: after a long restart of master 1's, another master's service may lead."""
    zk = connect(cluster.zk_hosts)
    try:
        instance = json.loads(zk.get(LEADER_PATH)[0])["instance"]
    except Exception:
        return cluster.service
    finally:
        zk.stop()
        zk.close()
    return next((s for s in cluster.services if s.get("instance") == instance), cluster.service)


def service_client(cluster: Cluster) -> BackupClient:
    """A superuser's client through master 1's Admin Router."""
    return front_door(cluster)


# The supervisor's backoff doubles up to 30 s while the service keeps dying young: many kills in a row
# (the reliability report's trials) make the next start wait that long.
RESTART_TIMEOUT = 120.0


def wait_service(cluster: Cluster, timeout: float = RESTART_TIMEOUT) -> BackupClient:
    client = service_client(cluster)

    def answers() -> bool:
        try:
            client.list()
            return True
        except Exception:
            return False

    wait_for(answers, timeout=timeout, interval=0.2, what="backup service")
    return client


def ready_backup(client: BackupClient, label: str) -> dict:
    """A backup that succeeded, retried while a dead session's lock is still held."""
    deadline = time.monotonic() + 90
    while True:
        try:
            doc = client.wait(client.create(label)["id"], backup_finished, interval=0.1)
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
            continue
        if doc["status"] == "STATUS_READY":
            return doc
        if time.monotonic() > deadline:
            raise AssertionError(f"no backup succeeded: {doc.get('reason')}")


def restore_again(client: BackupClient, backup_id: str) -> dict:
    """Restore, retrying while a dead service's lock has not expired yet (409)."""
    deadline = time.monotonic() + 90
    while True:
        try:
            client.restore(backup_id)
            break
        except Conflict:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    return client.wait(backup_id, restore_finished, interval=0.2, timeout=120)


def archive_equals_tree(cluster: Cluster, doc: dict, root: str = "/marathon") -> None:
    component = doc["component_status"]["marathon"]
    path = Path(cluster.service["storage_dir"]) / doc["id"] / component["archive"]
    with open(path, "rb") as raw:
        verify_archive(raw, component["sha256"])
    with ZkEngine(cluster.zk_hosts) as engine, open(path, "rb") as raw:
        difference = engine.compare(root, read_archive(raw))
    assert difference is None, f"archive of a STATUS_READY backup differs from the tree: {difference}"


def damage_all_apps(cluster: Cluster) -> None:
    zk = connect(cluster.zk_hosts)
    try:
        zk.delete("/marathon/state/app", recursive=True)
        zk.create("/marathon/state/app/rogue", b"{}", makepath=True)
    finally:
        zk.stop()


def tree_now(cluster: Cluster) -> list:
    zk = connect(cluster.zk_hosts)
    try:
        return snapshot(zk)
    finally:
        zk.stop()


# ------------------------------------------------------------------------------ catching a job in the act
def catalog(cluster: Cluster, backup_id: str) -> dict:
    """The backup document as the service last wrote it (docs/format.md: written before each step)."""
    return json.loads((Path(cluster.service["storage_dir"]) / backup_id / "backup.json").read_text())


def job_running(doc: dict) -> bool:
    return doc["status"] == "STATUS_BACKING_UP" or latest_restore(doc).get("status") == "STATUS_RESTORING"


def safety_recorded(doc: dict) -> bool:
    """A restore has its safety backup: from now on it changes ZooKeeper."""
    return bool(latest_restore(doc).get("safety_backup_id"))


def archive_growing(cluster: Cluster, backup_id: str, size: int) -> bool:
    """A backup is streaming its archive (a hidden partial file until complete) and has written ``size`` bytes."""
    partials = (Path(cluster.service["storage_dir"]) / backup_id).glob(f"{PARTIAL}*")
    with contextlib.suppress(FileNotFoundError):
        return any(p.stat().st_size >= size for p in partials)
    return False


def act_mid_job(
    cluster: Cluster,
    start: Callable[[], str],
    ready: Callable[[str], bool],
    action: Callable[[int], None],
    still_there: Callable[[dict], bool] = job_running,
) -> str:
    """Start a job (``start()`` returns its id); once ``ready(id)``, freeze the service and, if its catalog
    shows the job still where ``still_there`` wants it, call ``action(service pid)`` then. A job that got
    past that point first is left to finish and another one is started. Returns the id of the job hit."""
    client = service_client(cluster)
    for _ in range(ATTEMPTS):
        pid_file = Path(leading_service(cluster)["child_pid_file"])
        job_id = start()
        reached = functools.partial(_reached_or_over, cluster, job_id, ready)
        wait_for(reached, timeout=120, interval=0.02, what=f"job {job_id} to reach the point of the fault")
        pid = read_pid(pid_file)
        os.kill(pid, signal.SIGSTOP)  # the job cannot move on while we look
        try:
            doc = catalog(cluster, job_id)
            if job_running(doc) and still_there(doc):
                action(pid)
                return job_id
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        client.wait(job_id, lambda d: backup_finished(d) and restore_finished(d), interval=0.1, timeout=120)
    raise AssertionError(f"no job was caught at the point of the fault in {ATTEMPTS} attempts")


def _reached_or_over(cluster: Cluster, job_id: str, ready: Callable[[str], bool]) -> bool:
    return ready(job_id) or not job_running(catalog(cluster, job_id))


def kill_service(cluster: Cluster) -> Callable[[int], None]:
    """An action for :func:`act_mid_job`: SIGKILL the frozen service, return once it runs again."""

    def kill(pid: int) -> None:
        pid_file = next(
            Path(s["child_pid_file"])
            for s in cluster.services or [cluster.service]
            if read_pid(Path(s["child_pid_file"])) == pid
        )
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: read_pid(pid_file) not in (None, pid), timeout=RESTART_TIMEOUT, what="service restart")

    return kill


def kill_leader(cluster: Cluster) -> Callable[[int], None]:
    """An action for :func:`act_mid_job`: SIGKILL the ZooKeeper leader (its supervisor brings it back)."""

    def kill(_: int) -> None:
        leader = next(m for m, s in zip(cluster.masters, cluster.status(), strict=True) if s.isLeader)
        os.kill(read_pid(leader.layout.zookeeper_pid_file), signal.SIGKILL)

    return kill


# ------------------------------------------------------------------------------------------- scenarios
def service_killed_mid_backup(cluster: Cluster, rng: random.Random) -> Outcome:
    """SIGKILL the service while a backup streams its archive: the backup must end STATUS_ERROR, cleaned up.
    Recovered: the restarted service answers."""
    client = wait_service(cluster)
    earlier = ready_backup(client, "earlier")
    size = rng.randint(1, 256 * 1024)
    clock = FaultClock()
    backup_id = act_mid_job(
        cluster,
        lambda: client.create("doomed")["id"],
        lambda job: archive_growing(cluster, job, size),
        clock.timed(kill_service(cluster)),
    )
    client = wait_service(cluster)
    recovered = clock.since()
    final = client.show(backup_id)
    assert final["status"] == "STATUS_ERROR" and "interrupted" in final["reason"], final
    storage = Path(cluster.service["storage_dir"])
    assert not list((storage / backup_id).glob(f"{PARTIAL}*")), "partial files left behind"
    archive_equals_tree(cluster, client.show(earlier["id"]))  # earlier backups intact
    ready_backup(client, "after-kill")
    return Outcome("interrupted, cleaned up", recovered)


RESTORE_BRANCHES = {
    # branch: (the catalog state the kill must find, the outcome's words in the reason, what the scenario returns)
    "before any change": (lambda doc: not safety_recorded(doc), "ZooKeeper was not touched", "untouched"),
    "while applying": (safety_recorded, "rolled back", "rolled back"),
}


def service_killed_mid_restore(cluster: Cluster, rng: random.Random, branch: str) -> Outcome:
    """SIGKILL the service mid-restore, ``branch`` = before it changed anything or while it applies the
    archive: either way the restarted service must leave the tree exactly as it was before the restore.
    Recovered: the restarted service has finished the interrupted restore (rolled back or marked)."""
    where, reason, outcome = RESTORE_BRANCHES[branch]
    client = wait_service(cluster)
    backup = ready_backup(client, "before")
    wanted = tree_now(cluster)
    damage_all_apps(cluster)
    damaged = tree_now(cluster)
    delay = rng.uniform(0.0, 0.3)

    def start() -> str:
        damage_all_apps(cluster)  # again after a restore that won the race (the same tree)
        client.restore(backup["id"])
        return backup["id"]

    def ready(job: str) -> bool:
        if not where(catalog(cluster, job)):
            return False
        time.sleep(delay)  # somewhere in that stretch, not always at its start
        return True

    clock = FaultClock()
    act_mid_job(cluster, start, ready, clock.timed(kill_service(cluster)), still_there=where)
    client = wait_service(cluster)
    final = client.wait(backup["id"], restore_finished, interval=0.2, timeout=120)
    recovered = clock.since()
    restore = latest_restore(final)
    assert restore["status"] == "STATUS_ERROR" and "interrupted" in restore["reason"], restore
    assert reason in restore["reason"], restore
    assert tree_now(cluster) == damaged, "the tree is not what it was before the interrupted restore"
    assert latest_restore(restore_again(client, backup["id"]))["status"] == "STATUS_READY"
    assert tree_now(cluster) == wanted, "a re-run restore did not bring the backup back"
    return Outcome(outcome, recovered)


def leader_killed_mid_job(cluster: Cluster, rng: random.Random, kind: str, branch: str = "while applying") -> Outcome:
    """SIGKILL the ZooKeeper leader while a backup streams its archive, or while a restore is in ``branch``
    (see RESTORE_BRANCHES): the job completes correctly or ends STATUS_ERROR with a reason, and a restore
    that failed leaves the tree exactly as it was before it (rolled back, if it had changed anything).
    Recovered: the job has finished and the ensemble serves on every member."""
    client = wait_service(cluster)
    backup = ready_backup(client, "base")
    wanted = tree_now(cluster)
    size = rng.randint(1, 256 * 1024)
    where = RESTORE_BRANCHES[branch][0]

    def start() -> str:
        if kind == "backup":
            return client.create("during-kill")["id"]
        damage_all_apps(cluster)
        client.restore(backup["id"])
        return backup["id"]

    def ready(job: str) -> bool:
        return archive_growing(cluster, job, size) if kind == "backup" else where(catalog(cluster, job))

    if kind == "restore":
        damage_all_apps(cluster)
    damaged = tree_now(cluster)
    clock = FaultClock()
    still_there = where if kind == "restore" else job_running
    job_id = act_mid_job(cluster, start, ready, clock.timed(kill_leader(cluster)), still_there)
    final = client.wait(job_id, lambda d: backup_finished(d) and restore_finished(d), interval=0.2, timeout=120)
    outcome = latest_restore(final) if kind == "restore" else final  # both have status and reason
    status, reason = outcome["status"], outcome["reason"]
    cluster.wait_serving(90)
    recovered = clock.since()
    if status == "STATUS_READY":
        if kind == "restore":
            assert tree_now(cluster) == wanted, "restore READY with wrong data"
        else:
            archive_equals_tree(cluster, final)
        return Outcome("completed", recovered)
    assert status == "STATUS_ERROR" and reason, f"{status} without a reason"
    if kind == "restore":
        as_before = tree_now(cluster) == damaged
        restore_again(client, job_id)  # leave the cluster as the next trial expects it, whatever happened
        assert tree_now(cluster) == wanted
        assert as_before, f"a failed restore left the tree neither as before nor as the backup ({reason})"
        assert branch != "while applying" or "rolled back to the safety backup" in reason, reason
    return Outcome("error with reason", recovered)
