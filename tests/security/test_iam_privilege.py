"""Restoring grants is privilege (issue 26 item 5): a user with the backup permission alone may back the
``iam`` component up (its content never leaves the service for them) but may neither restore it, nor dry-run
its restore, nor download a backup that holds it (the archive names every user and grant): 403 naming
``dcos:superuser``. Nobody moves it elsewhere (``--map``: 400). On the shared cluster's real service."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from tests.helpers import front_door

from dcos_backup.api.auth import BACKUP_PERMISSION
from dcos_backup.cli.client import backup_finished
from dcos_backup.errors import Forbidden, UsageError
from dcos_backup.iam import znodes
from dcos_backup.iam.users import FULL
from dcos_backup.local import security

pytestmark = pytest.mark.e2e


@pytest.fixture
def operator(cluster) -> Iterator[str]:
    """A user with the backup permission only, removed afterwards."""
    uid = f"operator-{uuid.uuid4().hex[:8]}"
    security.add_user(cluster.files, cluster.zk_hosts, uid, [(BACKUP_PERMISSION, FULL)])
    yield uid
    with security.users(cluster.files, cluster.zk_hosts) as store:
        store.update(lambda d: d.users.pop(uid, None))


def test_only_a_superuser_restores_or_downloads_the_users(cluster, operator, tmp_path):
    admin, ops = front_door(cluster), front_door(cluster, operator)
    backup_id = ops.create("iam-priv", ["iam"])["id"]  # backing up reveals nothing to the one who asks
    try:
        doc = ops.wait(backup_id, backup_finished, interval=0.1, timeout=120)
        assert doc["status"] == "STATUS_READY" and sorted(doc["component_status"]) == ["iam"], doc

        refusal = f"user '{operator}' lacks the permission dcos:superuser"
        for attempt in (
            lambda: ops.restore(backup_id),
            lambda: ops.restore(backup_id, [znodes.IAM]),
            lambda: ops.dry_run(backup_id),
            lambda: ops.download(backup_id, tmp_path / "users.tar"),
        ):
            with pytest.raises(Forbidden, match=refusal):
                attempt()
        assert not list(tmp_path.iterdir())  # not a byte of the archive written
        assert ops.show(backup_id)["restores"] in (None, [])  # nothing started

        with pytest.raises(UsageError, match="restored only in place"):
            admin.restore(backup_id, mapping=f"{znodes.IAM}=/stolen")
        assert admin.dry_run(backup_id)["backup_id"] == backup_id  # the superuser may
        assert admin.download(backup_id, tmp_path / "users.tar") > 0
    finally:
        admin.delete(backup_id)
