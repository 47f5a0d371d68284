"""Restore drills (``POST /drill``): a backup restored into a scratch ZooKeeper and compared node for node,
in-process against the real shared ensemble; the live tree must not change, byte for byte."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import psutil
import pytest
from tests.helpers import backup_doc, create_ready, wait_for

from dcos_backup.api.models import CANCEL, DRILL
from dcos_backup.jobs import drill as drill_steps
from dcos_backup.logical import ZkSpec, iter_tree
from dcos_backup.master.scratch import ScratchZooKeeper
from dcos_backup.testing.trees import snapshot

pytestmark = pytest.mark.e2e


def live_state(zk) -> tuple[list[tuple], list[tuple]]:
    """The live /marathon byte for byte, and every node's change counters: a drill must move neither."""
    where = ZkSpec(tuple(zk.hosts), zk.chroot or "")
    nodes = iter_tree(where, "/marathon")
    stats = [(n.path, n.stat.mzxid, n.stat.pzxid, n.stat.cversion, n.stat.aversion) for n in nodes]
    return snapshot(zk), stats


def drill_ended(http, backup_id: str, drill_id: str) -> dict:
    def ended():
        doc = backup_doc(http, backup_id)
        return next((d for d in doc["drills"] if d["id"] == drill_id), None)

    return wait_for(ended, what="drill to end")


@pytest.fixture
def scratch_parent(tmp_path, monkeypatch) -> Path:
    """Where the scratch servers' directories go (the system's temporary directory, moved for the test)."""
    parent = tmp_path / "tmp"
    parent.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(parent))
    return parent


def test_a_drill_proves_a_sound_backup_and_leaves_the_live_tree_alone(env, scratch_parent):
    http, _, zk, _ = env
    doc = create_ready(http)
    assert doc["status"] == "STATUS_READY" and doc["drills"] == []
    before = live_state(zk)
    response = http.post(DRILL, json={"id": doc["id"]})
    assert response.status_code == 200, response.text
    started = response.json()["backup_info"]
    assert started["status"] == "STATUS_RESTORING" and started["backup_id"] == doc["id"] and len(started["id"]) == 36
    drill = drill_ended(http, doc["id"], started["id"])
    assert drill["status"] == "STATUS_READY", drill
    assert drill["reason"] is None and drill["duration"] > 0 and drill["finished_at"] >= drill["timestamp"]
    assert drill["nodes"] == sum(c["nodes"] for c in doc["component_status"].values()) > 100
    assert live_state(zk) == before
    assert list(scratch_parent.iterdir()) == []  # the scratch server's directory is gone
    again = http.post(DRILL, json={"id": doc["id"]}).json()["backup_info"]
    drill_ended(http, doc["id"], again["id"])
    assert [d["status"] for d in backup_doc(http, doc["id"])["drills"]] == ["STATUS_READY"] * 2  # oldest first


def test_a_damaged_archive_fails_the_drill_with_its_reason(env, scratch_parent):
    http, service, zk, _ = env
    doc = create_ready(http)
    archive = service.storage.archive_path(doc["id"], doc["component_status"]["marathon"]["archive"])
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    before = live_state(zk)
    started = http.post(DRILL, json={"id": doc["id"]}).json()["backup_info"]
    drill = drill_ended(http, doc["id"], started["id"])
    assert drill["status"] == "STATUS_ERROR" and drill["nodes"] == 0
    assert drill["reason"].startswith("marathon: ") and "sha256" in drill["reason"], drill["reason"]
    assert live_state(zk) == before
    assert list(scratch_parent.iterdir()) == []
    assert backup_doc(http, doc["id"])["status"] == "STATUS_READY"  # a drill judges, it changes no state


def test_a_drill_is_refused_for_an_unknown_or_unfinished_backup(env):
    http, _, _, _ = env
    missing = http.post(DRILL, json={"id": "nothing-00000000-0000-4000-8000-000000000000"})
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    assert http.post(DRILL, json={}).status_code == 400


class ParkedScratch(ScratchZooKeeper):
    """The real scratch server, held once it serves until the test lets the drill go on."""

    serving = threading.Event()
    release = threading.Event()
    pids: list[int] = []

    def __enter__(self) -> ParkedScratch:
        super().__enter__()
        assert self._proc is not None
        self.pids.append(self._proc.pid)
        self.serving.set()
        assert self.release.wait(60)
        return self


def test_a_cancelled_drill_fails_cancelled_and_removes_its_scratch_server(env, scratch_parent, monkeypatch):
    http, _, zk, _ = env
    monkeypatch.setattr(drill_steps, "ScratchZooKeeper", ParkedScratch)
    doc = create_ready(http)
    before = live_state(zk)
    started = http.post(DRILL, json={"id": doc["id"]}).json()["backup_info"]
    assert ParkedScratch.serving.wait(60), "the scratch server never served"
    (pid,) = ParkedScratch.pids
    assert psutil.pid_exists(pid) and len(list(scratch_parent.iterdir())) == 1
    assert http.post(CANCEL, json={"id": doc["id"]}).status_code == 200
    ParkedScratch.release.set()
    drill = drill_ended(http, doc["id"], started["id"])
    assert drill["status"] == "STATUS_ERROR" and drill["reason"] == "cancelled"
    assert list(scratch_parent.iterdir()) == [] and not psutil.pid_exists(pid)
    assert live_state(zk) == before
