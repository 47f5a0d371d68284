"""Fault scenarios with real processes and real signals, shared by tests/e2e/test_faults.py (one trial each)
and bench/reliability_report.py (many trials). Each returns an :class:`Outcome` (the branch that occurred
and the time from the fault to recovery) and raises AssertionError when data is not intact.

Each scenario hits the branch it names, and checks that it did: the fault is dealt while the backup service
is frozen (SIGSTOP) and its catalog (``<storage>/<id>.json``, written before every step that
matters) shows the job still at that point. A job that got past it before the freeze is left to finish and
the scenario starts another, so that what happens at random is only *where* in that stretch the fault lands.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import re
import signal
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import boto3
import psutil

from dcos_backup.catalog.archive import read_archive, verify_archive
from dcos_backup.catalog.storage import open_storage
from dcos_backup.cli.client import BackupClient, backup_finished, latest_restore, restore_finished, restore_of
from dcos_backup.errors import Conflict
from dcos_backup.iam.store import Credentials
from dcos_backup.jobs.engine import LOCK_PATH, ZkEngine
from dcos_backup.jobs.leadership import LEADER_PATH
from dcos_backup.local import cluster as local_cluster
from dcos_backup.local.s3 import create_bucket
from dcos_backup.local.spec import ClusterSpec, Master
from dcos_backup.logical import connect
from dcos_backup.master.fourlw import four_letter_word
from dcos_backup.master.processes import read_pid
from dcos_backup.physical.continuous.index import RepoIndex
from dcos_backup.physical.continuous.repository import KEY_ENV
from dcos_backup.storage.base import PARTIAL
from dcos_backup.storage.s3 import S3_PART
from dcos_backup.testing.api import InProcessApi, create_ready, front_door, service_api
from dcos_backup.testing.archiving import (
    archived_to,
    archiver_pid,
    cluster_repository,
    exported_load,
    frozen_mid_copy,
    keys,
    settle,
)
from dcos_backup.testing.chroot import marathon_chroot
from dcos_backup.testing.faulty_s3 import FaultyS3
from dcos_backup.testing.load import LoadGenerator
from dcos_backup.testing.tools import ok, run_tool, wait_for
from dcos_backup.testing.trees import snapshot

ATTEMPTS = 10
T = TypeVar("T")


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


def leading_service(cluster: ClusterSpec) -> dict[str, str]:
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


def service_client(cluster: ClusterSpec) -> BackupClient:
    """A superuser's client through master 1's Admin Router."""
    return front_door(cluster)


# The supervisor's backoff doubles up to 30 s while the service keeps dying young: many kills in a row
# (the reliability report's trials) make the next start wait that long.
RESTART_TIMEOUT = 120.0
# A killed service's lock goes when its ZooKeeper session expires; a recovery job holds it while it runs.
LOCK_TIMEOUT = 120.0


def wait_service(cluster: ClusterSpec, timeout: float = RESTART_TIMEOUT) -> BackupClient:
    client = service_client(cluster)

    def answers() -> bool:
        try:
            client.list()
            return True
        except Exception:
            return False

    wait_for(answers, timeout=timeout, interval=0.2, what="backup service")
    return client


def job_lock_free(cluster: ClusterSpec) -> bool:
    """No job holds the service's lock. Between trials a holder is a killed service's lock, which its
    ZooKeeper session takes away when it expires, or the restarted service's recovery of it."""
    zk = connect(cluster.zk_hosts)
    try:
        return not zk.exists(LOCK_PATH) or not zk.get_children(LOCK_PATH)
    finally:
        zk.stop()
        zk.close()


def when_lock_free(cluster: ClusterSpec, start: Callable[[], T]) -> T:
    """``start()`` once the job lock is free; again on a 409 (a recovery took the lock in between)."""
    deadline = time.monotonic() + LOCK_TIMEOUT
    while True:
        wait_for(lambda: job_lock_free(cluster), timeout=LOCK_TIMEOUT, what="the job lock to be free")
        try:
            return start()
        except Conflict:
            if time.monotonic() > deadline:
                raise


def ready_backup(cluster: ClusterSpec, client: BackupClient, label: str) -> dict:
    """A backup that succeeded, started once a dead session's lock is gone."""
    doc = client.wait(when_lock_free(cluster, lambda: client.create(label)["id"]), backup_finished, interval=0.1)
    assert doc["status"] == "STATUS_READY", f"backup {label} failed: {doc.get('reason')}"
    return doc


def restore_again(cluster: ClusterSpec, client: BackupClient, backup_id: str) -> dict:
    """Restore, once a dead service's lock is gone; the backup's document once the restore ended."""
    when_lock_free(cluster, lambda: client.restore(backup_id))
    return client.wait(backup_id, restore_finished, interval=0.2, timeout=120)


def archive_equals_tree(cluster: ClusterSpec, doc: dict, root: str = "/marathon") -> None:
    component = doc["component_status"]["marathon"]
    path = Path(cluster.service["storage_dir"]) / doc["id"] / component["archive"]
    with open(path, "rb") as raw:
        verify_archive(raw, component["sha256"])
    with ZkEngine(cluster.zk_hosts) as engine, open(path, "rb") as raw:
        difference = engine.compare(root, read_archive(raw))
    assert difference is None, f"archive of a STATUS_READY backup differs from the tree: {difference}"


def damage_all_apps(cluster: ClusterSpec) -> None:
    zk = connect(cluster.zk_hosts)
    try:
        zk.delete("/marathon/state/app", recursive=True)
        zk.create("/marathon/state/app/rogue", b"{}", makepath=True)
    finally:
        zk.stop()


def tree_now(cluster: ClusterSpec) -> list:
    zk = connect(cluster.zk_hosts)
    try:
        return snapshot(zk)
    finally:
        zk.stop()


# ------------------------------------------------------------------------------ catching a job in the act
def catalog(cluster: ClusterSpec, backup_id: str) -> dict:
    """The backup document as the service last wrote it (docs/format.md: written before each step)."""
    return json.loads((Path(cluster.service["storage_dir"]) / f"{backup_id}.json").read_text())


def job_running(doc: dict) -> bool:
    return doc["status"] == "STATUS_BACKING_UP" or latest_restore(doc).get("status") == "STATUS_RESTORING"


def safety_recorded(doc: dict) -> bool:
    """A restore has its safety backup: from now on it changes ZooKeeper."""
    return bool(latest_restore(doc).get("safety_backup_id"))


def archive_growing(cluster: ClusterSpec, backup_id: str, size: int) -> bool:
    """A backup is streaming its archive (a hidden partial file until complete) and has written ``size`` bytes."""
    partials = (Path(cluster.service["storage_dir"]) / backup_id).glob(f"{PARTIAL}*")
    with contextlib.suppress(FileNotFoundError):
        return any(p.stat().st_size >= size for p in partials)
    return False


def act_mid_job(
    cluster: ClusterSpec,
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


def _reached_or_over(cluster: ClusterSpec, job_id: str, ready: Callable[[str], bool]) -> bool:
    return ready(job_id) or not job_running(catalog(cluster, job_id))


def kill_service(cluster: ClusterSpec) -> Callable[[int], None]:
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


def kill_leader(cluster: ClusterSpec) -> Callable[[int], None]:
    """An action for :func:`act_mid_job`: SIGKILL the ZooKeeper leader (its supervisor brings it back)."""

    def kill(_: int) -> None:
        os.kill(read_pid(zookeeper_leader(cluster).layout.zookeeper_pid_file), signal.SIGKILL)

    return kill


# ------------------------------------------------------------------------------------------- scenarios
def service_killed_mid_backup(cluster: ClusterSpec, rng: random.Random) -> Outcome:
    """SIGKILL the service while a backup streams its archive: the backup must end STATUS_ERROR, cleaned up.
    Recovered: a service has marked the backup interrupted."""
    client = wait_service(cluster)
    earlier = ready_backup(cluster, client, "earlier")
    size = rng.randint(1, 256 * 1024)
    clock = FaultClock()
    backup_id = act_mid_job(
        cluster,
        lambda: client.create("doomed")["id"],
        lambda job: archive_growing(cluster, job, size),
        clock.timed(kill_service(cluster)),
    )
    client = wait_service(cluster)
    # The service that recovers the job may answer before it has (it leads once the killed one's session
    # expires): the job is over once the catalog says so.
    final = client.wait(backup_id, backup_finished, interval=0.2, timeout=RESTART_TIMEOUT)
    recovered = clock.since()
    assert final["status"] == "STATUS_ERROR" and "interrupted" in final["reason"], final
    storage = Path(cluster.service["storage_dir"])
    assert not list((storage / backup_id).glob(f"{PARTIAL}*")), "partial files left behind"
    archive_equals_tree(cluster, client.show(earlier["id"]))  # earlier backups intact
    ready_backup(cluster, client, "after-kill")
    return Outcome("interrupted, cleaned up", recovered)


@dataclass(frozen=True)
class RestoreRig:
    """What the mid-restore scenarios share: a READY backup of /marathon, the tree it holds (``wanted``) and
    the damaged tree each restore starts from (``damaged``)."""

    cluster: ClusterSpec
    client: BackupClient
    backup: dict
    wanted: list
    damaged: list

    @classmethod
    def prepare(cls, cluster: ClusterSpec, label: str) -> RestoreRig:
        client = wait_service(cluster)
        backup = ready_backup(cluster, client, label)
        wanted = tree_now(cluster)
        damage_all_apps(cluster)
        return cls(cluster, client, backup, wanted, tree_now(cluster))

    def start(self) -> str:
        """Start the restore from the damaged tree (again after a restore that won the race: the same tree),
        once a dead service's lock is gone; the backup's id."""
        damage_all_apps(self.cluster)
        when_lock_free(self.cluster, lambda: self.client.restore(self.backup["id"]))
        return str(self.backup["id"])

    def in_stretch(self, where: Callable[[dict], bool], rng: random.Random) -> Callable[[str], bool]:
        """A ``ready`` for :func:`act_mid_job`: the catalog shows the restore ``where`` wanted, and a random
        delay of up to 0.3 s has passed since (somewhere in that stretch, not always at its start)."""
        delay = rng.uniform(0.0, 0.3)

        def ready(job: str) -> bool:
            if not where(catalog(self.cluster, job)):
                return False
            time.sleep(delay)
            return True

        return ready


RESTORE_BRANCHES = {
    # branch: (the catalog state the kill must find, the outcome's words in the reason, what the scenario returns)
    "before any change": (lambda doc: not safety_recorded(doc), "ZooKeeper was not touched", "untouched"),
    "while applying": (safety_recorded, "rolled back", "rolled back"),
}


def service_killed_mid_restore(cluster: ClusterSpec, rng: random.Random, branch: str) -> Outcome:
    """SIGKILL the service mid-restore, ``branch`` = before it changed anything or while it applies the
    archive: either way the restarted service must leave the tree exactly as it was before the restore.
    Recovered: the restarted service has finished the interrupted restore (rolled back or marked)."""
    where, reason, outcome = RESTORE_BRANCHES[branch]
    rig = RestoreRig.prepare(cluster, "before")
    clock = FaultClock()
    act_mid_job(cluster, rig.start, rig.in_stretch(where, rng), clock.timed(kill_service(cluster)), still_there=where)
    client = wait_service(cluster)
    final = client.wait(rig.backup["id"], restore_finished, interval=0.2, timeout=120)
    recovered = clock.since()
    restore = latest_restore(final)
    assert restore["status"] == "STATUS_ERROR" and "interrupted" in restore["reason"], restore
    assert reason in restore["reason"], restore
    assert tree_now(cluster) == rig.damaged, "the tree is not what it was before the interrupted restore"
    assert latest_restore(restore_again(cluster, client, rig.backup["id"]))["status"] == "STATUS_READY"
    assert tree_now(cluster) == rig.wanted, "a re-run restore did not bring the backup back"
    return Outcome(outcome, recovered)


def leader_killed_mid_job(
    cluster: ClusterSpec, rng: random.Random, kind: str, branch: str = "while applying"
) -> Outcome:
    """SIGKILL the ZooKeeper leader mid-job: see :func:`zookeeper_fault_mid_job`."""
    return zookeeper_fault_mid_job(cluster, rng, kind, "leader killed", branch)


def zookeeper_fault_mid_job(
    cluster: ClusterSpec, rng: random.Random, kind: str, fault: str, branch: str = "while applying"
) -> Outcome:
    """Deal a ZooKeeper ``fault`` (a key of ZOOKEEPER_FAULTS) while a backup streams its archive, or while a
    restore is in ``branch`` (see RESTORE_BRANCHES): the job completes correctly or ends STATUS_ERROR with a
    reason, and a restore that failed leaves the tree exactly as it was before it (rolled back, if it had
    changed anything). Recovered: the job has finished and the ensemble serves on every member."""
    client = wait_service(cluster)
    backup = ready_backup(cluster, client, "base")
    wanted = tree_now(cluster)
    size = rng.randint(1, 256 * 1024)
    where = RESTORE_BRANCHES[branch][0]

    def start() -> str:
        if kind == "backup":
            return client.create("during-fault")["id"]
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
    with ZOOKEEPER_FAULTS[fault](cluster, rng) as action:
        job_id = act_mid_job(cluster, start, ready, clock.timed(action), still_there)
        final = client.wait(job_id, lambda d: backup_finished(d) and restore_finished(d), interval=0.2, timeout=180)
    outcome = latest_restore(final) if kind == "restore" else final  # both have status and reason
    status, reason = outcome["status"], outcome["reason"]
    local_cluster.wait_serving(cluster, 90)
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
        restore_again(cluster, client, job_id)  # leave the cluster as the next trial expects it, whatever happened
        assert tree_now(cluster) == wanted
        assert as_before, f"a failed restore left the tree neither as before nor as the backup ({reason})"
        assert branch != "while applying" or "rolled back to the safety backup" in reason, reason
        return Outcome("rolled back", recovered)
    ready_backup(cluster, client, "after-fault")
    return Outcome("error with reason", recovered)


# ------------------------------------------------------------------------------------------- fencing
# The fencing faults: each a context manager (like ZOOKEEPER_FAULTS) yielding an action for act_mid_job that
# takes the leadership from the (frozen) leading service mid-apply; leaving it undoes what the fault left
# behind (a frozen member thawed). One driver, leadership_lost_mid_restore, runs them all under one checker.
SESSION_TIMEOUT = 15.0  # the service's ZooKeeper session timeout (ZkEngine's default, api/run.py)
FINAL_STATUSES = ("STATUS_READY", "STATUS_ERROR")


def leader_instance(cluster: ClusterSpec) -> str | None:
    """The instance named in the leadership znode now (None: nobody leads)."""
    zk = connect(cluster.zk_hosts)
    try:
        return str(json.loads(zk.get(LEADER_PATH)[0])["instance"])
    except Exception:
        return None
    finally:
        zk.stop()
        zk.close()


def leader_session(cluster: ClusterSpec) -> int:
    """The ZooKeeper session that owns the leadership znode (the leading service's own session)."""
    zk = connect(cluster.zk_hosts)
    try:
        stat = zk.exists(LEADER_PATH)
    finally:
        zk.stop()
        zk.close()
    assert stat is not None and stat.ephemeralOwner, "nobody leads"
    return int(stat.ephemeralOwner)


def session_member(cluster: ClusterSpec, session: int) -> Master:
    """The member ``session`` is connected to, as the members say themselves (``cons`` lists each
    connection's session id)."""
    for master in cluster.masters:
        with contextlib.suppress(OSError):
            reply = four_letter_word(master.member.host, master.member.client_port, "cons", timeout=5)
            if any(int(sid, 16) == session for sid in re.findall(r"sid=0x([0-9a-fA-F]+)", reply)):
                return master
    raise AssertionError(f"no member has the session 0x{session:x}")


@contextlib.contextmanager
def leadership_deleted(cluster: ClusterSpec, rng: random.Random) -> Iterator[Callable[[int], None]]:
    """Delete the (frozen) leader's leadership znode, as an operator or a session expiry would; the service
    thaws right after and finds out on its own. Only the service's identity may delete it
    (docs/reliability.md, "Control-plane trust"): the operator presents its credentials."""

    def delete(_: int) -> None:
        zk = connect(cluster.zk_hosts, auth_data=Credentials.read(cluster.files.zk_credentials).auth_data)
        try:
            zk.delete(LEADER_PATH)
        finally:
            zk.stop()
            zk.close()

    yield delete


@contextlib.contextmanager
def service_frozen_past_session(cluster: ClusterSpec, rng: random.Random) -> Iterator[Callable[[int], None]]:
    """Keep the (frozen) leading service frozen until its session has expired (the leadership znode is gone
    or another instance's), then let it thaw: a zombie that resumes mid-apply without knowing it no longer
    leads."""

    def keep_frozen(_: int) -> None:
        frozen = leader_instance(cluster)
        wait_for(lambda: leader_instance(cluster) != frozen, timeout=120, what="the frozen leader's session to expire")

    yield keep_frozen


@contextlib.contextmanager
def leaders_member_frozen(cluster: ClusterSpec, rng: random.Random) -> Iterator[Callable[[int], None]]:
    """SIGSTOP the ZooKeeper member the leading service's session (the one owning the leadership znode) is
    on, and SIGCONT it past the session timeout (the service goes on meanwhile, on another member if its
    client gets there in time)."""
    with frozen_for_a_while(
        lambda: read_pid(session_member(cluster, leader_session(cluster)).layout.zookeeper_pid_file),
        lambda: SESSION_TIMEOUT + rng.uniform(1.0, 5.0),
    ) as freeze:
        yield freeze


@contextlib.contextmanager
def leading_service_killed(cluster: ClusterSpec, rng: random.Random) -> Iterator[Callable[[int], None]]:
    """SIGKILL the (frozen) leading service; its supervisor starts it again."""
    yield kill_service(cluster)


FENCING_FAULTS: dict[str, Callable[[ClusterSpec, random.Random], contextlib.AbstractContextManager]] = {
    "leadership znode deleted": leadership_deleted,
    "leading service frozen": service_frozen_past_session,
    "leader's ZooKeeper member frozen": leaders_member_frozen,
    "leading service SIGKILLed": leading_service_killed,
}


def final_status_flips(history: Sequence[tuple[str, str]]) -> list[str]:
    """The flips in ``history`` (what an observer saw, in order: (job, status) pairs, a job being a backup
    or one restore of it): every status reported for a job after a final one (READY, ERROR) that differs
    from it. Empty: no final status, once reported, ever changed."""
    final: dict[str, str] = {}
    flips = []
    for job, status in history:
        if job in final and status != final[job]:
            flips.append(f"{job}: {final[job]} -> {status}")
        elif job not in final and status in FINAL_STATUSES:
            final[job] = status
    return flips


class StatusPoller:
    """The independent observer: asks the API (``fetch()``: one backup's document) every ``interval`` from
    the start, in its own thread, and records each job's status (the backup's, each restore's) as
    reported; a request that fails (the service restarting) records nothing."""

    def __init__(self, fetch: Callable[[], dict], interval: float = 0.1) -> None:
        self.fetch = fetch
        self.interval = interval
        self.history: list[tuple[str, str]] = []
        self.answers = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="status-poller", daemon=True)

    def __enter__(self) -> StatusPoller:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                doc = self.fetch()
            except Exception:
                doc = None
            if doc is not None:
                self.answers += 1
                self.history.append((f"backup {doc['id']}", doc["status"]))
                self.history.extend((f"restore {r['id']}", r["status"]) for r in doc.get("restores") or [])
            self._stop.wait(self.interval)

    def final(self, job: str) -> str | None:
        """The first final status reported for ``job``."""
        return next((s for j, s in self.history if j == job and s in FINAL_STATUSES), None)


def leadership_lost_mid_restore(cluster: ClusterSpec, rng: random.Random, fault: str) -> Outcome:
    """The leading service loses its leadership mid-apply (``fault``: a key of FENCING_FAULTS). The
    independent check: a :class:`StatusPoller` records every status the API reports from the restore's
    start until the dust settles (no job holds the lock); no final status, once reported, changes; and the
    final outcome matches the tree read from ZooKeeper (READY: the backup's tree; ERROR: the tree before
    the restore, rolled back). Recovered: the final status is reported."""
    rig = RestoreRig.prepare(cluster, "fenced")
    client, backup_id = rig.client, rig.backup["id"]
    ready = rig.in_stretch(safety_recorded, rng)  # somewhere in the apply
    clock = FaultClock()
    observer = service_client(cluster)  # its own client: the poller's thread asks on its own
    with StatusPoller(lambda: observer.show(backup_id)) as poller:
        with FENCING_FAULTS[fault](cluster, rng) as action:
            act_mid_job(cluster, rig.start, ready, clock.timed(action), still_there=safety_recorded)
            hit = latest_restore(catalog(cluster, backup_id))["id"]
            job = f"restore {hit}"
            wait_for(lambda: poller.final(job) is not None, timeout=240, interval=0.1, what="a final status")
            recovered = clock.since()
        wait_for(lambda: job_lock_free(cluster), timeout=LOCK_TIMEOUT, what="every job to end")
        settled = restore_of(client.show(backup_id), hit)
    flips = final_status_flips(poller.history)
    assert not flips, f"a final status changed after it was reported: {flips}"
    reported = poller.final(job)
    assert settled["status"] == reported, f"the final status changed: {reported} -> {settled['status']}"
    tree = tree_now(cluster)
    if reported == "STATUS_READY":
        assert tree == rig.wanted, "READY, but the tree is not the backup's"
        return Outcome("completed", recovered)
    assert reported == "STATUS_ERROR", reported
    reason = settled.get("reason") or ""
    assert "rolled back" in reason and "service stopped" not in reason, settled
    as_before = tree == rig.damaged
    restore_again(cluster, client, backup_id)  # the next trial starts from the backup's tree
    assert as_before, f"ERROR, but the tree is not the one before the restore ({reason})"
    return Outcome("rolled back", recovered)


# ---------------------------------------------------------------------------------- ZooKeeper faults
# Each a context manager yielding an action for act_mid_job; leaving it undoes what the fault left behind
# (a frozen member thawed), whatever happened meanwhile.
FROZEN_FOR = 10.0  # seconds a SIGSTOPped member stays frozen


def zookeeper_leader(cluster: ClusterSpec) -> Master:
    return next(m for m, s in zip(cluster.masters, local_cluster.status(cluster), strict=True) if s.isLeader)


@contextlib.contextmanager
def leader_killed(cluster: ClusterSpec, rng: random.Random) -> Iterator[Callable[[int], None]]:
    yield kill_leader(cluster)


@contextlib.contextmanager
def leader_frozen(cluster: ClusterSpec, rng: random.Random) -> Iterator[Callable[[int], None]]:
    """SIGSTOP the leader, SIGCONT it FROZEN_FOR seconds later (the job goes on meanwhile)."""
    with frozen_for_a_while(
        lambda: read_pid(zookeeper_leader(cluster).layout.zookeeper_pid_file), lambda: FROZEN_FOR
    ) as freeze:
        yield freeze


@contextlib.contextmanager
def frozen_for_a_while(pick: Callable[[], int], seconds: Callable[[], float]) -> Iterator[Callable[[int], None]]:
    """A fault that SIGSTOPs the process ``pick()`` names and SIGCONTs it ``seconds()`` later, on a timer so
    that the job under test goes on meanwhile; the block never ends with a process still frozen."""
    thaws: list[threading.Timer] = []

    def freeze(_: int) -> None:
        pid = pick()
        os.kill(pid, signal.SIGSTOP)
        thaw = threading.Timer(seconds(), lambda: os.kill(pid, signal.SIGCONT))
        thaw.start()
        thaws.append(thaw)

    try:
        yield freeze
    finally:
        for thaw in thaws:
            thaw.join()  # never leave a process frozen for the next trial


@contextlib.contextmanager
def service_member_killed(cluster: ClusterSpec, rng: random.Random) -> Iterator[Callable[[int], None]]:
    """SIGKILL the member the (frozen) backup service has the most sessions on, seen from the operating
    system: the service's TCP connections to the members' client ports."""

    def kill(pid: int) -> None:
        by_address = {(m.member.host, m.member.client_port): m for m in cluster.masters}
        peers = Counter(
            by_address[(c.raddr.ip, c.raddr.port)]
            for c in psutil.Process(pid).net_connections(kind="tcp")
            if c.raddr and (c.raddr.ip, c.raddr.port) in by_address
        )
        assert peers, "the backup service has no connection to any ZooKeeper member"
        most = max(peers.values())
        member = rng.choice([m for m, n in peers.items() if n == most])
        os.kill(read_pid(member.layout.zookeeper_pid_file), signal.SIGKILL)

    yield kill


ZOOKEEPER_FAULTS = {
    "leader killed": leader_killed,
    "leader frozen": leader_frozen,
    "service's member killed": service_member_killed,
}


# ------------------------------------------------------------------------------- object storage failing
@dataclass
class S3Rig:
    """A backup service (in-process API, its own engine) on a chroot of the cluster holding ``size`` bytes of
    random data, keeping its catalog in a moto S3 bucket reached through a fault-injecting proxy."""

    api: InProcessApi
    proxy: FaultyS3
    bucket: str
    parts: int  # the multipart parts an archive of the chroot takes


@contextlib.contextmanager
def faulty_s3_rig(cluster: ClusterSpec, endpoint: str, size: int = 5 * S3_PART // 2) -> Iterator[S3Rig]:
    """An :class:`S3Rig` over the moto server at ``endpoint`` (a fresh bucket), with nodes of random bytes
    (incompressible: the archive is as big as they are) under the chroot's /marathon."""
    bucket = f"faults-{uuid.uuid4().hex[:12]}"
    assert create_bucket(endpoint, bucket)
    proxy = FaultyS3(endpoint)
    try:
        with marathon_chroot(cluster, apps=20, seed=4) as (hosts, zk):
            zk.ensure_path("/marathon/big")
            for i in range(size // 1_000_000):
                zk.create(f"/marathon/big/n{i}", os.urandom(1_000_000))
            with service_api(open_storage(f"s3://{bucket}/b", proxy.url), hosts) as api:
                yield S3Rig(api, proxy, bucket, -(-size // S3_PART))
    finally:
        proxy.close()


def s3_failing_mid_upload(rig: S3Rig, rng: random.Random) -> Outcome:
    """S3 fails every request of a backup's archive upload from a random one on (the start of the multipart
    upload, one of its parts, or its completion) while its catalog writes go through: the backup must end
    STATUS_ERROR naming S3, with nothing of its archive in the bucket (no object, no unfinished upload), and
    the next backup must work once S3 does. Recovered: the backup has ended (the first failure -> ERROR)."""
    http = rig.api.http
    earlier = create_ready(http, "before-s3-fault")
    assert earlier["status"] == "STATUS_READY", earlier
    cut = rng.randint(0, rig.parts + 1)  # 0: starting the upload; 1..parts: that part; parts + 1: completing
    failed_at: list[float] = []

    def fails(method: str, path: str) -> bool:
        query = urlsplit(path).query
        if urlsplit(path).path.endswith(".json") or method not in ("PUT", "POST"):  # a record
            return False
        number = int(m.group(1)) if (m := re.search(r"partNumber=(\d+)", query)) else None
        hit = (
            (query == "uploads" and cut == 0)
            or (number is not None and number >= cut)
            or ("uploadId=" in query and number is None)  # the completion (parts before it may have failed)
        )
        if hit and not failed_at:
            failed_at.append(time.monotonic())
        return hit

    rig.proxy.fails = fails
    try:
        doc = create_ready(http, "s3-fault")
    finally:
        rig.proxy.fails = None
    recovered = time.monotonic() - failed_at[0] if failed_at else None
    assert failed_at, "S3 never failed a request of the upload"
    assert doc["status"] == "STATUS_ERROR", doc
    assert "S3 storage" in doc["reason"] and "injected" in doc["reason"], doc["reason"]
    s3 = boto3.client("s3", endpoint_url=rig.proxy.url)
    objects = [o["Key"] for o in s3.list_objects_v2(Bucket=rig.bucket, Prefix=f"b/{doc['id']}").get("Contents", [])]
    uploads = [u["Key"] for u in s3.list_multipart_uploads(Bucket=rig.bucket).get("Uploads", [])]
    assert objects == [f"b/{doc['id']}.json"] and uploads == [], (objects, uploads)
    assert create_ready(http, "after-s3-fault")["status"] == "STATUS_READY"
    return Outcome("error, nothing left in the bucket", recovered)


# ---------------------------------------------------------------------------------- continuous archiving
def archiver_killed_mid_copy(cluster: ClusterSpec, rng: random.Random) -> Outcome:
    """Under a steady write load on a cluster with ``--zk-archive``, SIGKILL one master's archiver (``dcos-zk
    archive``, supervised by dcos-exhibitor) while it copies an object into the repository (frozen while a
    partial exists, at a random moment of the copy, after a random number of writes): nothing archived
    before is lost, the partial was never visible and is gone, the restarted archiver resumes the same
    generation (no new base), the stream verifies, and a point-in-time export at the newest acknowledged
    write rebuilds exactly the acknowledged tree. Recovered: the restarted archiver has archived every write
    acknowledged before the kill."""
    repo = Path(cluster.zk_archive or "")
    os.environ.setdefault(KEY_ENV, str(cluster.files.repo_key))  # dcos-zk's, as dcos-local env exports it
    number = rng.randint(1, len(cluster.masters))
    master, stream = cluster.master(number), f"master-{number}"
    stream_dir = repo / "streams" / stream
    writes, delay = rng.randint(1, 800), rng.uniform(0.0, 0.05)
    generations = len(RepoIndex(cluster_repository(repo), stream).generations)
    load = LoadGenerator(cluster.zk_hosts, root="/load", rate=150, seed=rng.randrange(1 << 30))
    load.start()
    try:
        wait_for(lambda: len(load.acknowledged()) >= writes, timeout=120, what=f"{writes} writes")
        pid = archiver_pid(master)

        def caught() -> Path | None:
            if not any(stream_dir.rglob(f"{PARTIAL}*")):
                return None
            time.sleep(delay)  # somewhere in the copy, not always at its start
            return frozen_mid_copy(pid, stream_dir)

        partial = wait_for(caught, timeout=120, interval=0.01, what=f"the archiver of {stream} mid-copy")
        before = keys(repo, stream)
        acknowledged = load.acknowledged()[-1].zxid
        faulted = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: read_pid(master.layout.archiver_pid_file) not in (pid, None), what="a new archiver")
        wait_for(lambda: archived_to(repo, stream, acknowledged), timeout=120, what="the archiver to catch up")
        recovered = time.monotonic() - faulted
    finally:
        report, last = settle(load, repo, stream)
    assert before <= keys(repo, stream), "objects archived before the kill are gone"
    assert not partial.exists(), "the torn object is still there"
    assert len(RepoIndex(cluster_repository(repo), stream).generations) == generations, "a new base after a kill"
    ok(run_tool("dcos-zk", "archive", "verify", "--repo", str(repo), "--stream", stream))
    with tempfile.TemporaryDirectory(prefix="archiver-killed-") as work:
        rebuilt = exported_load(repo, stream, last, Path(work))
    assert rebuilt == load.expected_children(last, report.ops), "the archive does not rebuild the acknowledged tree"
    return Outcome("resumed in the same generation, caught up", recovered)
