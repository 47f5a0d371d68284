"""Mapping ZooKeeper's srvr replies to Exhibitor's status codes, and talking 4lw to a live socket."""

import socket
import threading

from tests.helpers import run_tool

from dcos_backup.exhibitor.config import NodeConfig
from dcos_backup.exhibitor.status import (
    DOWN,
    NOT_SERVING,
    SERVING,
    MemberStatus,
    is_healthy,
    member_status,
    status_from_srvr,
)
from dcos_backup.master.member import Member

LEADER = "Zookeeper version: 3.8.0\nLatency min/avg/max: 0/0.0/0\nZxid: 0x100000002\nMode: leader\nNode count: 5\n"


def test_srvr_modes():
    assert status_from_srvr(LEADER) == (SERVING, True)
    assert status_from_srvr(LEADER.replace("leader", "follower")) == (SERVING, False)
    assert status_from_srvr(LEADER.replace("leader", "observer")) == (SERVING, False)
    assert status_from_srvr("This ZooKeeper instance is not currently serving requests\n") == (NOT_SERVING, False)
    assert status_from_srvr(None) == (DOWN, False)
    assert status_from_srvr("") == (NOT_SERVING, False)


def test_unreachable_member_is_down_not_missing():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    status = member_status(Member(1, "127.0.0.1", client_port=port), timeout=0.5)
    assert status == MemberStatus(1, "down", "127.0.0.1", False)
    assert status.to_dict() == {"code": 1, "description": "down", "hostname": "127.0.0.1", "isLeader": False}


def test_live_socket_reply_is_parsed():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]

    def answer():
        conn, _ = server.accept()
        assert conn.recv(4) == b"srvr"
        conn.sendall(LEADER.encode())
        conn.close()

    thread = threading.Thread(target=answer)
    thread.start()
    status = member_status(Member(1, "127.0.0.1", client_port=port))
    thread.join()
    server.close()
    assert (status.code, status.description, status.isLeader) == (3, "serving", True)


def test_healthy_needs_all_serving_and_one_leader():
    s = lambda code, leader: MemberStatus(code, "x", "h", leader)  # noqa: E731
    assert is_healthy([s(3, True), s(3, False), s(3, False)])
    assert not is_healthy([s(3, True), s(1, False), s(3, False)])
    assert not is_healthy([s(3, False), s(3, False), s(3, False)])
    assert not is_healthy([s(3, True), s(3, True), s(3, False)])


def test_dcos_exhibitor_status_prints_a_titled_table_like_dcos_local(tmp_path):
    with socket.socket() as s:  # ports nobody listens on: every member down
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    members = tuple(Member(n, "127.0.0.1", client_port=port) for n in (1, 2))
    cfg = NodeConfig(id=2, members=members, exhibitor_dir=tmp_path / "master-2")
    cfg.write()
    result = run_tool("dcos-exhibitor", "status", "--config", str(cfg.layout.node_config))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "ZooKeeper ensemble seen from master 2" in lines[0]
    assert all(word in result.stdout for word in ("master", "host", "code", "state", "leader"))
    assert result.stdout.count("down") == 2
