"""The scratch ZooKeeper of drills (``master/scratch.py``): a real standalone server on loopback that is
always killed and removed, whatever happens while it is set up or used."""

from __future__ import annotations

import psutil
import pytest

from dcos_backup.errors import ClusterError
from dcos_backup.logical import ZkSpec, connect
from dcos_backup.master.fourlw import four_letter_word
from dcos_backup.master.scratch import HOST, ScratchZooKeeper

pytestmark = pytest.mark.e2e


def test_it_serves_on_loopback_with_a_super_user_then_is_gone(tmp_path):
    with ScratchZooKeeper(tmp_dir=tmp_path) as zk:
        directory, pid = zk.layout.exhibitor_dir, zk._proc.pid
        assert directory.stat().st_mode & 0o777 == 0o700 and zk.hosts.startswith(f"{HOST}:")
        assert "Mode: standalone" in four_letter_word(HOST, zk.port, "srvr")
        assert four_letter_word(HOST, zk.port, "stat") != "" and "not in the whitelist" in four_letter_word(
            HOST, zk.port, "stat"
        )
        client = connect(ZkSpec.parse(zk.hosts, auth=[zk.auth]))
        client.create("/locked", b"x", acl=[])  # nobody may read it ...
        assert client.get("/locked")[0] == b"x"  # ... but the super user
        client.stop()
        with pytest.raises(RuntimeError), ScratchZooKeeper(tmp_dir=tmp_path):
            raise RuntimeError("the drill failed")
        assert sorted(tmp_path.iterdir()) == [directory]  # the inner one is gone, this one is not
    assert list(tmp_path.iterdir()) == [] and not psutil.pid_exists(pid)


def test_a_failing_fill_or_a_server_that_cannot_start_leaves_nothing(tmp_path):
    def fail(_):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"), ScratchZooKeeper(fail, tmp_path):
        pass
    assert list(tmp_path.iterdir()) == []
    with (
        pytest.raises(ClusterError, match="the scratch ZooKeeper did not start"),
        ScratchZooKeeper(tmp_dir=tmp_path, java="false"),
    ):
        pass
    assert list(tmp_path.iterdir()) == []
