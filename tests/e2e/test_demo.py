"""The quick-start demo (``dcos-local demo``, run by scripts/demo.sh) from start to purge."""

from __future__ import annotations

import pytest
from tests.helpers import free_subnet, ok, run_tool

pytestmark = pytest.mark.e2e


def test_quick_start_demo_runs_end_to_end(tmp_path):
    directory = tmp_path / "demo"
    result = ok(run_tool("dcos-local", "demo", "--apps", "30", "--dir", str(directory), "--subnet", free_subnet()))
    out = result.stdout
    # Every step runs the public command an operator would type, and shows it.
    for command in (
        "$ dcos-local up",
        '$ eval "$(dcos-local env 1)"',
        "$ dcos-local seed --apps 30",
        "$ curl -sS --fail --cacert",
        "/exhibitor/exhibitor/v1/cluster/status",
        "$ dcos-local status",
        "$ dcos backup create --label=pre-upgrade --wait",
        "$ dcos-zk backup",
        "$ dcos-zk verify",
        "$ dcos backup restore",
        "$ dcos-local down --purge",
    ):
        assert command in out, command
    assert "seeded /marathon" in out and "OK:" in out and "tree digest" in out
    assert "restores[-1].component_status.marathon.status = STATUS_READY" in out
    assert '"description":"serving"' in out  # the seed's curl, through the Admin Router
    assert "znodes identical" in out and "every step passed" in out
    assert not directory.exists()  # purged: nothing left running or on disk
