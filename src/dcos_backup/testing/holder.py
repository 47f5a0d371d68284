"""Holds the ephemeral znodes a live DC/OS cluster has (Marathon's leader latch, Mesos' master info).

Ephemeral nodes vanish with their session, so a process must keep one open: ``dcos-local seed`` starts
this module detached (``python -m dcos_backup.testing.holder``) and ``dcos-local down`` stops it.
Backups must skip these nodes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import threading

from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError

EPHEMERAL_NODES = {
    "/marathon/leader/member_0000000000": b"127.0.0.1:8080",
    "/marathon/leader-curator/_c_4f2b-latch-0000000000": b"127.0.0.1:8080",
    "/mesos/json.info_0000000001": json.dumps({"hostname": "master-1", "port": 5050}).encode(),
    "/mesos/log_replicas/0000000001": b"replica-1",
}


def ensure_nodes(client: KazooClient) -> None:
    for path, data in EPHEMERAL_NODES.items():
        with contextlib.suppress(NodeExistsError):
            client.create(path, data, ephemeral=True, makepath=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--zk", required=True)
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    client = KazooClient(hosts=args.zk, timeout=10)
    client.start(timeout=30)
    while not stop.is_set():
        # Again every round: a session expiry drops them. Errors are retried next round.
        with contextlib.suppress(Exception):
            ensure_nodes(client)
        stop.wait(2)
    client.stop()
    client.close()


if __name__ == "__main__":
    main()
