"""Faults of continuous archiving with real processes and signals: kills mid-copy and mid-roll-over, ZooKeeper
killed under load, a purge that outruns the archiver, damaged objects in the repository, a full repository.

What must hold whatever the moment: nothing already archived is lost, no object that looks whole is
torn, the archive still rebuilds exactly the tree of every acknowledged write, and a lost stretch is
never papered over (a new base, said loudly; a damaged object named, never restored from).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from tests.helpers import ok, run_tool, small_tmpfs, wait_for

from dcos_backup.local import cluster as local_cluster
from dcos_backup.local.spec import Master
from dcos_backup.logical import connect
from dcos_backup.master.processes import read_pid
from dcos_backup.master.zookeeper import SLF4J_BINDING, ZK_CLASSPATH
from dcos_backup.physical import formats
from dcos_backup.physical.continuous.index import RepoIndex
from dcos_backup.storage.base import PARTIAL
from dcos_backup.testing.archiving import (
    SNAP_COUNT,
    archived_to,
    archiver_pid,
    cluster_repository,
    exported_load,
    frozen_mid_copy,
    keys,
    settle,
)
from dcos_backup.testing.load import LoadGenerator

# Alone on the machine (scripts/test.sh): with another worker's tests on the same two cores, a ZooKeeper
# member SIGKILLed under load came back with logs that left its stream's first restorable point unreplayable
# (a digest mismatch one transaction after a snapshot taken as it resynced): once in two two-worker runs,
# never in one process. The restore refused it, as it must; the cause is open (docs/reliability.md).
pytestmark = [pytest.mark.e2e, pytest.mark.serial]
dcos_zk = functools.partial(run_tool, "dcos-zk")


def log_files(master: Master) -> set[str]:
    return {p.name for p in master.layout.logs_dir.iterdir() if formats.kind_of_name(p.name) == "log"}


def test_archiver_killed_mid_roll_over_and_mid_copy_loses_nothing(archived, tmp_path):
    cluster, repo = archived
    master = cluster.master(1)
    load = LoadGenerator(cluster.zk_hosts, root="/load", rate=150, seed=11)
    load.start()
    try:
        # Mid-roll-over: frozen while ZooKeeper moves to a new log, killed there.
        pid = archiver_pid(master)
        os.kill(pid, signal.SIGSTOP)
        logs = log_files(master)
        wait_for(lambda: log_files(master) - logs, timeout=60, what="a roll-over while the archiver is frozen")
        before = keys(repo, "master-1")
        os.kill(pid, signal.SIGKILL)
        pid = wait_for(lambda: (p := read_pid(master.layout.archiver_pid_file)) != pid and p, what="a new archiver")

        # Mid-copy: frozen while an object is half-written (a partial exists), killed there.
        partial = wait_for(lambda: frozen_mid_copy(pid, repo / "streams" / "master-1"), timeout=120, what="mid-copy")
        before |= keys(repo, "master-1")
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: read_pid(master.layout.archiver_pid_file) not in (pid, None), what="a new archiver")
    finally:
        report, last = settle(load, repo, "master-1")

    after = keys(repo, "master-1")
    assert before <= after, sorted(before - after)[:3]  # nothing archived was lost
    assert not partial.exists()  # the torn object was never visible and is gone
    assert len(RepoIndex(cluster_repository(repo), "master-1").generations) == 1  # resumed, no new base
    ok(dcos_zk("archive", "verify", "--repo", str(repo), "--stream", "master-1"))
    assert exported_load(repo, "master-1", last, tmp_path) == load.expected_children(last, report.ops)


def test_zookeeper_killed_under_load_loses_nothing_archived(archived, tmp_path):
    cluster, repo = archived
    master = cluster.master(3)
    load = LoadGenerator(cluster.zk_hosts, root="/load", rate=150, seed=12)
    load.start()
    try:
        for _ in range(2):
            wait_for(lambda: len(load.acknowledged()) > 300, what="writes")
            before = keys(repo, "master-3")
            zk = wait_for(lambda: read_pid(master.layout.zookeeper_pid_file), what="ZooKeeper of master 3")
            os.kill(zk, signal.SIGKILL)
            local_cluster.wait_serving(cluster, 90, members=[master])
            assert before <= keys(repo, "master-3")  # nothing archived was lost
    finally:
        load.stop()
    # Clients of the killed member may have lost acks, so compare with the cluster itself at a known zxid.
    client = connect(cluster.zk_hosts)
    try:
        marker = client.create("/zk-killed-marker", include_data=True)[1].czxid
        live = {f"/load/{n}": client.get(f"/load/{n}")[0] for n in client.get_children("/load")}
    finally:
        client.stop()
        client.close()
    wait_for(lambda: archived_to(repo, "master-3", marker), timeout=60, what="master-3 to archive the marker")
    assert exported_load(repo, "master-3", marker, tmp_path) == live


def purge_txn_log(master: Master, keep: int = 3) -> None:
    """ZooKeeper's own zkCleanup: keep the ``keep`` newest snapshots and the logs they need."""
    classpath = ":".join(p for p in (ZK_CLASSPATH, SLF4J_BINDING) if Path(p).exists())
    layout = master.layout
    command = ["java", "-cp", classpath, "org.apache.zookeeper.server.PurgeTxnLog"]
    subprocess.run([*command, str(layout.log_dir), str(layout.data_dir), "-n", str(keep)], check=True)


def test_a_purge_that_outruns_the_archiver_starts_a_new_base_loudly(archived, tmp_path):
    cluster, repo = archived
    master = cluster.master(2)
    pid = archiver_pid(master)
    old = RepoIndex(cluster_repository(repo), "master-2").generations[-1]
    load = LoadGenerator(cluster.zk_hosts, root="/load", rate=150, seed=13)
    load.start()
    try:
        os.kill(pid, signal.SIGSTOP)
        frozen_at = log_files(master)
        wait_for(lambda: len(log_files(master) - frozen_at) >= 5, timeout=120, what="5 roll-overs")
        purge_txn_log(master)
        assert frozen_at - log_files(master), "the purge removed none of the logs the archiver was on"
        os.kill(pid, signal.SIGCONT)
        wait_for(lambda: len(RepoIndex(cluster_repository(repo), "master-2").generations) >= 2, what="a new base")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
        report, last = settle(load, repo, "master-2")

    generations = RepoIndex(cluster_repository(repo), "master-2").generations
    closed = next(g for g in generations if g.id == old.id)
    assert closed.end is not None and "purged" in closed.end["reason"]
    assert "purged" in str(generations[-1].info["reason"])
    events = master.layout.activity_log.read_text()
    assert "continuity lost" in events and "new base" in events
    status = httpx.get(f"{master.member.exhibitor_url}/exhibitor/v1/archive/status", timeout=10).json()
    assert any("purged" in line for line in status["events"])
    # The old history stays restorable up to where it ended; the new one has everything since.
    end_of_old = closed.ranges()[-1].last
    assert exported_load(repo, "master-2", end_of_old, tmp_path) == load.expected_children(end_of_old, report.ops)
    assert exported_load(repo, "master-2", last, tmp_path) == load.expected_children(last, report.ops)


@pytest.fixture
def damaged_repo(archived, tmp_path) -> tuple[Path, int]:
    """A copy of the repository (every stream archived past a load), and a zxid late in it."""
    cluster, repo = archived
    with LoadGenerator(cluster.zk_hosts, root="/damage", rate=150, seed=14) as load:
        wait_for(lambda: len(load.acknowledged()) >= 2 * SNAP_COUNT, timeout=120, what="writes")
    last = load.stop().ops[-1].zxid
    wait_for(lambda: archived_to(repo, "master-3", last), timeout=60, what="master-3 to archive the load")
    copy = tmp_path / "repo"
    shutil.copytree(repo, copy, ignore=shutil.ignore_patterns(f"{PARTIAL}*"))
    return copy, last


def one_line(result: subprocess.CompletedProcess) -> str:
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    return result.stderr


def test_a_damaged_or_missing_object_is_named_and_never_restored_from(damaged_repo, tmp_path):
    repo, last = damaged_repo
    *others, gen = RepoIndex(cluster_repository(repo), "master-3").generations
    # A point whose rebuild reads the most segments (after the newest snapshot before it): damage there is
    # in the way of the restore, wherever ZooKeeper happened to take its snapshots during the load. Only
    # points no older generation also reaches (the ZooKeeper kills above may have started one).
    plans = [
        (len(p[1]), s.last, p[1])
        for s in gen.segments
        if s.last <= last and (p := gen.plan(s.last)) and not any(g.plan(s.last) for g in others)
    ]
    _, target, plan_segments = max(plans)
    assert len(plan_segments) >= 4, [len(p[2]) for p in plans]
    export = functools.partial(dcos_zk, "export", "--repo", str(repo), "--stream", "master-3", "--to-zxid", hex(target))

    flipped = repo / plan_segments[1].key
    blob = bytearray(flipped.read_bytes())
    blob[len(blob) // 2] ^= 0x10
    flipped.write_bytes(bytes(blob))
    result = export(str(tmp_path / "a.tgz"))
    assert result.returncode == 1 and plan_segments[1].key in one_line(result)
    assert "MAC does not verify" in result.stderr
    assert not (tmp_path / "a.tgz").exists()
    checked = dcos_zk("archive", "verify", "--repo", str(repo), "--stream", "master-3")
    assert checked.returncode == 1 and plan_segments[1].key in one_line(checked)
    # Another master's stream covers the same point: a restore without --stream uses it.
    other = ("--repo", str(repo), "--stream", "master-1", "--to-zxid", hex(target))
    ok(dcos_zk("export", *other, str(tmp_path / "b.tgz")))

    (repo / plan_segments[3].key).unlink()
    result = export(str(tmp_path / "c.tgz"))
    assert result.returncode == 2 and "is not restorable" in one_line(result)
    assert "segments are missing between zxid" in result.stderr and "master-3" in result.stderr

    for snap in gen.snapshots:
        (repo / snap.key).unlink()
    result = dcos_zk("archive", "status", "--repo", str(repo), "--stream", "master-3")
    assert "PROBLEM" in result.stdout and "snapshot" in result.stdout
    assert dcos_zk("archive", "verify", "--repo", str(repo), "--stream", "master-3").returncode == 1


def test_a_full_repository_pauses_archiving_and_resumes(make_cluster, tmp_path, monkeypatch):
    with small_tmpfs(tmp_path / "small", "4m") as repo:
        cluster = make_cluster(zk_archive=str(repo), zk_config=[("snapCount", str(SNAP_COUNT))], with_service=False)
        monkeypatch.setenv("DCOS_ZK_REPO_KEY_FILE", str(cluster.files.repo_key))  # this cluster's, not archived's
        master = cluster.master(1)
        wait_for(lambda: RepoIndex(cluster_repository(repo), "master-1").generations, what="archiving")
        filler = repo / "filler"
        with open(filler, "wb", buffering=0) as f, contextlib.suppress(OSError):  # unbuffered: close cannot fail
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        load = LoadGenerator(cluster.zk_hosts, root="/load", rate=150, seed=15)
        load.start()
        try:
            state = wait_for(lambda: paused(master), timeout=60, what="the archiver to say the repository is full")
            assert "full" in state["message"] and "ZooKeeper untouched" in state["message"]
            assert "is full" in master.layout.activity_log.read_text()
            status = httpx.get(f"{master.member.exhibitor_url}/exhibitor/v1/archive/status", timeout=10).json()
            assert status["state"] == "paused"
            wait_for(lambda: len(load.acknowledged()) > 300, what="writes while the repository is full")
            filler.unlink()
        finally:
            report, last = settle(load, repo, "master-1")
        assert "archiving resumed" in master.layout.activity_log.read_text()
        assert len(RepoIndex(cluster_repository(repo), "master-1").generations) == 1  # nothing skipped
        assert exported_load(repo, "master-1", last, tmp_path) == load.expected_children(last, report.ops)


def paused(master: Master) -> dict | None:
    with contextlib.suppress(OSError, ValueError):
        state = json.loads(master.layout.archiver_state.read_text())
        return state if state["state"] == "paused" else None
    return None
