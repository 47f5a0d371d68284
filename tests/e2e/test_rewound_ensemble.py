"""Clients whose ensemble is rewound under them (issue 25 item 3, issue 26 item 2), their last zxid ahead of
the ensemble's. Rebuilt empty (the hardest case: nothing on the server side knows a rewind happened):
ZooKeeper refuses such a client's reconnects; the client made by :func:`dcos_backup.logical.connect` (the
service's, the user store's) starts a fresh session instead, as soon as the rebuilt ensemble serves.
Restored from an archive or to a point of the repository: every restore raises the restored data's epoch
above the replaced data's, so ZooKeeper itself lets every client back (a plain kazoo client, the service's
API), with no help from the client."""

from __future__ import annotations

import functools
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.helpers import ok, run_tool, seeded_cluster, wait_for

from dcos_backup.errors import DcosBackupError
from dcos_backup.local import cluster as local_cluster
from dcos_backup.local.spec import ClusterSpec, Master
from dcos_backup.logical import connect
from dcos_backup.testing import fault_scenarios, rewind
from dcos_backup.testing.archiving import archived_to

pytestmark = pytest.mark.e2e
dcos_zk = functools.partial(run_tool, "dcos-zk")


def test_a_client_ahead_of_an_ensemble_rebuilt_empty_gets_a_fresh_session_at_once(make_cluster):
    c = make_cluster(masters=1)
    client = connect(c.zk_hosts)
    try:
        for i in range(20):
            client.create(f"/before-{i}", b"x")
        assert client.last_zxid > 0
        local_cluster.stop_master(c, 1)
        wait_for(lambda: not client.connected, what="the client to see the ensemble down")
        layout = c.master(1).layout
        myid = layout.myid_file.read_bytes() if layout.myid_file.exists() else None
        for directory in (layout.snapshots_dir, layout.logs_dir):
            shutil.rmtree(directory, ignore_errors=True)
        if myid is not None:
            layout.myid_file.write_bytes(myid)
        local_cluster.start_master(c, 1, wait=True)
        serving = time.monotonic()
        wait_for(lambda: client.connected, timeout=30, what="a fresh session on the rebuilt ensemble")
        took = time.monotonic() - serving
        assert client.exists("/before-0") is None  # it is the rebuilt (empty) ensemble
        client.create("/after", b"y")
        assert took < 5, f"the client needed {took:.1f}s after the ensemble served"
    finally:
        client.stop()
        client.close()


@pytest.fixture(scope="module")
def rewound(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ClusterSpec, Path, int, Path]]:
    """An archiving cluster with its service: (the cluster, its repository, the zxid of the point every restore
    goes back to, a plain archive of that point)."""
    directory = tmp_path_factory.mktemp("rewound")
    repo = directory / "repo"
    with (
        seeded_cluster(directory / "cluster", apps=5, seed=2, zk_archive=str(repo)) as c,
        pytest.MonkeyPatch.context() as env,
    ):
        env.setenv("DCOS_ZK_REPO_KEY_FILE", str(c.files.repo_key))  # as dcos-local env exports it
        point = rewind.create_probe(c)
        archive = directory / "point.tar.gz"
        ok(dcos_zk("backup", str(archive), "--online", "--exhibitor-dir", str(c.master(1).layout.exhibitor_dir)))
        for m in c.masters:
            wait_for(lambda m=m: archived_to(repo, f"master-{m.id}", point), timeout=60, what="the point archived")
        yield c, repo, point, archive


def service_answers(cluster: ClusterSpec) -> Callable[[], bool]:
    """True once the service's API answers a request that needs its ZooKeeper session (the schedules)."""
    client = fault_scenarios.service_client(cluster)

    def answers() -> bool:
        try:
            client.schedules()
            return True
        except DcosBackupError:
            return False

    return answers


def rewound_and_back(cluster: ClusterSpec, restore_each: Callable[[Master], None], path: str) -> rewind.RewindTimes:
    fault_scenarios.wait_service(cluster)
    with rewind.watchers(cluster, service=service_answers(cluster)) as w:
        times = rewind.rewind(cluster, w, restore_each, path)
    print(f"{path}: {times}")  # the measured seconds (docs/reliability.md)
    assert all(t is not None for t in times.times.values()), times
    # The restored ensemble's first zxid is above every zxid a client saw: ZooKeeper itself lets them in.
    assert times.first_write > times.seen, times
    return times


def test_clients_ahead_of_a_plain_archive_restore_are_back_at_once(rewound):
    cluster, _, _, archive = rewound
    rewound_and_back(
        cluster,
        lambda m: ok(dcos_zk("restore", str(archive), "--exhibitor-dir", str(m.layout.exhibitor_dir))),
        "archive restore",
    )


def test_clients_ahead_of_a_point_in_time_restore_are_back_at_once(rewound):
    cluster, repo, point, _ = rewound
    rewound_and_back(
        cluster,
        lambda m: ok(
            dcos_zk(
                "restore", "--repo", str(repo), "--to-zxid", hex(point), "--exhibitor-dir", str(m.layout.exhibitor_dir)
            )
        ),
        "point-in-time restore",
    )
