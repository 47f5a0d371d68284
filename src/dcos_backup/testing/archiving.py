"""Looking at continuous archiving from outside, as the fault tests and the reliability report do: which
objects a stream's repository holds, how far it has archived, an archiver caught mid-copy, and the tree a
point-in-time export rebuilds."""

from __future__ import annotations

import functools
import json
import os
import signal
from pathlib import Path

from dcos_backup.errors import NotFound
from dcos_backup.local.spec import Master
from dcos_backup.master.processes import read_pid
from dcos_backup.physical.continuous.index import RepoIndex
from dcos_backup.physical.continuous.repository import Repository, key_file_from, open_repository
from dcos_backup.storage.base import PARTIAL
from dcos_backup.storage.locations import open_store
from dcos_backup.testing.load import LoadGenerator, LoadReport
from dcos_backup.testing.tools import ok, run_tool, wait_for

# ZooKeeper rolls its log every this many writes on an archiving test cluster: many objects, soon.
SNAP_COUNT = 400
dcos_zk = functools.partial(run_tool, "dcos-zk")


def keys(repo: Path, stream: str) -> set[str]:
    return {o.key for o in open_store(str(repo)).list(f"streams/{stream}/")}


def cluster_repository(repo: Path) -> Repository:
    """The cluster's repository, with the key ``$DCOS_ZK_REPO_KEY_FILE`` names (the fixtures set it)."""
    return open_repository(str(repo), key_file_from(None))


def archived_to(repo: Path, stream: str, zxid: int) -> bool:
    try:
        return any(r.last >= zxid for r in RepoIndex(cluster_repository(repo), stream).ranges())
    except NotFound:
        return False  # no repository.json yet


def archiver_pid(master: Master) -> int:
    pid = wait_for(lambda: read_pid(master.layout.archiver_pid_file), what="an archiver")
    assert pid is not None  # wait_for returns only a true value
    return pid


def exported_load(repo: Path, stream: str, zxid: int, work: Path) -> dict[str, bytes]:
    """The children of /load at ``zxid``, as the archive of ``stream`` rebuilds them."""
    archive = work / f"{stream}-{zxid:x}.tar.gz"
    ok(dcos_zk("export", "--repo", str(repo), "--stream", stream, "--to-zxid", hex(zxid), str(archive)))
    lines = ok(dcos_zk("dump", str(archive), "--path", "/load", "--json")).stdout.splitlines()
    nodes = [json.loads(line) for line in lines][1:]
    return {n["path"]: bytes.fromhex(n["data_hex"]) if "data_hex" in n else n["data"].encode() for n in nodes}


def settle(load: LoadGenerator, repo: Path, stream: str) -> tuple[LoadReport, int]:
    report = load.stop()
    assert report.failures == [], report.failures[:3]
    last = report.ops[-1].zxid
    wait_for(lambda: archived_to(repo, stream, last), timeout=60, what=f"{stream} to archive {last:#x}")
    return report, last


def frozen_mid_copy(pid: int, stream_dir: Path) -> Path | None:
    """Freeze ``pid``; if it is writing an object, leave it frozen and return the partial; else let it go on."""
    os.kill(pid, signal.SIGSTOP)
    partials = list(stream_dir.rglob(f"{PARTIAL}*"))
    if partials:
        return partials[0]
    os.kill(pid, signal.SIGCONT)
    return None
