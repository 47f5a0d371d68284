"""``dcos-zk drill``: a point of the continuous archive restored into a scratch ZooKeeper, on a real cluster
archiving continuously; a sound repository passes, a damaged one fails loudly, and this master is untouched."""

from __future__ import annotations

import functools
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.helpers import ok, run_tool, seeded_cluster, wait_for

from dcos_backup.local.spec import ClusterSpec
from dcos_backup.logical import connect
from dcos_backup.physical.continuous.index import RepoIndex
from dcos_backup.physical.continuous.repository import Repository
from dcos_backup.storage.base import PARTIAL
from dcos_backup.storage.crypto import load_key
from dcos_backup.storage.locations import open_store
from dcos_backup.testing.archiving import archived_to
from dcos_backup.testing.load import LoadGenerator
from dcos_backup.testing.trees import snapshot

pytestmark = pytest.mark.e2e
SNAP_COUNT = 400
tool = functools.partial(run_tool, "dcos-zk")


@pytest.fixture(scope="module")
def archived(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ClusterSpec, Path, int]]:
    """A cluster archiving continuously, past a load that rolled ZooKeeper's log: (cluster, repo, last zxid)."""
    directory = tmp_path_factory.mktemp("drill-cluster")
    repo = directory / "repo"
    with (
        seeded_cluster(
            directory / "cluster",
            apps=30,
            seed=7,
            zk_config=[("snapCount", str(SNAP_COUNT))],
            zk_archive=str(repo),
            with_service=False,
        ) as cluster,
        pytest.MonkeyPatch.context() as env,
    ):
        env.setenv("DCOS_ZK_REPO_KEY_FILE", str(cluster.files.repo_key))  # as dcos-local env exports it
        with LoadGenerator(cluster.zk_hosts, root="/drill", rate=200, seed=3) as load:
            wait_for(lambda: len(load.acknowledged()) >= 2 * SNAP_COUNT, timeout=120, what="writes")
        last = load.stop().ops[-1].zxid
        wait_for(lambda: archived_to(repo, "master-1", last), timeout=60, what="master-1 to archive the load")
        yield cluster, repo, last


def dcos_zk(cluster: ClusterSpec, *args: object):
    """``dcos-zk ARGS`` with the cluster's repository key, as ``dcos-local env`` exports it."""
    return tool(*(str(a) for a in args), env={"DCOS_ZK_REPO_KEY_FILE": str(cluster.files.repo_key)})


def live(cluster: ClusterSpec) -> tuple[list[tuple], list[str]]:
    client = connect(cluster.zk_hosts)
    try:
        return snapshot(client), sorted(client.get_children("/drill"))
    finally:
        client.stop()
        client.close()


def masters_data(cluster: ClusterSpec) -> dict[str, int]:
    """Every file of every master's data directories with its size and mtime: a drill changes none."""
    return {
        str(path): path.stat().st_mtime_ns
        for m in cluster.masters
        for path in m.layout.zk_dir.rglob("*")
        if path.is_file() and "console" not in path.name
    }


def test_a_sound_point_serves_the_replayed_tree(archived, tmp_path):
    cluster, repo, last = archived
    before = live(cluster)
    result = json.loads(ok(dcos_zk(cluster, "drill", "--repo", str(repo), "--stream", "master-1", "--json")).stdout)
    assert result["served_nodes"] == result["nodes"] > 100 and len(result["digest"]) == 16
    assert int(result["zxid"], 16) >= last and result["transactions"] >= 0
    at = json.loads(
        ok(
            dcos_zk(
                cluster,
                "drill",
                "--repo",
                str(repo),
                "--stream",
                "master-1",
                "--at",
                hex(last),
                "--json",
                "-t",
                tmp_path,
            )
        ).stdout
    )
    assert at["served_nodes"] == at["nodes"] and int(at["zxid"], 16) == last
    assert list(tmp_path.iterdir()) == []  # the scratch server's directory is gone
    text = ok(dcos_zk(cluster, "drill", "--repo", str(repo), "--random")).stdout
    assert text.startswith("drill of zxid ") and ": OK: a scratch ZooKeeper serves the " in text
    assert live(cluster) == before


def test_a_damaged_repository_fails_the_drill_loudly(archived, tmp_path):
    cluster, repo, last = archived
    copy = tmp_path / "repo"
    shutil.copytree(repo, copy, ignore=shutil.ignore_patterns(f"{PARTIAL}*"))
    gen = RepoIndex(Repository(open_store(str(copy)), load_key(cluster.files.repo_key)), "master-1").generations[-1]
    plan = gen.plan(last)
    assert plan is not None and plan[1], "the point needs segments"
    damaged = copy / plan[1][-1].key
    blob = bytearray(damaged.read_bytes())
    blob[len(blob) // 2] ^= 0x10
    damaged.write_bytes(bytes(blob))
    files_before, tree_before = masters_data(cluster), live(cluster)
    work = tmp_path / "work"
    work.mkdir()
    result = dcos_zk(cluster, "drill", "--repo", str(copy), "--stream", "master-1", "--at", hex(last), "-t", str(work))
    assert result.returncode == 1, result
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert plan[1][-1].key in result.stderr
    assert "sha256 mismatch" in result.stderr or "MAC does not verify" in result.stderr
    assert list(work.iterdir()) == []
    assert live(cluster) == tree_before
    assert set(files_before) <= set(masters_data(cluster))  # ZooKeeper may add files; none of it came from us
