"""Online point-in-time restore of a subtree (issue 26 item 3): ``dcos backup restore --to-time T --path P``.

"I deleted an app a minute ago": the app comes back byte for byte (data and ACL) from the cluster's
continuous archive, rebuilt at a point before the deletion, while every write made elsewhere after it
stays and no ZooKeeper member is restarted. One archiving cluster (``dcos-local up --zk-archive``) for
the module.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kazoo.security import ACL, Id
from tests.helpers import ok, run_tool, seeded_cluster, wait_for

from dcos_backup.api.paths import RESTORE
from dcos_backup.local.spec import ClusterSpec
from dcos_backup.logical import connect
from dcos_backup.master.processes import read_pid
from dcos_backup.physical.continuous.index import RepoIndex
from dcos_backup.testing.archiving import cluster_repository
from dcos_backup.testing.trees import snapshot

pytestmark = pytest.mark.e2e
SNAP_COUNT = 400
SOME_ID = "abc-2b0f4c3e-8d5a-4f7e-9c1b-0a2d3e4f5a6b"


def dcos(cluster: ClusterSpec, *args: str):
    return run_tool("dcos", "backup", *args, cluster_dir=cluster.dir, timeout=120)


def archived_up_to(repo: Path, zxid: int) -> bool:
    """Every master's stream holds every transaction up to ``zxid``."""
    index = RepoIndex(cluster_repository(repo))
    return len({r.stream for r in index.ranges() if r.last >= zxid}) >= 3


@pytest.fixture(scope="module")
def archived(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ClusterSpec, Path]]:
    directory = tmp_path_factory.mktemp("point-restore")
    repo = directory / "repo"
    with (
        seeded_cluster(
            directory / "cluster", apps=30, seed=9, zk_config=[("snapCount", str(SNAP_COUNT))], zk_archive=str(repo)
        ) as c,
        pytest.MonkeyPatch.context() as env,
    ):
        env.setenv("DCOS_ZK_REPO_KEY_FILE", str(c.files.repo_key))  # as dcos-local env exports it
        yield c, repo


def visible(zk) -> list[tuple]:
    """The tree an operator's client sees (the service's own znodes are not readable to it)."""
    return snapshot(zk, "/marathon") + (snapshot(zk, "/elsewhere") if zk.exists("/elsewhere") else [])


def zookeeper_pids(cluster: ClusterSpec) -> list[int | None]:
    return [read_pid(m.layout.zookeeper_pid_file) for m in cluster.masters]


def test_a_deleted_app_comes_back_online_and_later_writes_elsewhere_stay(archived):
    cluster, repo = archived
    zk = connect(cluster.zk_hosts)
    try:
        apps = sorted(zk.get_children("/marathon/state/app"))
        app, other = f"/marathon/state/app/{apps[0]}", f"/marathon/state/app/{apps[1]}"
        # An ACL of its own on a node of the app: the restore must bring it back as it was.
        zk.set_acls(app, [ACL(31, Id("world", "anyone")), ACL(1, Id("ip", "127.0.0.1"))])
        app_before = snapshot(zk, app)
        assert len(app_before) > 1
        pids = zookeeper_pids(cluster)
        assert None not in pids

        moment = datetime.now(UTC)  # the point: strictly before the deletion (ms clock of the leader)
        wait_for(lambda: (datetime.now(UTC) - moment).total_seconds() > 0.01, what="a later millisecond")
        zk.delete(app, recursive=True)
        deleted_at = zk.exists("/marathon/state/app").pzxid
        # Later writes elsewhere: another app changed, a new node beside Marathon.
        zk.set(other, b'{"id": "changed after the deletion"}')
        zk.create("/elsewhere/later", b"written after", makepath=True)
        other_after = snapshot(zk, other)
        last = zk.exists("/elsewhere/later").czxid
        wait_for(lambda: archived_up_to(repo, last), timeout=60, what="every stream to have the later writes")
        tree_before_restore = visible(zk)

        # The dry run: the app's nodes to create, nothing else; nothing changes.
        dry = dcos(cluster, "restore", "--to-time", moment.isoformat(), "--path", app, "--dry-run", "--json")
        diff = json.loads(ok(dry).stdout)
        assert (diff["created"], diff["updated"], diff["deleted"]) == (len(app_before), 0, 0), diff
        assert diff["backup_id"] is None and int(diff["point"]["zxid"], 16) < deleted_at
        assert [c["path"] for c in diff["changes"]] == [n[0] for n in app_before]
        assert visible(zk) == tree_before_restore
        human = ok(dcos(cluster, "restore", "--to-time", moment.isoformat(), "--path", app, "--dry-run")).stdout
        assert human.startswith("from the continuous archive at zxid ")

        # The restore: one command, online.
        done = dcos(cluster, "restore", "--to-time", moment.isoformat(), "--path", app, "--wait", "--json")
        ended = json.loads(ok(done).stdout)
        assert ended["status"] == "STATUS_READY", ended
        assert ended["point"]["requested"] == f"time {moment.isoformat()}"
        assert int(ended["point"]["zxid"], 16) < deleted_at and ended["point"]["digests_checked"] > 0
        assert ended["component_status"]["marathon"]["stats"]["created"] == len(app_before)
        assert snapshot(zk, app) == app_before  # byte for byte: data and ACL
        assert snapshot(zk, other) == other_after  # the later writes elsewhere stay
        assert zk.get("/elsewhere/later")[0] == b"written after"
        everything_else = [n for n in visible(zk) if not n[0].startswith(app)]
        assert everything_else == [n for n in tree_before_restore if not n[0].startswith(app)]
        assert zookeeper_pids(cluster) == pids  # no member restarted

        # The point backup is an ordinary catalog backup saying where it came from.
        record = json.loads(ok(dcos(cluster, "show", ended["backup_id"])).stdout)
        assert record["label"].startswith("point-") and record["point"]["zxid"] == ended["point"]["zxid"]
        assert record["restores"][-1]["safety_backup_id"]
    finally:
        zk.stop()
        zk.close()


def test_a_point_outside_the_window_or_a_subtree_absent_then_is_refused(archived):
    cluster, _ = archived
    zk = connect(cluster.zk_hosts)
    try:
        tree = visible(zk)
    finally:
        zk.stop()
        zk.close()
    now = datetime.now(UTC).isoformat()
    for args, code, words in [
        (["--to-time", "2001-01-01T00:00:00Z", "--path", "/marathon"], 2, "is not restorable from"),
        (["--to-zxid", "0x7fff00000001", "--path", "/marathon"], 2, "restorable: "),
        (["--to-time", now], 2, "needs --path"),
        (["--to-time", now, "--to-zxid", "0x5", "--path", "/marathon"], 2, "not both"),
        (["--to-time", "yesterday", "--path", "/marathon"], 2, "not an RFC 3339 time"),
        (["--to-time", now, "--path", "/marathon/never-was"], 1, "did not exist at zxid"),
        (["--to-time", now, "--path", "/chronos"], 2, "not under any component's root"),
    ]:
        result = dcos(cluster, "restore", *args)
        assert result.returncode == code and words in result.stderr, (args, result.stderr)
        assert len(result.stderr.splitlines()) == 1
    zk = connect(cluster.zk_hosts)
    try:
        assert visible(zk) == tree
    finally:
        zk.stop()
        zk.close()


def test_a_service_without_an_archive_says_so(env):
    http, _, zk, _ = env
    app = f"/marathon/state/app/{sorted(zk.get_children('/marathon/state/app'))[0]}"
    answer = http.post(RESTORE, json={"point": {"time": datetime.now(UTC).isoformat()}, "paths": [app]})
    assert answer.status_code == 400, answer.text
    assert "no continuous archive configured" in answer.json()["errors"][0]
    for body, words in [
        ({"point": {"zxid": "0x5"}}, "needs paths"),
        ({"point": {}, "paths": [app]}, "exactly one of a time"),
        (
            {"point": {"zxid": "0x5"}, "id": SOME_ID, "paths": [app]},
            "exactly one of id",
        ),
    ]:
        answer = http.post(RESTORE, json=body)
        assert answer.status_code == 400 and words in answer.text, (body, answer.text)
