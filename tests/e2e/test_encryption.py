"""Encryption at rest through the service: ``dcos-local up --encryption-key-file`` creates the key (0600) and
the service encrypts every archive with it; the record names the key's id; the seed procedure still
restores byte for byte. A wrong key, no key and tampered ciphertext each end the restore STATUS_ERROR with
one clear reason, ZooKeeper untouched."""

from __future__ import annotations

import json
import stat

import pytest
from tests.helpers import (
    create_ready,
    damage,
    marathon_chroot,
    ok,
    restore_ended,
    restore_through_cli,
    run_tool,
    seeded_cluster,
    service_api,
    show,
    wait_for,
)

from dcos_backup.api.models import RESTORE
from dcos_backup.catalog.storage import LocalStorage
from dcos_backup.logical import connect
from dcos_backup.storage.crypto import MAGIC, EncryptionKey, load_key
from dcos_backup.testing.trees import snapshot

pytestmark = pytest.mark.e2e

KEY = EncryptionKey(bytes(range(32)))
OTHER = EncryptionKey(bytes(range(32, 64)))


def test_encrypted_cluster_backs_up_and_restores_through_the_cli(tmp_path_factory):
    key_file = tmp_path_factory.mktemp("keys") / "backup.key"
    directory = tmp_path_factory.mktemp("enc-cluster")
    with seeded_cluster(directory, apps=30, seed=3, encryption_key_file=key_file) as cluster:
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        key = load_key(key_file)
        assert json.loads((cluster.dir / "cluster.json").read_text())["encryption_key_file"] == str(key_file)
        zk = connect(cluster.zk_hosts)
        try:
            before = snapshot(zk)
            backup_id = ok(run_tool("dcos", "backup", "create", "--label=enc", cluster_dir=cluster.dir)).stdout.strip()
            doc = wait_for(lambda: (d := show(cluster, backup_id))["status"] == "STATUS_READY" and d, what="READY")
            component = doc["component_status"]["marathon"]
            assert component["encryption"] == {"algorithm": "AES-256-GCM", "key_id": key.id}
            at_rest = (cluster.files.storage_dir / backup_id / component["archive"]).read_bytes()
            assert at_rest.startswith(MAGIC) and len(at_rest) == component["bytes"]
            damage(zk)
            ended = restore_through_cli(cluster, backup_id)
            assert ended["status"] == "STATUS_READY", ended
            assert snapshot(zk) == before
        finally:
            zk.stop()


@pytest.fixture
def chroot(cluster):
    with marathon_chroot(cluster, apps=10, seed=9) as made:
        yield made


def restore_with(hosts: str, storage: LocalStorage, backup_id: str) -> dict:
    """Restore ``backup_id`` with a service over ``storage``; the restore once it ended."""
    with service_api(storage, hosts) as api:
        assert api.http.post(RESTORE, json={"id": backup_id}).status_code == 200
        return restore_ended(api.http, backup_id)["restores"][-1]


def test_wrong_key_missing_key_and_tampered_ciphertext_change_nothing(chroot, tmp_path):
    hosts, zk = chroot
    with service_api(LocalStorage(tmp_path, KEY), hosts) as api:
        doc = create_ready(api.http, "enc")
    assert doc["status"] == "STATUS_READY"
    damage(zk)
    damaged = snapshot(zk)
    for storage, reason in (
        (LocalStorage(tmp_path, OTHER), f"encrypted with the key {KEY.id}, not with this key ({OTHER.id})"),
        (LocalStorage(tmp_path), f"is encrypted (key id {KEY.id}) and no encryption key is configured"),
    ):
        restore = restore_with(hosts, storage, doc["id"])
        assert restore["status"] == "STATUS_ERROR" and reason in restore["reason"], restore
        assert snapshot(zk) == damaged
    archive = tmp_path / doc["id"] / doc["component_status"]["marathon"]["archive"]
    tampered = bytearray(archive.read_bytes())
    tampered[len(tampered) // 2] ^= 0x01
    archive.write_bytes(bytes(tampered))
    restore = restore_with(hosts, LocalStorage(tmp_path, KEY), doc["id"])
    assert restore["status"] == "STATUS_ERROR" and "checksum" in restore["reason"], restore
    assert snapshot(zk) == damaged
