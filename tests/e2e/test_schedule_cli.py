"""``dcos backup schedule ...`` against a real 3-master dcos-local cluster, with the real clock: the service run
by dcos-local runs a schedule (every 4 seconds: cron's sixth field is seconds), retention keeps the 2 newest,
``dcos backup list`` shows them, pause and delete work, and every mistake is one line with exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kazoo.exceptions import NoAuthError
from tests.helpers import run_tool, seeded_cluster, wait_for

from dcos_backup.jobs.schedules import SCHEDULES_PATH
from dcos_backup.logical import connect

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def sched_cluster(tmp_path_factory):
    with seeded_cluster(tmp_path_factory.mktemp("schedule-cli"), apps=20, seed=4) as cluster:
        yield cluster


def dcos(cluster, *args: str):
    return run_tool("dcos", "backup", *args, cluster_dir=cluster.dir, timeout=120)


def ok_out(cluster, *args: str) -> str:
    result = dcos(cluster, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def schedules(cluster) -> dict[str, dict]:
    return {s["name"]: s for s in json.loads(ok_out(cluster, "schedule", "list", "--json"))}


def backups(cluster, label: str) -> list[dict]:
    return [b for b in json.loads(ok_out(cluster, "list", label, "--json")) if b.get("schedule") == label]


def assert_only_the_service_changes(cluster, path: str) -> None:
    """A schedule decides what retention deletes: a ZooKeeper client without the service's identity can
    neither read nor change it."""
    zk = connect(cluster.zk_hosts)
    try:
        with pytest.raises(NoAuthError):
            zk.set(path, b'{"name": "tick", "cron": "@yearly", "keep_last": 1}')
        with pytest.raises(NoAuthError):
            zk.get(path)
    finally:
        zk.stop()
        zk.close()


def test_a_real_schedule_runs_prunes_pauses_and_goes(sched_cluster):
    cluster = sched_cluster
    out = ok_out(cluster, "schedule", "create", "tick", "--cron", "* * * * * */4", "--keep-last", "2")
    assert out.startswith("created schedule tick: next run ")
    assert_only_the_service_changes(cluster, f"{SCHEDULES_PATH}/tick")
    seen: set[str] = set()

    def three_runs() -> bool:
        last = schedules(cluster)["tick"].get("last_backup_id")
        if last:
            seen.add(last)
        return len(seen) >= 3

    wait_for(three_runs, timeout=180, interval=0.5, what="3 runs of the schedule")
    assert "paused schedule tick" in ok_out(cluster, "schedule", "pause", "tick")
    table = ok_out(cluster, "schedule", "list").splitlines()
    assert table[0].split() == ["NAME", "CRON", "RETENTION", "STATUS", "NEXT", "RUN", "LAST", "BACKUP"]
    assert table[1].split()[:2] == ["tick", "*"] and "last 2" in table[1] and "paused" in table[1]

    def pruned() -> list[dict] | None:
        docs = backups(cluster, "tick")
        settled = all(d["status"] != "STATUS_BACKING_UP" for d in docs)
        return docs if settled and len([d for d in docs if d["status"] == "STATUS_READY"]) == 2 else None

    kept = wait_for(pruned, timeout=120, interval=0.5, what="retention to leave 2 READY backups")
    assert all(d["id"].startswith("tick-") and d["label"] == "tick" for d in kept)
    assert schedules(cluster)["tick"]["last_backup_id"] in {d["id"] for d in kept}  # the newest is never pruned
    listing = ok_out(cluster, "list", "tick")  # shown by dcos backup list as any other backup
    assert all(d["id"] in listing for d in kept)
    log = Path(cluster.service["log_file"]).read_text()
    assert "retention of schedule tick: deleted" in log and "beyond --keep-last 2" in log

    assert "deleted schedule tick" in ok_out(cluster, "schedule", "delete", "tick")
    assert schedules(cluster) == {}
    assert {d["id"] for d in backups(cluster, "tick")} >= {d["id"] for d in kept}  # its backups stay


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("create", "bad", "--cron", "61 * * * *"), "invalid cron expression '61 * * * *'"),
        (("create", "bad", "--cron", "@daily", "--keep-within", "7 days"), "invalid --keep-within"),
        (("create", "x", "--cron", "@daily"), "invalid schedule name"),
        (("create", "bad", "--cron", "@daily", "--keep-last", "0"), "--keep-last"),
        (("pause", "nosuch"), "no schedule named 'nosuch'"),
        (("delete", "nosuch"), "no schedule named 'nosuch'"),
    ],
)
def test_schedule_mistakes_are_one_line(sched_cluster, args, message):
    result = dcos(sched_cluster, "schedule", *args)
    assert result.returncode in (1, 2) and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and message in result.stderr, result.stderr
    if "nosuch" not in args:
        assert result.returncode == 2
