"""Hostile input against the HTTP API (hypothesis): whatever comes in, no 5xx, no traceback, JSON errors.

Runs the real app in-process against the real ensemble (a chroot of the shared cluster)."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dcos_backup.catalog.storage import LocalStorage
from dcos_backup.service.app import PREFIX, build_app
from dcos_backup.service.engine import ZkEngine
from dcos_backup.service.jobs import BackupService
from dcos_backup.zk import connect

pytestmark = pytest.mark.e2e
TOKEN = "fuzz-token"


@pytest.fixture(scope="module")
def http(cluster, tmp_path_factory):
    chroot = f"/fuzz-{uuid.uuid4().hex[:8]}"
    admin = connect(cluster.zk_hosts)
    admin.create(chroot)
    engine = ZkEngine(cluster.zk_hosts + chroot)
    service = BackupService(LocalStorage(tmp_path_factory.mktemp("fuzz")), engine)
    yield TestClient(build_app(service, TOKEN), raise_server_exceptions=False)
    service.close()
    engine.close()
    admin.delete(chroot, recursive=True)
    admin.stop()


segments = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="?#"), max_size=40)
bodies = st.one_of(
    st.none(),
    st.binary(max_size=300),
    st.builds(lambda v: {"label": v}, st.one_of(st.text(max_size=40), st.integers(), st.none(), st.lists(st.text()))),
    st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=4),
)
headers = st.sampled_from(
    [
        {"Authorization": f"Bearer {TOKEN}"},
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    ]
)


def check(response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:200])
    assert "Traceback" not in response.text
    if response.status_code >= 400:
        body = response.json()
        assert set(body) >= {"code", "message"}, body


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=st.sampled_from(["GET", "POST", "DELETE", "PUT", "PATCH"]),
    tail=segments,
    body=bodies,
    header=headers,
    restore=st.booleans(),
)
def test_fuzzed_requests_never_5xx(http, method, tail, body, header, restore):
    path = f"{PREFIX}/backups/{tail}" + ("/restore" if restore else "")
    kwargs = {"headers": header}
    if isinstance(body, bytes):
        kwargs["content"] = body
    elif body is not None:
        kwargs["json"] = body
    try:
        response = http.request(method, path, **kwargs)
    except Exception as exc:  # an URL httpx itself refuses to build is not a server response
        if "Invalid" in type(exc).__name__ or "URL" in str(exc):
            return
        raise
    check(response)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(label=st.text(max_size=60), query=st.text(max_size=30))
def test_fuzzed_labels_and_queries(http, label, query):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    response = http.post(f"{PREFIX}/backups", json={"label": label}, headers=auth)
    check(response)
    if response.status_code == 202:  # a valid label: let the job finish before the next example
        backup_id = response.json()["id"]
        for _ in range(200):
            if http.get(f"{PREFIX}/backups/{backup_id}", headers=auth).json()["status"] != "STATUS_BACKING_UP":
                break
    check(http.get(f"{PREFIX}/backups", params={"label": query}, headers=auth))
