"""Operator polish (issue 27 item 4) that needs no cluster: the service's --version, the hint for a plain-HTTP
DCOS_URL, and one refusal for an id that cannot be a backup's whatever the command."""

from __future__ import annotations

import socket

import pytest

from dcos_backup import __version__
from dcos_backup.local.spec import ClusterSpec
from dcos_backup.testing.tools import ok, run_tool


def test_the_service_answers_version():
    assert ok(run_tool("dcos-backup-service", "--version")).stdout.strip() == f"dcos-backup-service {__version__}"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when we return: nothing listens there


def test_a_plain_http_dcos_url_gets_the_https_hint():
    port = closed_port()
    result = run_tool("dcos", "backup", "list", env={"DCOS_URL": f"http://127.0.0.1:{port}", "DCOS_ACS_TOKEN": "t"})
    assert result.returncode == 3
    assert result.stderr.strip().endswith(f"(DC/OS answers on https: set DCOS_URL=https://127.0.0.1:{port})")
    assert len(result.stderr.splitlines()) == 1
    https = run_tool("dcos", "backup", "list", env={"DCOS_URL": f"https://127.0.0.1:{port}", "DCOS_ACS_TOKEN": "t"})
    assert https.returncode == 3 and "answers on https" not in https.stderr


@pytest.mark.parametrize("command", [["show"], ["show", "--wait"], ["restore"], ["delete"], ["cancel"], ["download"]])
def test_an_id_whose_uuid_is_not_v4_is_refused_alike_by_every_command(command, tmp_path):
    not_v4 = "pre-upgrade-ea6b49f5-79a8-1767-ae78-3f874c90e3da"  # version nibble 1
    args = [*command, not_v4] + ([str(tmp_path / "f.tar")] if command == ["download"] else [])
    # No cluster at this address: the id is refused before anything is asked.
    result = run_tool("dcos", "backup", *args, env={"DCOS_URL": "https://127.0.0.1:9", "DCOS_ACS_TOKEN": "t"})
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [f"error: '{not_v4}' is not a backup id (ids are <label>-<uuid4>)"]


def test_down_says_loudly_that_the_s3_servers_objects_are_gone(tmp_path):
    # A cluster described but not running: down has nothing to stop, and still says what it loses.
    ClusterSpec.define(tmp_path / "s3", subnet="127.201.7", storage="s3", zk_archive="s3://b/repo").save()
    result = ok(run_tool("dcos-local", "down", "--dir", str(tmp_path / "s3")))
    assert result.stderr.startswith("warning: the S3 server at http://127.201.7.1:")
    assert "the backups and the ZooKeeper archive in it are gone" in result.stderr
    ClusterSpec.define(tmp_path / "disk", subnet="127.201.8").save()
    assert ok(run_tool("dcos-local", "down", "--dir", str(tmp_path / "disk"))).stderr == ""
