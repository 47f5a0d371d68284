"""A backup service on every master (issue 13, item 5), on a real 3-master dcos-local cluster: one leads
(runs jobs and schedules), the others forward job requests to it and answer reads; the leader's master
losing its service hands jobs and schedules to another master, and the job it ran ends interrupted."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from datetime import datetime
from pathlib import Path

import pytest
from tests.helpers import front_door, seeded_cluster, wait_for

from dcos_backup.cli.client import backup_finished
from dcos_backup.errors import Conflict
from dcos_backup.master.processes import read_pid
from dcos_backup.testing import fault_scenarios

pytestmark = pytest.mark.e2e

TAKEOVER = 30.0  # seconds: the bound for another master to take over (ZooKeeper session: 15 s)


@pytest.fixture(scope="module")
def ha_cluster(tmp_path_factory):
    # ~16,000 znodes: a backup streams its archive long enough to be caught at it
    with seeded_cluster(tmp_path_factory.mktemp("ha"), apps=3000, seed=13) as cluster:
        yield cluster


def leader(cluster) -> str:
    return fault_scenarios.leading_service(cluster)["instance"]


def test_every_master_serves_and_forwards_job_requests_to_the_leader(ha_cluster):
    cluster = ha_cluster
    assert [s["instance"] for s in cluster.services] == ["master-1", "master-2", "master-3"]
    assert len({s["socket"] for s in cluster.services}) == 3
    assert leader(cluster) == "master-1"
    for n in (2, 3):
        client = front_door(cluster, master=n)
        done = client.wait(client.create(f"via-master-{n}")["id"], backup_finished, interval=0.2, timeout=120)
        assert done["status"] == "STATUS_READY", done
        assert client.schedules() == []  # a read, answered by master n's own service
    log = Path(cluster.services[0]["log_file"]).read_text()
    assert "backup via-master-2-" in log and "backup via-master-3-" in log  # run by the leader
    # A schedule made through master 3 is everybody's.
    front_door(cluster, master=3).create_schedule("from-three", "@yearly")
    assert [s["name"] for s in front_door(cluster, master=2).schedules()] == ["from-three"]
    front_door(cluster, master=2).schedule_action("from-three", "delete")


def test_leader_lost_schedules_and_jobs_go_on_on_another_master(ha_cluster):
    cluster = ha_cluster
    client = front_door(cluster, master=2)
    client.create_schedule("tick", "* * * * * */3", keep_last=2)
    wait_for(lambda: _runs(client, "tick"), timeout=120, what="a first run of the schedule")

    def start_manual() -> str:
        def accepted():
            with contextlib.suppress(Conflict):  # a scheduled run may be under way: it ends soon
                return client.create("doomed")["id"]
            return None

        return wait_for(accepted, timeout=120, interval=0.2, what="a manual backup to start")

    killed_at = []

    def kill_master_1_service(pid: int) -> None:  # its supervisor first: it must not come back
        os.kill(read_pid(Path(cluster.services[0]["pid_file"])), signal.SIGKILL)
        os.kill(pid, signal.SIGKILL)
        killed_at.append(time.monotonic())

    doomed = fault_scenarios.act_mid_job(
        cluster, start_manual, lambda job: fault_scenarios.archive_growing(cluster, job, 1), kill_master_1_service
    )
    new_leader = wait_for(
        lambda: (name := leader(cluster)) != "master-1" and name, timeout=TAKEOVER, what="a new leader"
    )
    took = time.monotonic() - killed_at[0]
    assert new_leader in ("master-2", "master-3")
    interrupted = client.wait(doomed, backup_finished, interval=0.2, timeout=120)
    assert interrupted["status"] == "STATUS_ERROR" and "interrupted" in interrupted["reason"], interrupted
    # The schedule goes on under the new leader, with its retention.
    new_log = Path(cluster.services[int(new_leader[-1]) - 1]["log_file"])
    wait_for(lambda: "schedule tick: " in new_log.read_text(), timeout=120, what="a run by the new leader")
    before = _runs(client, "tick")[-1]["id"]
    wait_for(lambda: _runs(client, "tick")[-1]["id"] != before, timeout=120, what="another run")

    def settled():
        runs = _runs(client, "tick")
        return not any(r["status"] == "STATUS_BACKING_UP" for r in runs) and len(runs) == 2 and runs

    wait_for(settled, timeout=120, interval=0.5, what="retention by the new leader")
    client.schedule_action("tick", "delete")
    assert took <= TAKEOVER


def _runs(client, name: str) -> list[dict]:
    """The schedule's READY or running backups, oldest first."""
    docs = [d for d in client.list(name) if d.get("schedule") == name and d["status"] != "STATUS_ERROR"]
    return sorted(docs, key=lambda d: datetime.fromisoformat(d["timestamp"]))
