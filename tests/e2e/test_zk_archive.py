"""Continuous archiving and point-in-time restore on a real 3-master cluster (issue 18).

``dcos-local up --zk-archive REPO``: every master's supervisor runs ``dcos-zk archive`` beside its
ZooKeeper. A load records each acknowledged write's zxid, so every restore is checked against exactly
the tree the cluster had at that point.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from tests.helpers import ok, run_tool, seeded_cluster, wait_for

from dcos_backup.local import cluster as local_cluster
from dcos_backup.local.spec import ClusterSpec
from dcos_backup.logical import connect
from dcos_backup.physical.continuous.index import RepoIndex
from dcos_backup.testing.archiving import cluster_repository
from dcos_backup.testing.load import LoadGenerator
from dcos_backup.testing.trees import snapshot

pytestmark = pytest.mark.e2e
SNAP_COUNT = 400
dcos_zk = functools.partial(run_tool, "dcos-zk")


def archived_up_to(repo: Path, zxid: int, streams: int = 3) -> bool:
    """Whether ``streams`` streams of the repository hold every transaction up to ``zxid``."""
    index = RepoIndex(cluster_repository(repo))
    reached = [s for s in index.streams() if any(r.last >= zxid for r in index.ranges() if r.stream == s)]
    return len(reached) >= streams


def load_children(cluster: ClusterSpec, root: str = "/load") -> dict[str, bytes]:
    client = connect(cluster.zk_hosts)
    try:
        return {f"{root}/{name}": client.get(f"{root}/{name}")[0] for name in client.get_children(root)}
    finally:
        client.stop()
        client.close()


def marathon(cluster: ClusterSpec) -> list[tuple]:
    client = connect(cluster.zk_hosts)
    try:
        return snapshot(client) if client.exists("/marathon") else []
    finally:
        client.stop()
        client.close()


def restore_all(cluster: ClusterSpec, repo: Path, *point: str) -> list[str]:
    """The seed's procedure with a point of the repository: stop every master, restore each, start them."""
    for m in cluster.masters:
        local_cluster.stop_master(cluster, m.id)
    out = [
        ok(dcos_zk("restore", "--repo", str(repo), *point, "--exhibitor-dir", str(m.layout.exhibitor_dir))).stdout
        for m in cluster.masters
    ]
    for m in cluster.masters:
        local_cluster.start_master(cluster, m.id)
    local_cluster.wait_serving(cluster, 120)
    return out


@pytest.fixture(scope="module")
def archived(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ClusterSpec, Path]]:
    directory = tmp_path_factory.mktemp("archive-cluster")
    repo = directory / "repo"
    with (
        seeded_cluster(
            directory / "cluster",
            apps=30,
            seed=5,
            zk_config=[("snapCount", str(SNAP_COUNT))],
            zk_archive=str(repo),
            with_service=False,
        ) as c,
        pytest.MonkeyPatch.context() as env,
    ):
        env.setenv("DCOS_ZK_REPO_KEY_FILE", str(c.files.repo_key))  # as dcos-local env exports it
        yield c, repo


def test_point_in_time_restore_after_rm_r_marathon(archived: tuple[ClusterSpec, Path]):
    cluster, repo = archived
    marathon_before = marathon(cluster)
    assert marathon_before

    with LoadGenerator(cluster.zk_hosts, root="/load", rate=150, seed=7) as load:
        # Several snapshots and log roll-overs: ZooKeeper snapshots every ~snapCount writes.
        wait_for(lambda: len(load.acknowledged()) >= 3 * SNAP_COUNT, timeout=180, what="writes for 3 snapshots")
    report = load.stop()
    assert report.failures == [], report.failures
    middle = report.ops[len(report.ops) // 2].zxid
    last_write = report.ops[-1].zxid

    # The accident, strictly after a moment we note (the transaction's time is the leader's clock, ms).
    before_accident = datetime.now(UTC)
    wait_for(lambda: (datetime.now(UTC) - before_accident).total_seconds() > 0.01, what="a later millisecond")
    client = connect(cluster.zk_hosts)
    client.delete("/marathon", recursive=True)
    client.stop()
    client.close()
    assert marathon(cluster) == []

    # dcos-zk log shows the deletes (once every master's archiver has them: within seconds).
    def deletes() -> list[dict]:
        lines = ok(dcos_zk("log", "--repo", str(repo), "--json", "--path-prefix", "/marathon")).stdout.splitlines()
        return [doc for doc in map(json.loads, lines) if doc["type"] == "delete"]

    found = wait_for(lambda: [d for d in deletes() if d["path"] == "/marathon"], timeout=30, what="the deletes")
    assert len({d["path"] for d in deletes()}) == len(marathon_before)  # every node, once
    assert all(d["zxid"] > last_write for d in found)
    assert set(found[0]) >= {"zxid", "time", "type", "path", "session"}
    wait_for(lambda: archived_up_to(repo, found[0]["zxid"]), timeout=30, what="every stream to have the accident")
    text = ok(dcos_zk("log", "--repo", str(repo), "--since", before_accident.isoformat())).stdout
    assert " delete " in text and "/marathon" in text
    assert all(line.endswith("]") and "[master-" in line for line in text.splitlines())  # each line's history
    limited = ok(dcos_zk("log", "--repo", str(repo), "--until", before_accident.isoformat(), "--limit", "5")).stdout
    assert len(limited.splitlines()) == 5 and " delete " not in limited

    # Every master back to a write in the middle of the load: exactly the writes up to it.
    restore_all(cluster, repo, "--to-zxid", hex(middle))
    assert load_children(cluster) == load.expected_children(middle, report.ops)
    assert marathon(cluster) == marathon_before

    # Then to just before the accident (a point of the first history, after the second one began):
    # everything back, nothing written after it.
    out = restore_all(cluster, repo, "--to-time", before_accident.isoformat())
    restored_to = {int(line.split("zxid ")[1].split()[0], 16) for line in out}
    assert len(restored_to) == 1 and last_write <= restored_to.pop() < found[0]["zxid"]
    assert load_children(cluster) == load.expected_children(last_write, report.ops)
    assert marathon(cluster) == marathon_before

    # Each restore began a new history in every stream, and the old ones stay restorable. A master's archiver
    # begins its new history once its restarted ZooKeeper has sealed a snapshot: wait for that state.
    def histories() -> dict[str, list]:
        index = RepoIndex(cluster_repository(repo))
        return {stream: index.of_stream(stream) for stream in index.streams()}

    def every_stream_began_anew() -> bool:
        return all(
            len(gens) >= 3 and any("replaced" in str((g.info or {}).get("reason")) for g in gens)
            for gens in histories().values()
        )

    wait_for(
        every_stream_began_anew, timeout=120, interval=0.5, what="a new history in every stream after the restores"
    )
    assert len(histories()) == len(cluster.masters), list(histories())
    status = httpx.get(f"{cluster.master(1).member.exhibitor_url}/exhibitor/v1/archive/status", timeout=10).json()
    assert status["enabled"] and status["stream"] == "master-1"
    assert any("new base" in line for line in status["events"])


def test_refusals_name_what_is_restorable(archived: tuple[ClusterSpec, Path], tmp_path: Path):
    cluster, repo = archived
    ex = str(cluster.master(1).layout.exhibitor_dir)
    beyond = dcos_zk("restore", "--repo", str(repo), "--to-zxid", hex(1 << 60), "--exhibitor-dir", ex)
    assert beyond.returncode == 2 and "is not restorable" in beyond.stderr and "restorable: 0x" in beyond.stderr
    assert len(beyond.stderr.strip().splitlines()) == 1
    early = dcos_zk("export", "--repo", str(repo), "--to-time", "2001-01-01T00:00:00Z", str(tmp_path / "x.tgz"))
    assert early.returncode == 2 and "restorable: " in early.stderr and not (tmp_path / "x.tgz").exists()
    naive = dcos_zk("export", "--repo", str(repo), "--to-time", "2001-01-01T00:00:00", str(tmp_path / "x.tgz"))
    assert naive.returncode == 2 and "time zone" in naive.stderr
    both = dcos_zk("restore", str(tmp_path / "a.tgz"), "--repo", str(repo), "--latest", "--exhibitor-dir", ex)
    assert both.returncode == 2 and len(both.stderr.strip().splitlines()) == 1
    # While the cluster runs, a restore is refused before anything is read: nothing changes.
    running = dcos_zk("restore", "--repo", str(repo), "--latest", "--exhibitor-dir", ex)
    assert running.returncode == 1 and "ZooKeeper of this master is running" in running.stderr
    assert "in use by" not in running.stderr  # the real reason, not the archiver's share of the lock
    waiting = dcos_zk("restore", "--repo", str(repo), "--latest", "--wait-lock", "--exhibitor-dir", ex)
    assert waiting.returncode == 1 and "in use by" not in waiting.stderr  # refused at once, never waits


def test_export_writes_an_ordinary_archive_of_a_point(archived: tuple[ClusterSpec, Path], tmp_path: Path):
    cluster, repo = archived
    client = connect(cluster.zk_hosts)
    client.ensure_path("/export")
    zxid = client.create("/export/n", b"exported", include_data=True)[1].czxid
    client.set("/export/n", b"later")
    client.stop()
    client.close()
    wait_for(lambda: archived_up_to(repo, zxid), timeout=30, what="the write archived")
    archive = tmp_path / "point.tar.gz"
    ok(dcos_zk("export", "--repo", str(repo), "--to-zxid", str(zxid), str(archive)))
    verified = json.loads(ok(dcos_zk("verify", str(archive), "--json")).stdout)
    assert int(verified["last_zxid"], 16) == zxid
    dumped = ok(dcos_zk("dump", str(archive), "--path", "/export/n", "--json")).stdout.splitlines()
    assert json.loads(dumped[0])["data"] == "exported"
    assert (tmp_path / "point.tar.gz.sha256").read_text().split()[0]


def test_a_plain_archive_restore_never_reuses_an_archived_epoch(archived: tuple[ClusterSpec, Path], tmp_path: Path):
    """Issue 26 item 1: the "ZooKeeper lost for good" runbook (a plain archive restored on every master) after
    a later history began: the supervisor raises the epoch before ZooKeeper starts, so the new history's
    zxids are new, and a zxid names one state."""
    cluster, repo = archived
    early = tmp_path / "early.tar.gz"
    ok(dcos_zk("backup", str(early), "--online", "--exhibitor-dir", str(cluster.master(1).layout.exhibitor_dir)))
    # A later history: every master restored to the latest point, then written to.
    restore_all(cluster, repo, "--latest")
    client = connect(cluster.zk_hosts)
    client.create("/epoch-later", b"x")
    later = client.exists("/epoch-later").czxid
    client.stop()
    client.close()
    wait_for(lambda: archived_up_to(repo, later), timeout=60, what="the later history archived")
    seen = RepoIndex(cluster_repository(repo)).max_epoch()
    assert seen == later >> 32
    # The runbook: stop every master, restore the (older) archive on each, start them.
    for m in cluster.masters:
        local_cluster.stop_master(cluster, m.id)
    said = ""
    for m in cluster.masters:
        done = ok(dcos_zk("restore", str(early), "-v", "--exhibitor-dir", str(m.layout.exhibitor_dir)))
        said += done.stdout + done.stderr
    for m in cluster.masters:
        local_cluster.start_master(cluster, m.id)
    local_cluster.wait_serving(cluster, 120)
    client = connect(cluster.zk_hosts)
    client.create("/epoch-new", b"y")
    new = client.exists("/epoch-new").czxid
    client.stop()
    client.close()
    assert new >> 32 > seen, f"the restored history reused epoch {new >> 32} (archived up to {seen})"
    # Either guard may have raised it: the restore (to the replaced data's epoch) or, when that was below the
    # repository's, the supervisor before ZooKeeper started.
    started = cluster.master(1).layout.activity_log.read_text()
    assert "raised the restored data's epoch" in said or "raised this data directory's epoch" in started, said
    # The timeline shows every history of every stream, from the index alone.
    wait_for(lambda: archived_up_to(repo, new), timeout=60, what="the new history archived")
    doc = json.loads(ok(dcos_zk("timeline", "--repo", str(repo), "--json")).stdout)
    histories = {s["stream"]: s["histories"] for s in doc["streams"]}
    assert set(histories) == {"master-1", "master-2", "master-3"}
    newest = histories["master-1"][-1]
    assert newest["live"] and newest["epochs"][1] == new >> 32 and "replaced" in newest["began_by"]


def compacted(repo: Path, stream: str = "master-1") -> list:
    return [s for g in RepoIndex(cluster_repository(repo), stream).generations for s in g.snapshots if s.compacted]


def test_compaction_bounds_the_replay_and_restores_the_same_tree(archived: tuple[ClusterSpec, Path], tmp_path: Path):
    """Issue 29 item 3: ``dcos-zk archive compact`` writes snapshots ZooKeeper starts from, and every point
    restores to the tree it restored to without them."""
    cluster, repo = archived
    stream = ("--stream", "master-1")
    client = connect(cluster.zk_hosts)
    client.ensure_path("/compact")
    created: list[int] = []  # czxid of /compact/n<i>
    last = [0]

    def in_master_1(zxid: int) -> bool:
        return any(r.last >= zxid for r in RepoIndex(cluster_repository(repo), "master-1").ranges())

    def write_and_compact() -> list:
        for _ in range(30):
            stat = client.create(f"/compact/n{len(created):04d}", b"%d" % len(created), include_data=True)[1]
            created.append(stat.czxid)
            last[0] = client.set(f"/compact/n{len(created) - 1:04d}", b"set").mzxid
        wait_for(lambda: in_master_1(last[0]), timeout=30, what="the writes archived")
        ok(dcos_zk("archive", "compact", "--repo", str(repo), *stream, "--every", "40"))
        return compacted(repo)

    found = wait_for(write_and_compact, timeout=180, what="a compacted snapshot")
    client.stop()
    client.close()
    snap = found[-1]
    assert snap.consistent == snap.zxid and "-compacted_" in snap.key
    ok(dcos_zk("archive", "verify", "--repo", str(repo), *stream))  # its MAC verifies like the others'
    shown = json.loads(ok(dcos_zk("timeline", "--repo", str(repo), *stream, "--json")).stdout)
    assert {"zxid": hex(snap.zxid), "consistent": hex(snap.zxid), "compacted": True} in [
        s for h in shown["streams"][0]["histories"] for s in h["snapshots"]
    ]

    # A scratch ZooKeeper starts from the compacted snapshot alone and serves exactly the replayed tree.
    at_snap = json.loads(ok(dcos_zk("drill", "--repo", str(repo), "--at", hex(snap.zxid), *stream, "--json")).stdout)
    assert at_snap["transactions"] == 0 and at_snap["served_nodes"] == at_snap["nodes"]
    at_last = json.loads(ok(dcos_zk("drill", "--repo", str(repo), "--at", hex(last[0]), *stream, "--json")).stdout)
    assert at_last["transactions"] <= last[0] - snap.zxid

    # The same points without the compacted snapshots: the very same trees, stats and all.
    points = {"snap": snap.zxid, "after": last[0], "before": snap.zxid - 3}

    def dumps(tag: str, names: tuple[str, ...]) -> dict[str, str]:
        out = {}
        for name in names:
            zxid = points[name]
            archive = tmp_path / f"{tag}-{name}.tar.gz"
            ok(dcos_zk("export", "--repo", str(repo), "--to-zxid", hex(zxid), *stream, str(archive)))
            out[name] = ok(dcos_zk("dump", str(archive), "--json")).stdout
        return out

    with_compacted = dumps("with", ("snap", "after", "before"))
    aside = tmp_path / "aside"
    aside.mkdir()
    for ref in found:
        (repo / ref.key).rename(aside / Path(ref.key).name)
    assert compacted(repo) == []
    without = dumps("without", ("snap", "after"))
    for ref in found:
        (aside / Path(ref.key).name).rename(repo / ref.key)
    assert {k: with_compacted[k] for k in without} == without
    # A point before the compacted snapshot restores from the snapshot before it: the writes up to it.
    nodes = [json.loads(line) for line in with_compacted["before"].splitlines()]
    expected = sum(1 for z in created if z <= points["before"])
    assert sum(1 for n in nodes if n["path"].startswith("/compact/")) == expected
