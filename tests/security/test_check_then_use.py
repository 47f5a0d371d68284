"""Check-then-use (issue 15 item 8): a restore applies the archive bytes whose sha256 it checked.

The archive is swapped for another backup's while the restore takes its safety backup (the job held at a
stable point: its live read stops at a gate), as a new file, rewritten in place, encrypted, or as a new S3
object. The restore must then apply what it checked (the first backup's tree) or end STATUS_ERROR with the
tree as it was: never STATUS_READY with the other backup's tree.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.helpers import marathon_chroot, wait_for

from dcos_backup.catalog.models import BackupRecord, Status
from dcos_backup.catalog.storage import LocalStorage, Storage, open_storage
from dcos_backup.jobs.engine import ZkEngine
from dcos_backup.jobs.service import BackupService
from dcos_backup.storage.crypto import EncryptionKey
from dcos_backup.testing.faulty_engine import FaultyEngine
from dcos_backup.testing.trees import snapshot

pytestmark = pytest.mark.e2e

KEY = EncryptionKey(bytes(range(32)))
ARCHIVE = "marathon.dcosbkp"


def replace_file(storage: Storage, victim: str, other: bytes) -> None:
    path = storage.archive_path(victim, ARCHIVE)
    swap = path.with_name("swap")
    swap.write_bytes(other)
    os.replace(swap, path)


def rewrite_in_place(storage: Storage, victim: str, other: bytes) -> None:
    with open(storage.archive_path(victim, ARCHIVE), "r+b") as f:
        f.write(other)
        f.truncate()


def replace_object(storage: Storage, victim: str, other: bytes) -> None:
    storage.objects.put(f"{victim}/{ARCHIVE}", other)


def stored_bytes(storage: Storage, backup_id: str) -> bytes:
    with storage.objects.get(f"{backup_id}/{ARCHIVE}") as raw:
        return raw.read()


def ready(service: BackupService, label: str) -> BackupRecord:
    record = service.create(label)
    return wait_for(lambda: (r := service.get(record.id)).status != Status.BACKING_UP and r, what="backup")


@pytest.fixture(
    params=["local, file replaced", "local, rewritten in place", "encrypted, rewritten in place", "s3, new object"]
)
def storage_and_swap(request, tmp_path: Path) -> tuple[Storage, Callable[[Storage, str, bytes], None]]:
    if request.param == "s3, new object":
        bucket, endpoint = request.getfixturevalue("s3_bucket"), request.getfixturevalue("s3_endpoint")
        return open_storage(f"s3://{bucket}/b", endpoint, KEY), replace_object
    key = KEY if request.param.startswith("encrypted") else None
    swap = replace_file if request.param.endswith("replaced") else rewrite_in_place
    return LocalStorage(tmp_path / "backups", key), swap


def test_an_archive_swapped_after_its_check_is_never_what_the_restore_applies(cluster, storage_and_swap):
    storage, swap = storage_and_swap
    with marathon_chroot(cluster, apps=20, seed=8) as (hosts, zk):
        engine = FaultyEngine(ZkEngine(hosts))
        service = BackupService(storage, engine, dcos_version="2.2.0")
        try:
            checked = ready(service, "checked")
            tree_a = snapshot(zk)
            app = "/marathon/state/app/" + sorted(zk.get_children("/marathon/state/app"))[0]
            zk.set(app, b'{"id": "the other backup"}')
            other = ready(service, "other")
            tree_b = snapshot(zk)
            assert tree_a != tree_b

            engine.gate_after = 5
            engine.gate = gate = threading.Event()  # the safety backup's read stops here: a stable point
            service.restore(checked.id)
            wait_for(lambda: str((service.progress(checked.id) or {}).get("phase", "")).startswith("safety backup"))
            swap(storage, checked.id, stored_bytes(storage, other.id))
            gate.set()

            restore = wait_for(lambda: (r := service.get(checked.id).latest_restore).status != Status.RESTORING and r)
            if restore.status == Status.READY:
                assert snapshot(zk) == tree_a, "READY with a tree other than the checked archive's"
            else:
                assert restore.status == Status.ERROR and snapshot(zk) == tree_b, restore.reason
        finally:
            service.close()
            engine.real.close()
