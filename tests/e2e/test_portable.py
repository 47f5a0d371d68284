"""Portable backups: ``dcos backup download`` writes one self-contained file, ``dcos backup upload`` adds it to
another cluster's catalog under the same id after checking it whole. A file that is not a backup, one with a
damaged or missing archive, and an id that exists each get one clear error and change nothing; the upload
route needs a token; and a backup moved to a second cluster (other subnet, same key file) restores there
byte for byte."""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
import uuid

import pytest
from tests.helpers import (
    create_ready,
    marathon_chroot,
    ok,
    restore_ended,
    run_tool,
    service_api,
    start_cluster,
    wait_for,
)

from dcos_backup.api.models import RESTORE
from dcos_backup.api.paths import DOWNLOAD, UPLOAD
from dcos_backup.catalog.portable import MARKER
from dcos_backup.catalog.storage import LocalStorage
from dcos_backup.local import cluster as local_cluster
from dcos_backup.logical import connect
from dcos_backup.storage.crypto import MAGIC, EncryptionKey
from dcos_backup.testing.seed import seed_marathon
from dcos_backup.testing.trees import snapshot

pytestmark = pytest.mark.e2e

KEY = EncryptionKey(bytes(range(32)))


@contextlib.contextmanager
def catalog(cluster, root, apps: int, seed: int):
    """A chroot with Marathon's state and a service on it, over its own catalog at ``root``."""
    with marathon_chroot(cluster, apps, seed) as (hosts, zk), service_api(LocalStorage(root, KEY), hosts) as api:
        yield api.http, zk


@pytest.fixture
def two_catalogs(cluster, tmp_path):
    """Two "clusters" (chroots with different trees, each its service and catalog) ``a`` and ``b``."""
    with catalog(cluster, tmp_path / "a", 15, 2) as (http_a, zk_a), catalog(cluster, tmp_path / "b", 4, 7) as b:
        yield http_a, zk_a, *b, tmp_path


def members(blob: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar}


def tar_of(parts: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in parts.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_download_upload_round_trip_and_every_bad_file_changes_nothing(two_catalogs):
    http_a, zk_a, http_b, zk, root = two_catalogs
    wanted = snapshot(zk_a)
    doc = create_ready(http_a, "moving")
    response = http_a.get(DOWNLOAD, params={"id": doc["id"]})
    assert response.status_code == 200 and response.headers["content-type"] == "application/x-tar"
    blob = response.content
    parts = members(blob)
    archive = doc["component_status"]["marathon"]["archive"]
    archives = [doc["component_status"][c]["archive"] for c in sorted(doc["component_status"])]
    assert list(parts) == [MARKER, "backup.json", *archives] and archive in archives
    assert json.loads(parts["backup.json"])["id"] == doc["id"] and parts[archive].startswith(MAGIC)
    assert parts[archive] == (root / "a" / doc["id"] / archive).read_bytes()  # as stored: still encrypted

    damaged = dict(parts)
    damaged[archive] = parts[archive][:100] + bytes([parts[archive][100] ^ 1]) + parts[archive][101:]
    not_ready = dict(parts)
    not_ready["backup.json"] = parts["backup.json"].replace(b'"STATUS_READY"', b'"STATUS_ERROR"', 1)
    refusals = {
        "random bytes": (b"\x00garbage" * 1000, 422, "not a dcos-backup file"),
        "a tar of something else": (tar_of({"etc/passwd": b"root:x:0:0"}), 422, "not a dcos-backup file"),
        "archive missing": (tar_of({k: parts[k] for k in (MARKER, "backup.json")}), 422, "missing"),
        "archive damaged": (tar_of(damaged), 422, "fails its checksum"),
        "cut short": (blob[: len(blob) // 2], 422, ""),
        "not READY": (tar_of(not_ready), 422, "not READY"),
    }
    for what, (body, status, message) in refusals.items():
        reply = http_b.post(UPLOAD, content=body)
        assert reply.status_code == status and message in reply.json()["errors"][0], (what, reply.text)
        assert not list((root / "b").iterdir()), what  # nothing stored
    assert http_b.post(UPLOAD, content=blob, headers={"Authorization": "token=nope"}).status_code == 401

    added = http_b.post(UPLOAD, content=blob)
    assert added.status_code == 200, added.text
    assert added.json()["backup_info"]["id"] == doc["id"]
    again = http_b.post(UPLOAD, content=blob)
    assert again.status_code == 409 and "already exists" in again.json()["errors"][0]
    assert http_a.post(UPLOAD, content=blob).status_code == 409

    assert snapshot(zk) != wanted
    assert http_b.post(RESTORE, json={"id": doc["id"]}).status_code == 200
    assert restore_ended(http_b, doc["id"])["restores"][-1]["status"] == "STATUS_READY"
    assert snapshot(zk) == wanted
    assert http_a.get(DOWNLOAD, params={"id": "nope-" + str(uuid.uuid4())}).status_code == 404


def dcos(cluster, *args: str):
    return run_tool("dcos", "backup", *args, cluster_dir=cluster.dir, timeout=300)


def test_a_downloaded_backup_restores_on_a_second_cluster(tmp_path):
    """Two dcos-local clusters (each its subnet) sharing one key file: download from the first, upload to the
    second, restore there: the second's tree is the first's, byte for byte."""
    key_file = tmp_path / "backup.key"
    first = start_cluster(tmp_path / "first", masters=1, encryption_key_file=key_file)
    try:
        second = start_cluster(tmp_path / "second", masters=1, encryption_key_file=key_file)
        try:
            zk_first, zk_second = connect(first.zk_hosts), connect(second.zk_hosts)
            seed_marathon(zk_first, apps=25, seed=6)
            wanted = snapshot(zk_first)
            backup_id = ok(dcos(first, "create", "--label=moving", "--wait")).stdout.strip()
            file = tmp_path / "moving.tar"
            ok(dcos(first, "download", backup_id, str(file)))
            assert dcos(first, "download", backup_id, str(file)).returncode == 2  # never overwritten
            assert ok(dcos(second, "upload", str(file))).stdout.strip() == backup_id
            again = dcos(second, "upload", str(file))
            assert again.returncode == 1 and "already exists" in again.stderr and len(again.stderr.splitlines()) == 1
            seed_marathon(zk_second, apps=5, seed=99)  # the second cluster's own, different state
            assert snapshot(zk_second) != wanted
            ok(dcos(second, "restore", backup_id, "--wait"))
            assert wait_for(lambda: snapshot(zk_second) == wanted, timeout=10, what="the first cluster's tree")
            zk_first.stop()
            zk_second.stop()
        finally:
            local_cluster.down(second)
    finally:
        local_cluster.down(first)
