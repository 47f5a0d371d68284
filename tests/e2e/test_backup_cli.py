"""The seed's "Backing up / Restoring a cluster", word for word, through `dcos backup` against a real
3-master local cluster (every request through an Admin Router, over HTTPS) whose backup service runs
under dcos-local's restart-always supervisor; and the DC/OS CLI's own formats and ways to find a cluster."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from kazoo.security import OPEN_ACL_UNSAFE
from tests.helpers import damage, dcos_env, ok, run_tool, seeded_cluster, wait_for

from dcos_backup import __version__
from dcos_backup.cli.client import latest_restore
from dcos_backup.local import security
from dcos_backup.logical import ZNode, apply_tree, connect
from dcos_backup.storage.base import PARTIAL
from dcos_backup.testing import fault_scenarios
from dcos_backup.testing.trees import snapshot

pytestmark = pytest.mark.e2e


def dcos(cluster, *args: str, env: dict | None = None):
    """``dcos backup ARGS`` against ``cluster`` (found the CLI's fallback way: its DCOS_LOCAL_DIR)."""
    return run_tool("dcos", "backup", *args, cluster_dir=cluster.dir, env=env, timeout=120)


def stdout_of(cluster, *args: str) -> str:
    """``dcos backup ARGS``, which must succeed; its standard output."""
    return ok(dcos(cluster, *args)).stdout


def show(cluster, backup_id: str) -> dict:
    return json.loads(stdout_of(cluster, "show", backup_id))


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    with seeded_cluster(tmp_path_factory.mktemp("cli-cluster"), apps=40, seed=11) as c:
        zk = connect(c.zk_hosts)
        yield c, zk
        zk.stop()


def test_seed_procedure_through_the_cli(seeded):
    cluster, zk = seeded
    before = snapshot(zk)

    # 1. Create a backup and assign it a meaningful label.
    backup_id = stdout_of(cluster, "create", "--label=pre-upgrade").strip()
    assert backup_id.startswith("pre-upgrade-")
    # 2. Verify that the backup has been created: it goes STATUS_BACKING_UP -> STATUS_READY.
    wait_for(lambda: show(cluster, backup_id)["status"] == "STATUS_READY", what="STATUS_READY")
    listing = stdout_of(cluster, "list")
    assert backup_id in listing and "STATUS_READY" in listing
    assert backup_id in stdout_of(cluster, "list", "pre-upgrade")
    assert backup_id not in stdout_of(cluster, "list", "other-label")
    docs = json.loads(stdout_of(cluster, "list", "--json"))
    assert [d["id"] for d in docs] == [backup_id]
    assert show(cluster, backup_id)["component_status"]["marathon"]["status"] == "STATUS_READY"

    # Something goes wrong with /marathon.
    damage(zk)
    assert snapshot(zk) != before

    # Restoring: restore, then monitor restores.component_status.marathon (of the latest restore).
    restore_id = stdout_of(cluster, "restore", backup_id).strip()
    seen = []

    def restore_state() -> str:
        restore = latest_restore(show(cluster, backup_id))
        assert restore["id"] == restore_id
        return restore["component_status"]["marathon"]["status"]

    wait_for(
        lambda: seen.append(restore_state()) or seen[-1] not in ("STATUS_UNKNOWN", "STATUS_RESTORING"),
        interval=0.05,
        what="restore to end",
    )
    assert seen[-1] == "STATUS_READY"
    assert set(seen) <= {"STATUS_UNKNOWN", "STATUS_RESTORING", "STATUS_READY"}
    assert snapshot(zk) == before

    # Deleting a backup.
    ok(dcos(cluster, "delete", backup_id))
    assert backup_id not in stdout_of(cluster, "list")


def test_wait_flags_and_exit_codes(seeded):
    cluster, _ = seeded
    created = dcos(cluster, "create", "--label", "with-wait", "--wait")
    backup_id = ok(created).stdout.strip()
    assert show(cluster, backup_id)["status"] == "STATUS_READY"
    restored = dcos(cluster, "restore", backup_id, "--wait")
    assert restored.returncode == 0 and "STATUS_READY" in restored.stderr
    assert latest_restore(show(cluster, backup_id))["id"] == restored.stdout.strip()

    unknown = "pre-upgrade-ea6b49f5-79a8-4767-ae78-3f874c90e3da"
    for args in (["show", unknown], ["delete", unknown], ["restore", unknown]):
        result = dcos(cluster, *args)
        assert result.returncode == 1 and "no backup" in result.stderr and len(result.stderr.splitlines()) == 1

    for label in ["ab", "a" * 26, "..abc", "-ab", "a/b", "a b", "prè", ""]:
        result = dcos(cluster, "create", "--label", label)
        assert result.returncode == 2, (label, result.stderr)
        assert "invalid label" in result.stderr and len(result.stderr.splitlines()) == 1
    assert [d["label"] for d in json.loads(stdout_of(cluster, "list", "--json")) if not d["safety"]] == ["with-wait"]

    result = dcos(cluster, "list", env={"DCOS_ACS_TOKEN": "wrong"})
    assert result.returncode == 1 and "invalid token" in result.stderr and len(result.stderr.splitlines()) == 1
    result = dcos(cluster, "list", env={"DCOS_URL": "https://127.0.0.1:9", "DCOS_ACS_TOKEN": "x"})
    assert result.returncode == 3 and "https://127.0.0.1:9" in result.stderr and "Traceback" not in result.stderr


def test_the_dcos_cli_formats_and_ways_in(seeded):
    cluster, _ = seeded
    assert ok(dcos(cluster, "--version")).stdout.strip() == __version__
    assert "backups" in ok(dcos(cluster, "--info")).stdout
    backup_id = ok(dcos(cluster, "create", "--label", "formats", "--wait")).stdout.strip()

    # DC/OS's table: its four columns first, then ours.
    header, *rows = ok(dcos(cluster, "list", "formats")).stdout.splitlines()
    assert header.split() == ["BACKUP", "ID", "VERSION", "STATUS", "TIMESTAMP", "LABEL", "SIZE"]
    assert len(rows) == 1 and rows[0].split()[:3] == [backup_id, __version__, "STATUS_READY"]
    assert rows[0].split()[5:7] == ["+0000", "UTC"]
    shown = json.loads(ok(dcos(cluster, "show", "--json", backup_id)).stdout)
    assert list(shown)[:6] == ["dcos_version", "id", "timestamp", "status", "component_status", "restores"]

    # The DC/OS CLI's variables (what `dcos-local env 2` exports) reach master 2's Admin Router.
    env = dcos_env(cluster, master=2)
    assert [d["id"] for d in json.loads(ok(dcos(cluster, "list", "formats", "--json", env=env)).stdout)] == [backup_id]

    # A user without the permission: one line naming it. A URL without a token: one line saying so.
    security.add_user(cluster.files, cluster.zk_hosts, "viewer", [])
    token = security.login(cluster.files, cluster.zk_hosts, "viewer")
    refused = dcos(cluster, "list", env=dcos_env(cluster, token))
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        "error: user 'viewer' lacks the permission dcos:adminrouter:ops:system-backup (action full)"
    ]
    no_token = dcos(cluster, "--url", cluster.master(1).admin_router_url, "list")
    assert no_token.returncode == 2 and len(no_token.stderr.splitlines()) == 1
    assert "no token for https://" in no_token.stderr
    untrusted = dcos(cluster, "list", env={**dcos_env(cluster), "DCOS_SSL_VERIFY": "true"})
    assert untrusted.returncode == 3 and "DCOS_SSL_VERIFY" in untrusted.stderr
    assert len(untrusted.stderr.splitlines()) == 1


def test_killed_service_is_restarted_and_marks_the_backup_interrupted(seeded):
    cluster, _ = seeded
    # 40,000 more znodes: a backup long enough to be caught streaming its archive.
    open_acl = tuple(OPEN_ACL_UNSAFE)
    apply_tree(
        cluster.zk_hosts,
        "/marathon/bulk",
        [ZNode("/marathon/bulk", b"", open_acl)]
        + [ZNode(f"/marathon/bulk/n{i:05d}", b"x" * 200, open_acl) for i in range(40000)],
    )
    # SIGKILL while the catalog says STATUS_BACKING_UP and the archive is being written, not before or after.
    backup_id = fault_scenarios.act_mid_job(
        cluster,
        lambda: stdout_of(cluster, "create", "--label", "doomed").strip(),
        lambda job: fault_scenarios.archive_growing(cluster, job, 1),
        fault_scenarios.kill_service(cluster),
    )
    wait_for(lambda: dcos(cluster, "list").returncode == 0, what="service answering again")
    doc = show(cluster, backup_id)
    assert doc["status"] == "STATUS_ERROR" and "interrupted" in doc["reason"]
    assert doc["component_status"]["marathon"]["status"] == "STATUS_ERROR"
    storage = Path(cluster.service["storage_dir"]) / backup_id
    assert not list(storage.glob(f"{PARTIAL}*"))
    # a new backup succeeds once the dead session's lock has expired
    wait_for(
        lambda: dcos(cluster, "create", "--label", "after-kill", "--wait").returncode == 0,
        timeout=60,
        interval=1,
        what="a new backup",
    )
    apply_tree(cluster.zk_hosts, "/marathon/bulk", [])


def test_dry_run_path_and_map_through_the_cli(seeded):
    cluster, zk = seeded
    backup_id = ok(dcos(cluster, "create", "--label", "precise", "--wait")).stdout.strip()
    before = snapshot(zk)
    apps = sorted(zk.get_children("/marathon/state/app"))
    damage(zk)  # deletes apps[:3], changes apps[3:6], adds "intruder"
    damaged = snapshot(zk)

    human = ok(dcos(cluster, "restore", backup_id, "--dry-run")).stdout.splitlines()
    assert human[0] == f"Dry run of a restore of {backup_id}: nothing was changed."
    assert human[1].startswith("  marathon: ") and "4 updated, 2 deleted" in human[1]
    assert "delete (2):" in human and "  /marathon/state/app/intruder" in human
    diff = json.loads(ok(dcos(cluster, "restore", backup_id, "--dry-run", "--json")).stdout)
    assert diff["deleted"] == 2 and diff["updated"] == 4 and len(diff["changes"]) == diff["created"] + 6
    assert snapshot(zk) == damaged and latest_restore(show(cluster, backup_id)) == {}

    chosen = f"/marathon/state/app/{apps[3]}"
    restored = dcos(cluster, "restore", backup_id, "--path", chosen, "--wait")
    assert restored.returncode == 0, restored.stderr
    safety = latest_restore(show(cluster, backup_id))["safety_backup_id"]
    assert restored.stderr.splitlines()[-1].endswith(  # the final line: what changed, and the safety backup
        f"STATUS_READY: 0 created, 1 updated, 0 deleted, {len([n for n in before if n[0].startswith(chosen)]) - 1}"
        f" unchanged; safety backup {safety}"
    )
    now = snapshot(zk)
    assert [n for n in now if n[0].startswith(chosen)] == [n for n in before if n[0].startswith(chosen)]
    assert [n for n in now if not n[0].startswith(chosen)] == [n for n in damaged if not n[0].startswith(chosen)]

    ok(dcos(cluster, "restore", backup_id, "--map", "/marathon=/marathon-copy", "--wait"))
    assert snapshot(zk, "/marathon-copy") == [("/marathon-copy" + p[9:], d, a) for p, d, a in before]
    assert snapshot(zk) == now

    for args, code, words in [
        (["--path", "marathon/state"], 2, "not an absolute znode path"),
        (["--path", "/chronos"], 2, "not under any component's root"),
        (["--map", "/marathon"], 2, "expected SRC=DST"),
        (["--path", "/marathon/never-was"], 1, "does not hold /marathon/never-was"),
    ]:
        result = dcos(cluster, "restore", backup_id, *args)
        assert result.returncode == code and words in result.stderr, (args, result.stderr)
        assert len(result.stderr.splitlines()) == 1
    ok(dcos(cluster, "restore", backup_id, "--wait"))  # the seed's plain restore: everything as backed up
    assert snapshot(zk) == before
    zk.delete("/marathon-copy", recursive=True)


def test_create_chooses_components(seeded):
    cluster, _ = seeded
    backup_id = ok(dcos(cluster, "create", "--label", "only-metronome", "--component", "metronome", "--wait"))
    doc = show(cluster, backup_id.stdout.strip())
    assert list(doc["component_status"]) == ["metronome"] and doc["component_status"]["metronome"]["nodes"] == 0
    unknown = dcos(cluster, "create", "--label", "nope", "--component", "secrets")
    assert unknown.returncode == 2 and unknown.stderr.splitlines() == [
        "error: unknown component secrets: this cluster has marathon, metronome, iam"
    ]


def test_json_outputs_version_and_unknown_routes(seeded):
    cluster, _ = seeded
    assert ok(run_tool("dcos", "--version")).stdout.strip() == __version__
    created = json.loads(ok(dcos(cluster, "create", "--label", "as-json", "--json", "--wait")).stdout)
    assert created["status"] == "STATUS_READY" and created["id"].startswith("as-json-") and created["size"] > 0
    restored = json.loads(ok(dcos(cluster, "restore", created["id"], "--json", "--wait")).stdout)
    assert restored["status"] == "STATUS_READY" and restored["backup_id"] == created["id"]
    assert restored["safety_backup_id"] and restored["component_status"]["marathon"]["stats"]["unchanged"] > 0
    started = json.loads(ok(dcos(cluster, "restore", created["id"], "--json")).stdout)
    assert started["status"] == "STATUS_RESTORING" and started["backup_id"] == created["id"]
    wait_for(lambda: latest_restore(show(cluster, created["id"]))["status"] == "STATUS_READY", what="restore")
    deleted = json.loads(ok(dcos(cluster, "delete", created["id"], "--json")).stdout)
    assert deleted["id"] == created["id"]

    env = dcos_env(cluster)
    with httpx.Client(
        verify=env["DCOS_SSL_VERIFY"], headers={"Authorization": f"token={env['DCOS_ACS_TOKEN']}"}
    ) as http:
        for path in ("/system/v1/backup/v1/nope", "/nothing-here"):
            response = http.get(env["DCOS_URL"] + path)
            assert response.status_code == 404 and response.json()["code"] == "not_found", (path, response.text)
