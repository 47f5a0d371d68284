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


def rewound_and_back(cluster: ClusterSpec, restore_each: Callable[[Master], None], path: str) -> rewind.RewindTimes:
    fault_scenarios.wait_service(cluster)
    with rewind.watchers(cluster, service=rewind.service_answers(cluster)) as w:
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


def test_drop_sessions_restores_without_the_ephemerals_of_the_archived_sessions(rewound, tmp_path):
    """Issue 26 item 2: a session live at the backup comes back with its ephemeral in a plain restore (a stale
    leader latch until it times out); with --drop-sessions neither does, and ZooKeeper loads the rewritten
    snapshot (its tree digest included) on every master."""
    cluster, _, _, _ = rewound
    holder = rewind.plain_client(cluster.zk_hosts, timeout=30)  # a session that outlives the restore's checks
    holder.create("/rewind-latch", b"leader", ephemeral=True)
    holder.create("/rewind-kept", b"persistent")
    archive = tmp_path / "with-session.tar.gz"
    ok(dcos_zk("backup", str(archive), "--online", "--exhibitor-dir", str(cluster.master(2).layout.exhibitor_dir)))
    holder.stop()  # the process that held the latch is gone; its session is in the archive
    holder.close()

    def restore_all(*extra: str) -> None:
        for m in cluster.masters:
            local_cluster.stop_master(cluster, m.id)
        for m in cluster.masters:
            ok(dcos_zk("restore", str(archive), *extra, "--exhibitor-dir", str(m.layout.exhibitor_dir)))
        for m in cluster.masters:
            local_cluster.start_master(cluster, m.id)
        local_cluster.wait_serving(cluster, 120)

    def latch_and_kept() -> tuple[bool, bool]:
        client = connect(cluster.zk_hosts)
        try:
            return client.exists("/rewind-latch") is not None, client.exists("/rewind-kept") is not None
        finally:
            client.stop()
            client.close()

    restore_all("--drop-sessions")
    assert latch_and_kept() == (False, True)
    for m in cluster.masters:
        console = m.layout.console_log.read_text(errors="replace").lower()
        assert "digests are not matching" not in console
    restore_all()
    # The archived session lives on (until its timeout, 30 s after the restored ensemble serves) with its latch.
    assert latch_and_kept() == (True, True)
