"""The smaller holes of issue 24 (item 7): unparseable bodies get the documented error, secrets' files are
checked and named for what they are, downloads are as private as the archives, and the packaged unit signs
records and keeps its secrets out of the shared storage directory."""

from __future__ import annotations

import shlex
import stat
import uuid
from pathlib import Path

import pytest
from tests.helpers import front_door, service_api

from dcos_backup.api.paths import CREATE
from dcos_backup.api.run import ServiceConfig, open_catalog
from dcos_backup.catalog.storage import LocalStorage
from dcos_backup.errors import StorageError, UsageError
from dcos_backup.fsutil import write_private_file
from dcos_backup.iam.store import Credentials
from dcos_backup.logical import connect

UNIT = Path(__file__).resolve().parents[2] / "packaging" / "systemd" / "dcos-backup.service"


@pytest.fixture
def api(cluster, tmp_path):
    chroot = f"/small-{uuid.uuid4().hex[:10]}"
    admin = connect(cluster.zk_hosts)
    admin.create(chroot)
    try:
        with service_api(LocalStorage(tmp_path / "backups"), cluster.zk_hosts + chroot) as in_process:
            yield in_process
    finally:
        admin.delete(chroot, recursive=True)
        admin.stop()
        admin.close()


@pytest.mark.e2e
@pytest.mark.parametrize(
    "body",
    [b"[" * 60_000, b'{"label": "' + b"\xff\xfe" + b'"}', b'{"label": "ok-label", "x": ' + b"[" * 50_000 + b"}"],
    ids=["nested", "invalid utf-8", "nested inside"],
)
def test_an_unparseable_body_is_invalid_request(api, body):
    response = api.http.post(CREATE, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text[:200]
    assert response.json()["code"] == "invalid_request"


def test_a_lax_record_key_file_is_called_a_record_key_file(tmp_path):
    key = tmp_path / "record.key"
    write_private_file(key, b"k" * 32)
    key.chmod(0o644)
    config = ServiceConfig(
        zk_hosts="127.0.0.1:1",
        storage=str(tmp_path / "backups"),
        socket_path=tmp_path / "s.sock",
        iam_public_key=tmp_path / "iam.pem",
        zk_credentials=tmp_path / "zk-credentials",
        record_key_file=key,
    )
    with pytest.raises(UsageError) as refused:
        open_catalog(config)
    assert "record key file" in str(refused.value) and "encryption" not in str(refused.value)


def test_zk_credentials_readable_by_others_are_refused(tmp_path):
    path = tmp_path / "zk-credentials"
    Credentials.generate(path)
    Credentials.read(path)
    path.chmod(0o640)
    with pytest.raises(StorageError, match="readable by other users"):
        Credentials.read(path)


@pytest.mark.e2e
def test_a_download_is_written_0600(cluster, tmp_path):
    with front_door(cluster) as client:
        backup_id = client.create("download-mode")["id"]
        doc = client.wait(backup_id, lambda d: d["status"] != "STATUS_BACKING_UP")
        assert doc["status"] == "STATUS_READY", doc
        target = tmp_path / "backup.tar"
        client.download(backup_id, target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def unit_options() -> dict[str, str]:
    text = UNIT.read_text()
    start = text.index("ExecStart=")
    command = text[start:].split("\n")
    joined = ""
    for line in command:
        joined += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            break
    words = shlex.split(joined.removeprefix("ExecStart="))
    return {w: words[i + 1] for i, w in enumerate(words) if w.startswith("--") and i + 1 < len(words)}


def test_the_packaged_unit_signs_records_and_keeps_secrets_out_of_the_storage():
    options = unit_options()
    assert "--record-key-file" in options
    storage = Path(options["--storage"])
    for secret in ("--zk-credentials", "--record-key-file", "--iam-public-key"):
        assert not Path(options[secret]).is_relative_to(storage), f"{secret} {options[secret]} is inside {storage}"
