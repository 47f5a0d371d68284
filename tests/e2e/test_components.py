"""Components and application hooks (issue 14 item 4), through the service's API in-process against the real
shared ensemble: the default registry (marathon, metronome), backups of some components, a root that does
not exist, and hooks before/after a restore sent to a small real HTTP server that records every call."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from tests.helpers import backup_doc, damage, in_process_api, restore_ended, wait_for

from dcos_backup.api.models import CREATE, RESTORE
from dcos_backup.catalog.storage import LocalStorage
from dcos_backup.components.hooks import parse_hook
from dcos_backup.errors import UsageError
from dcos_backup.jobs.engine import ZkEngine
from dcos_backup.jobs.service import BackupService
from dcos_backup.logical import connect
from dcos_backup.testing.seed import seed_marathon
from dcos_backup.testing.trees import snapshot

pytestmark = pytest.mark.e2e


class Application:
    """A recording HTTP endpoint: every call as (method, path, what /marathon looked like at that moment)."""

    def __init__(self, zk) -> None:
        self.calls: list[tuple[str, str, list]] = []
        self.failing: dict[str, int] = {}  # path -> the status to answer with
        app = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                app.calls.append((self.command, self.path, snapshot(zk)))
                status = app.failing.get(self.path, 200)
                body = b'{"message": "leadership abdicated"}' if status == 200 else b"boom"
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_DELETE = _answer

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def env(cluster, tmp_path) -> Iterator[tuple]:
    chroot = f"/comp-{uuid.uuid4().hex[:10]}"
    admin = connect(cluster.zk_hosts)
    admin.create(chroot)
    zk = connect(cluster.zk_hosts + chroot)
    seed_marathon(zk, apps=10, seed=3)
    app = Application(zk)
    hooks = [parse_hook(f"marathon:before={app.url}/before"), parse_hook(f"marathon:after=DELETE {app.url}/v2/leader")]
    engine = ZkEngine(cluster.zk_hosts + chroot)
    service = BackupService(LocalStorage(tmp_path / "backups"), engine, dcos_version="2.2.0", hooks=hooks)
    with in_process_api(service, cluster.zk_hosts + chroot) as api:
        yield api.http, zk, app
    service.close()
    engine.close()
    app.close()
    zk.stop()
    admin.delete(chroot, recursive=True)
    admin.stop()


def created(http, **body) -> dict:
    doc = http.post(CREATE, json={"label": "comp", **body}).json()["backup_info"]
    return wait_for(lambda: (d := backup_doc(http, doc["id"]))["status"] != "STATUS_BACKING_UP" and d)


def test_default_components_some_of_them_and_unknown_ones(env):
    http, zk, app = env
    everything = created(http)
    assert everything["status"] == "STATUS_READY"
    assert {n: (c["root"], c["nodes"]) for n, c in everything["component_status"].items()} == {
        "marathon": ("/marathon", len(snapshot(zk))),
        "metronome": ("/metronome", 0),  # no such root: backed up as empty
    }
    zk.create("/metronome/jobs/nightly", b'{"id": "nightly"}', makepath=True)
    only = created(http, components=["metronome"])
    assert list(only["component_status"]) == ["metronome"] and only["component_status"]["metronome"]["nodes"] == 3
    refused = http.post(CREATE, json={"label": "comp", "components": ["marathon", "secrets"]})
    assert refused.status_code == 400
    assert refused.json()["errors"] == ["unknown component secrets: this cluster has marathon, metronome, iam"]

    # A restore of the metronome-only backup touches /metronome alone, and calls no marathon hook.
    zk.set("/metronome/jobs/nightly", b"changed")
    damage(zk)
    marathon_damaged = snapshot(zk)
    http.post(RESTORE, json={"id": only["id"]})
    restore = restore_ended(http, only["id"])["restores"][-1]
    assert restore["status"] == "STATUS_READY" and list(restore["component_status"]) == ["metronome"]
    assert zk.get("/metronome/jobs/nightly")[0] == b'{"id": "nightly"}'
    assert snapshot(zk) == marathon_damaged and app.calls == []


def test_hooks_are_called_around_a_restore(env):
    http, zk, app = env
    before = snapshot(zk)
    doc = created(http)
    damage(zk)
    damaged = snapshot(zk)
    http.post(RESTORE, json={"id": doc["id"]})
    restore = restore_ended(http, doc["id"])["restores"][-1]
    assert restore["status"] == "STATUS_READY", restore
    assert [(method, path) for method, path, _ in app.calls] == [("POST", "/before"), ("DELETE", "/v2/leader")]
    assert app.calls[0][2] == damaged  # before: nothing changed yet
    assert app.calls[1][2] == before  # after: the application re-reads the restored state

    app.calls.clear()
    http.post(RESTORE, json={"id": doc["id"], "map": "/marathon=/marathon-copy"})
    assert restore_ended(http, doc["id"])["restores"][-1]["status"] == "STATUS_READY"
    assert app.calls == []  # the application does not read /marathon-copy
    zk.delete("/marathon-copy", recursive=True)


@pytest.mark.parametrize("failing", ["/before", "/v2/leader"])
def test_a_failing_hook_fails_the_restore_and_rolls_back(env, failing):
    http, zk, app = env
    doc = created(http)
    damage(zk)
    damaged = snapshot(zk)
    app.failing[failing] = 500
    http.post(RESTORE, json={"id": doc["id"]})
    restore = restore_ended(http, doc["id"])["restores"][-1]
    assert restore["status"] == "STATUS_ERROR"
    method = "POST" if failing == "/before" else "DELETE"
    when = "before" if failing == "/before" else "after"
    assert f"marathon {when}-restore hook {method} {app.url}{failing} failed: HTTP 500: boom" in restore["reason"]
    if failing == "/v2/leader":
        assert "rolled back to the safety backup" in restore["reason"]
    else:
        assert restore["safety_backup_id"] is None  # refused before the safety backup and any change
    assert snapshot(zk) == damaged


def test_an_unreachable_hook_fails_the_restore(env, cluster, tmp_path):
    http, zk, app = env
    doc = created(http)
    app.close()  # nothing listens at its URL any more
    damage(zk)
    damaged = snapshot(zk)
    http.post(RESTORE, json={"id": doc["id"]})
    restore = restore_ended(http, doc["id"])["restores"][-1]
    assert restore["status"] == "STATUS_ERROR" and f"POST {app.url}/before failed" in restore["reason"]
    assert snapshot(zk) == damaged


@pytest.mark.parametrize(
    "spec",
    [
        "marathon=http://x",
        "marathon:during=http://x",
        "marathon:after=",
        "marathon:after=FETCH http://x",
        "m:after=ftp://x",
    ],
)
def test_malformed_hooks_are_usage_errors(spec):
    with pytest.raises(UsageError, match="--hook"):
        parse_hook(spec)
