"""Precise restores through the service's API (issue 14): dry run, ``paths`` (--path), ``map`` (--map SRC=DST),
in-process against the real shared ensemble (the ``env`` of test_service_api: a chroot, a catalog, real tokens)."""

from __future__ import annotations

import threading

import pytest
from kazoo.security import OPEN_ACL_UNSAFE
from tests.helpers import backup_doc, create_ready, damage, restore_ended, wait_for

from dcos_backup.api.models import CREATE, LIST, RESTORE
from dcos_backup.logical import ZNode, apply_tree
from dcos_backup.logical.records import path_key
from dcos_backup.testing.trees import snapshot

pytestmark = pytest.mark.e2e

OPEN = tuple(OPEN_ACL_UNSAFE)


def listing(http) -> list[str]:
    return [d["id"] for d in http.get(LIST).json().get("backup_info", [])]


def test_dry_run_reports_what_the_restore_then_does_and_changes_nothing(env):
    http, service, zk, _ = env
    doc = create_ready(http)
    damage(zk)
    damaged = snapshot(zk)
    ids = listing(http)

    response = http.post(RESTORE, json={"id": doc["id"], "dry_run": True})
    assert response.status_code == 200, response.text
    diff = response.json()
    assert snapshot(zk) == damaged  # nothing written ...
    assert listing(http) == ids and backup_doc(http, doc["id"])["restores"] == []  # ... no safety backup, no record
    assert service.running is None  # the lock is free again: a restore may start at once
    assert diff["backup_id"] == doc["id"] and diff["dry_run"] is True and diff["left_out"] == 0
    assert (diff["created"], diff["updated"], diff["deleted"]) == (
        sum(c["op"] == "create" for c in diff["changes"]),
        sum(c["op"] == "update" for c in diff["changes"]),
        sum(c["op"] == "delete" for c in diff["changes"]),
    )
    assert diff["deleted"] == 2 and diff["updated"] == 4 and diff["created"] > 0  # damage(): see tests/helpers.py
    paths = [c["path"] for c in diff["changes"]]
    assert paths == sorted(paths, key=path_key)  # pre-order
    assert "/marathon/state/app/intruder/v1" in paths
    assert diff["component_status"]["marathon"]["unchanged"] == diff["unchanged"]

    http.post(RESTORE, json={"id": doc["id"]})
    restore = restore_ended(http, doc["id"])["restores"][-1]
    assert restore["status"] == "STATUS_READY", restore
    stats = restore["component_status"]["marathon"]["stats"]
    assert {k: stats[k] for k in ("created", "updated", "deleted", "unchanged")} == {
        k: diff[k] for k in ("created", "updated", "deleted", "unchanged")
    }
    again = http.post(RESTORE, json={"id": doc["id"], "dry_run": True}).json()
    assert (again["created"], again["updated"], again["deleted"], again["changes"]) == (0, 0, 0, [])


def test_a_path_restores_that_subtree_only_and_a_map_restores_beside_it(env):
    http, _, zk, _ = env
    before = snapshot(zk)
    apps = sorted(zk.get_children("/marathon/state/app"))
    doc = create_ready(http)
    damage(zk)  # deletes apps[:3], changes apps[3:6], adds "intruder"
    chosen = [f"/marathon/state/app/{apps[0]}", f"/marathon/state/app/{apps[3]}"]
    damaged = snapshot(zk)

    dry = http.post(RESTORE, json={"id": doc["id"], "dry_run": True, "paths": chosen}).json()
    assert {c["path"].split("/")[4] for c in dry["changes"]} == {apps[0], apps[3]}
    assert dry["paths"] == chosen and snapshot(zk) == damaged

    started = http.post(RESTORE, json={"id": doc["id"], "paths": chosen}).json()["backup_info"]
    assert started["paths"] == chosen
    restore = restore_ended(http, doc["id"])["restores"][-1]
    assert restore["status"] == "STATUS_READY", restore
    now = snapshot(zk)
    for path in chosen:  # byte for byte as backed up ...
        assert [n for n in now if n[0].startswith(path)] == [n for n in before if n[0].startswith(path)]
    rest = [n for n in now if not any(n[0].startswith(p) for p in chosen)]
    assert rest == [n for n in damaged if not any(n[0].startswith(p) for p in chosen)]  # ... the rest untouched
    safety = backup_doc(http, restore["safety_backup_id"])
    assert {c["root"] for c in safety["component_status"].values()} == set(chosen)  # exactly what it touched

    started = http.post(RESTORE, json={"id": doc["id"], "map": "/marathon=/marathon-copy"}).json()["backup_info"]
    assert started["map"] == "/marathon=/marathon-copy"
    restore = restore_ended(http, doc["id"])["restores"][-1]
    assert restore["status"] == "STATUS_READY", restore
    assert snapshot(zk) == now  # /marathon itself is not touched
    copy = snapshot(zk, "/marathon-copy")
    assert copy == [("/marathon-copy" + p[len("/marathon") :], data, acl) for p, data, acl in before]
    assert backup_doc(http, restore["safety_backup_id"])["component_status"]["marathon-1"]["root"] == "/marathon-copy"


def test_bad_paths_and_maps_are_refused_before_anything_runs(env):
    http, _, zk, _ = env
    doc = create_ready(http)
    damage(zk)
    damaged = snapshot(zk)
    ids = listing(http)
    missing = "/marathon/state/app/never-was"
    for body, status, words in [
        ({"paths": [missing]}, 404, f"does not hold {missing}"),
        ({"paths": [missing], "dry_run": True}, 404, f"does not hold {missing}"),
        ({"paths": ["marathon/state"]}, 400, "not an absolute znode path"),
        ({"paths": ["/marathon/../etc"]}, 400, "not a normalised"),
        ({"paths": ["/chronos/jobs"]}, 400, "not under any component's root"),
        ({"map": "/marathon"}, 400, "expected SRC=DST"),
        ({"map": "/marathon=/marathon/copy"}, 400, "one contains the other"),
        ({"map": "/other=/x"}, 400, "not under any component's root"),
        ({"map": "/marathon=/zookeeper/x"}, 400, "would overwrite /zookeeper"),
        ({"map": "/marathon/state=/copy", "paths": ["/marathon/other"]}, 400, "not under the --map source"),
        ({"map": f"{missing}=/copy"}, 404, f"does not hold {missing}"),
    ]:
        response = http.post(RESTORE, json={"id": doc["id"], **body})
        assert response.status_code == status, (body, response.text)
        assert words in response.json()["errors"][0], (body, response.json())
    assert snapshot(zk) == damaged and listing(http) == ids
    assert backup_doc(http, doc["id"])["restores"] == []
    assert not zk.exists("/copy")


def test_a_failed_subtree_restore_rolls_back_that_subtree_only(env):
    http, service, zk, _ = env
    apps = sorted(zk.get_children("/marathon/state/app"))
    doc = create_ready(http)
    damage(zk)
    damaged = snapshot(zk)
    service.engine.compare_lies = 2  # after the planned changes, and after applying again
    service.engine.applies = 0
    http.post(RESTORE, json={"id": doc["id"], "paths": [f"/marathon/state/app/{apps[3]}"]})
    restore = restore_ended(http, doc["id"])["restores"][-1]
    assert restore["status"] == "STATUS_ERROR" and "rolled back" in restore["reason"], restore
    assert snapshot(zk) == damaged
    assert service.engine.applies == 3  # the planned changes, the catch-up, the rollback: nothing else
    safety = backup_doc(http, restore["safety_backup_id"])
    assert [c["root"] for c in safety["component_status"].values()] == [f"/marathon/state/app/{apps[3]}"]


def test_sequential_counters_are_restored_through_the_service(env):
    """Item 5: after a restore, a new sequential child never takes a restored child's name, and sorts after them."""
    http, _, zk, _ = env
    zk.create("/marathon/state/queue")
    made = [zk.create("/marathon/state/queue/item-", b"%d" % i, sequence=True) for i in range(30)]
    for path in made[:20]:
        zk.delete(path)
    doc = create_ready(http)
    zk.delete("/marathon/state/queue", recursive=True)  # the disaster: the parent is recreated, its counter at 0
    zk.create("/marathon/state/queue")
    zk.create("/marathon/state/queue/item-", b"after the disaster", sequence=True)  # item-0000000000

    http.post(RESTORE, json={"id": doc["id"]})
    restore = restore_ended(http, doc["id"])["restores"][-1]
    assert restore["status"] == "STATUS_READY", restore
    assert restore["component_status"]["marathon"]["stats"]["counters"] == 1
    assert sorted(zk.get_children("/marathon/state/queue")) == [f"item-{i:010d}" for i in range(20, 30)]
    new = zk.create("/marathon/state/queue/item-", b"new", sequence=True)
    assert new == "/marathon/state/queue/item-0000000030"


def test_a_60000_child_directory_backs_up_and_restores_through_the_service(env):
    """Item 7: a child list of 2.6 MB, past ZooKeeper's 1 MiB jute.maxbuffer, through the API."""
    http, service, zk, _ = env
    hosts = service.engine.real.hosts
    huge = [
        ZNode("/marathon/huge", b"dir", OPEN),
        *(ZNode(f"/marathon/huge/{i:040d}", b"%d" % i, OPEN) for i in range(60_000)),
    ]
    apply_tree(hosts, "/marathon/huge", huge)
    try:
        before = snapshot(zk)
        doc = http.post(CREATE, json={"label": "huge"}).json()["backup_info"]
        ready = wait_for(lambda: (d := backup_doc(http, doc["id"]))["status"] != "STATUS_BACKING_UP" and d, timeout=600)
        assert ready["status"] == "STATUS_READY" and ready["component_status"]["marathon"]["nodes"] == len(before)
        apply_tree(hosts, "/marathon/huge", huge[:30_001])  # the directory and 30,000 children: 30,000 lost
        http.post(RESTORE, json={"id": doc["id"]})
        restore = wait_for(
            lambda: (r := backup_doc(http, doc["id"])["restores"][-1])["status"] != "STATUS_RESTORING" and r,
            timeout=600,
        )
        assert restore["status"] == "STATUS_READY", restore
        assert restore["component_status"]["marathon"]["stats"]["created"] == 30_000
        assert snapshot(zk) == before
    finally:
        apply_tree(hosts, "/marathon/huge", [])


@pytest.mark.parametrize("change", ["a planned create meets a node", "an unchanged node changes"])
def test_a_restore_whose_tree_changes_after_its_plan_applies_the_backup_again(env, change):
    """A restore plans its changes during the safety backup and sends them after it; another client that
    changes the tree in between (here: while the first planned change waits) makes it catch up, not fail."""
    http, service, zk, _ = env
    apps = sorted(zk.get_children("/marathon/state/app"))
    doc = create_ready(http)
    wanted = snapshot(zk)
    damage(zk)  # deletes apps[0] (the restore plans to create it again) and changes apps[3]
    service.engine.gate_after = 0
    service.engine.apply_gate = gate = threading.Event()  # the planned changes wait before the first one
    http.post(RESTORE, json={"id": doc["id"]})
    wait_for(lambda: (service.progress(doc["id"]) or {}).get("phase") == "applying marathon")
    if change == "a planned create meets a node":
        zk.create(f"/marathon/state/app/{apps[0]}", b"created meanwhile")
    else:
        zk.set(f"/marathon/state/app/{apps[8]}", b"changed meanwhile")
    gate.set()
    restore = restore_ended(http, doc["id"])["restores"][-1]
    assert restore["status"] == "STATUS_READY", restore
    assert snapshot(zk) == wanted
