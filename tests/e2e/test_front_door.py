"""The front door of a dcos-local cluster: every master's Admin Router (Debian's nginx, HTTPS with the
cluster CA), DC/OS's own backup integration sequence through it, the seed's curl of the Exhibitor status,
and everything that must be refused (as JSON, never a 5xx for a client's mistake)."""

from __future__ import annotations

import json
import os
import signal
import ssl
import stat
import subprocess
from pathlib import Path

import httpx
import pytest
from kazoo.exceptions import NoAuthError
from tests.helpers import FORGERIES, forged_tokens, ok, run_tool, wait_for

from dcos_backup.api.models import CREATE, DELETE, LIST, RESTORE
from dcos_backup.iam.store import IAM_PATH
from dcos_backup.iam.tokens import MAX_TOKEN, load_private_key, load_public_key
from dcos_backup.local import security
from dcos_backup.logical import connect
from dcos_backup.master.processes import read_pid, wait_until_gone

pytestmark = pytest.mark.e2e
BACKUP_PERMISSION = "dcos:adminrouter:ops:system-backup"
READY_TIMEOUT = 120  # DC/OS's test waits 60 s for a backup, 120 s for a restore; the machine is shared


def https(cluster) -> httpx.Client:
    """A client that trusts the cluster's CA, and only it."""
    return httpx.Client(verify=ssl.create_default_context(cafile=str(cluster.files.ca_cert)), timeout=30)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"token={token}"}


def login(cluster, uid: str) -> str:
    return security.login(cluster.files, cluster.zk_hosts, uid)


@pytest.fixture(scope="module")
def front(cluster):
    """The shared cluster with a /marathon to back up, a user without permissions, and a superuser token."""
    zk = connect(cluster.zk_hosts)
    zk.ensure_path("/marathon/state/app/front-door")
    zk.stop()
    security.add_user(cluster.files, cluster.zk_hosts, "regular", [])
    return cluster, login(cluster, security.BOOTSTRAP_USER)


def test_dcos_backup_integration_sequence(front):
    """DC/OS's own test_backup.py, step by step, through master 2's Admin Router (the service runs on 1)."""
    cluster, superuser = front
    base = cluster.master(2).admin_router_url
    with https(cluster) as http:
        # Unauthorized: no token -> 401; a user without the permission -> 403.
        assert http.get(base + LIST).status_code == 401
        assert http.get(base + LIST, headers=auth(login(cluster, "regular"))).status_code == 403
        http.headers.update(auth(superuser))

        # 1. delete every existing backup; 2. the list is exactly {}.
        for backup in http.get(base + LIST).json().get("backup_info", []):
            assert http.request("DELETE", base + DELETE, json={"id": backup["id"]}).status_code == 200
        listed = http.get(base + LIST)
        assert listed.status_code == 200 and listed.text == "{}"

        # 3. create: STATUS_BACKING_UP, every component STATUS_UNKNOWN.
        created = http.post(base + CREATE, json={"label": "foo"})
        assert created.status_code == 200
        info = created.json()["backup_info"]
        backup_id = info["id"]
        assert backup_id is not None and info["status"] == "STATUS_BACKING_UP"
        assert info["component_status"] and all(
            c["status"] == "STATUS_UNKNOWN" for c in info["component_status"].values()
        )

        # 4. the backup reaches STATUS_READY, every component READY (STATUS_ERROR anywhere fails).
        def backup() -> dict:
            found = next(b for b in http.get(base + LIST).json()["backup_info"] if b["id"] == backup_id)
            assert "STATUS_ERROR" not in json.dumps(found), found
            return found

        wait_for(
            lambda: (
                backup()["status"] == "STATUS_READY"
                and all(c["status"] == "STATUS_READY" for c in backup()["component_status"].values())
            ),
            timeout=READY_TIMEOUT,
            interval=0.5,
            what="backup STATUS_READY",
        )

        # 5. restore: the answer's id is the restore's own.
        restored = http.post(base + RESTORE, json={"id": backup_id})
        assert restored.status_code == 200
        restore_id = restored.json()["backup_info"]["id"]
        assert restore_id != backup_id

        # 6. the restore shows STATUS_READY in the backup's restores.
        def restore() -> dict:
            return next(r for r in backup()["restores"] if r["id"] == restore_id)

        wait_for(
            lambda: (
                restore()["status"] == "STATUS_READY"
                and all(c["status"] == "STATUS_READY" for c in restore()["component_status"].values())
            ),
            timeout=READY_TIMEOUT,
            interval=0.5,
            what="restore STATUS_READY",
        )

        # 7. deleting by the restore's id is a bad request; 8. by the backup's id it works.
        refused = http.request("DELETE", base + DELETE, json={"id": restore_id})
        assert refused.status_code == 400 and refused.json()["code"] == "invalid_request"
        assert http.request("DELETE", base + DELETE, json={"id": backup_id}).status_code == 200


def test_the_seeds_curl_works_on_every_master(cluster):
    for master in cluster.masters:
        url = f"{master.admin_router_url}/exhibitor/exhibitor/v1/cluster/status"
        result = subprocess.run(
            ["curl", "-sS", "--fail", "--cacert", str(cluster.files.ca_cert), url], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        statuses = json.loads(result.stdout)
        assert sorted(s["hostname"] for s in statuses) == sorted(m.member.host for m in cluster.masters)
        assert all(s["code"] == 3 and s["description"] == "serving" for s in statuses)
        assert sum(s["isLeader"] for s in statuses) == 1
        untrusted = subprocess.run(["curl", "-sS", "--fail", url], capture_output=True, text=True)
        assert untrusted.returncode != 0  # a certificate of the cluster's own CA, not a public one


def test_exhibitor_status_is_served_while_the_backup_service_restarts(cluster):
    """Master 1's service is killed and kept down (its supervisor frozen) while every Admin Router is asked:
    master 1's answers the Exhibitor status and a JSON 503 for the API; the other masters' services answer."""
    supervisor = read_pid(Path(cluster.service["pid_file"]))
    child_pid_file = Path(cluster.service["child_pid_file"])
    service = read_pid(child_pid_file)
    token = login(cluster, security.BOOTSTRAP_USER)
    os.kill(supervisor, signal.SIGSTOP)
    try:
        os.kill(service, signal.SIGKILL)
        assert wait_until_gone([service], timeout=30) == []  # a zombie, its parent frozen: gone all the same
        with https(cluster) as http:
            for master in cluster.masters:
                status = http.get(f"{master.admin_router_url}/exhibitor/exhibitor/v1/cluster/status")
                assert status.status_code == 200 and len(status.json()) == len(cluster.masters)
                api = http.get(master.admin_router_url + LIST, headers=auth(token))
                if master.id == 1:
                    assert api.status_code == 503 and api.json()["code"] == "service_unavailable"
                else:
                    assert api.status_code == 200, api.text
    finally:
        os.kill(supervisor, signal.SIGCONT)
    wait_for(lambda: read_pid(child_pid_file) not in (None, service), timeout=60, what="the service's restart")
    with https(cluster) as http:
        wait_for(
            lambda: _status(http, cluster.master(1).admin_router_url + LIST, token) == 200,
            timeout=60,
            what="the backup API through the Admin Router again",
        )


def _status(http: httpx.Client, url: str, token: str) -> int:
    try:
        return http.get(url, headers=auth(token)).status_code
    except httpx.TransportError:
        return 0


@pytest.mark.parametrize("kind", FORGERIES)
def test_bad_tokens_are_401_through_the_admin_router_and_on_the_socket(cluster, kind):
    files = cluster.files
    token = forged_tokens(load_private_key(files.iam_private_key), load_public_key(files.iam_public_key))[kind]
    with https(cluster) as router, httpx.Client(transport=httpx.HTTPTransport(uds=cluster.service["socket"])) as sock:
        through_router = router.get(cluster.master(1).admin_router_url + LIST, headers=auth(token))
        on_socket = sock.get("http://local" + LIST, headers=auth(token))
    for response in (through_router, on_socket):
        assert response.status_code == 401, (kind, response.text)
        assert response.json()["code"] == "unauthorized" and len(response.json()["errors"]) == 1


def test_the_admin_routers_own_refusals_are_json(cluster):
    base = cluster.master(1).admin_router_url
    token = login(cluster, security.BOOTSTRAP_USER)
    with https(cluster) as http:
        too_big = http.post(base + CREATE, content=b"{" + b" " * 70000 + b"}", headers=auth(token))
        assert too_big.status_code == 413 and too_big.json()["code"] == "too_large"
        unknown = http.get(base + "/nothing/here")
        assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"
        huge = http.get(base + LIST, headers={"Authorization": "token=" + "a" * 40000})
        assert huge.status_code == 400 and huge.json()["code"] == "invalid_request"
        long_token = http.get(base + LIST, headers={"Authorization": "token=" + "a" * (MAX_TOKEN + 100)})
        assert long_token.status_code == 401 and "longer than" in long_token.json()["errors"][0]


def test_iam_commands_grant_access_at_once(cluster):
    """dcos-local iam add-user / login / grant: 403, then 200 right after the grant."""
    ok(run_tool("dcos-local", "iam", "add-user", "carol", cluster_dir=cluster.dir))
    login_ = ok(run_tool("dcos-local", "iam", "login", "carol", "--ttl", "1h", cluster_dir=cluster.dir))
    token = login_.stdout.strip()
    assert login_.stdout.count("\n") == 1 and token.count(".") == 2  # the token, nothing else
    url = cluster.master(3).admin_router_url + LIST
    with https(cluster) as http:
        refused = http.get(url, headers=auth(token))
        assert refused.status_code == 403 and BACKUP_PERMISSION in refused.json()["errors"][0]
        ok(run_tool("dcos-local", "iam", "grant", "carol", BACKUP_PERMISSION, cluster_dir=cluster.dir))
        assert http.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    unknown = run_tool("dcos-local", "iam", "login", "nobody-here", cluster_dir=cluster.dir)
    assert unknown.returncode == 1 and len(unknown.stderr.splitlines()) == 1


def test_secrets_are_private_and_the_users_unreadable_without_credentials(cluster):
    files = cluster.files
    private = [files.ca_key, files.iam_private_key, files.zk_credentials, files.token_file]
    private += [files.master_key(m.id) for m in cluster.masters]
    for path in private:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    zk = connect(cluster.zk_hosts)
    try:
        with pytest.raises(NoAuthError):
            zk.get(IAM_PATH)
    finally:
        zk.stop()
