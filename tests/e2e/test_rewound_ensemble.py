"""A client whose ensemble is rewound under it (issue 25 item 3): rebuilt empty here, the hardest case,
its last zxid far ahead of the ensemble's. ZooKeeper refuses such a client's reconnects; the client made by
:func:`dcos_backup.logical.connect` (the service's, the user store's) starts a fresh session instead, as
soon as the rebuilt ensemble serves."""

from __future__ import annotations

import shutil
import time

import pytest
from tests.helpers import wait_for

from dcos_backup.local import cluster as local_cluster
from dcos_backup.logical import connect

pytestmark = pytest.mark.e2e


def test_a_client_ahead_of_an_ensemble_rebuilt_empty_gets_a_fresh_session_at_once(make_cluster):
    c = make_cluster(masters=1)
    client = connect(c.zk_hosts)
    try:
        for i in range(20):
            client.create(f"/before-{i}", b"x")
        assert client.last_zxid > 0
        local_cluster.stop_master(c, 1)
        wait_for(lambda: not client.connected, what="the client to see the ensemble down")
        layout = c.master(1).layout
        myid = layout.myid_file.read_bytes() if layout.myid_file.exists() else None
        for directory in (layout.snapshots_dir, layout.logs_dir):
            shutil.rmtree(directory, ignore_errors=True)
        if myid is not None:
            layout.myid_file.write_bytes(myid)
        local_cluster.start_master(c, 1, wait=True)
        serving = time.monotonic()
        wait_for(lambda: client.connected, timeout=30, what="a fresh session on the rebuilt ensemble")
        took = time.monotonic() - serving
        assert client.exists("/before-0") is None  # it is the rebuilt (empty) ensemble
        client.create("/after", b"y")
        assert took < 5, f"the client needed {took:.1f}s after the ensemble served"
    finally:
        client.stop()
        client.close()
