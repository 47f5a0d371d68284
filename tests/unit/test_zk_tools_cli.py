"""What an operator and a script see from dcos-zk, dcos-local and dcos-exhibitor (issue 16 items 4 and 6):
versions, JSON results, numbers that agree between commands, and what happens to the replaced data."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import subprocess

import pytest
from tests.helpers import ok, run_tool, tool
from tests.zkfiles import make_exhibitor_dir

from dcos_backup import __version__


@pytest.mark.parametrize("name", ["dcos-zk", "dcos-local", "dcos-exhibitor"])
def test_every_tool_has_version(name):
    assert ok(run_tool(name, "--version")).stdout.strip() == f"{name} {__version__}"


def test_backup_restore_verify_info_speak_json_and_agree_on_the_last_zxid(tmp_path):
    ex = make_exhibitor_dir(tmp_path)
    archive = tmp_path / "zk.tar.gz"
    backup = json.loads(ok(run_tool("dcos-zk", "backup", "--json", str(archive), "--exhibitor-dir", str(ex))).stdout)
    assert backup["archive"] == str(archive) and len(backup["sha256"]) == 64 and backup["files"] == 4
    verify = json.loads(ok(run_tool("dcos-zk", "verify", "--json", str(archive))).stdout)
    restore = json.loads(ok(run_tool("dcos-zk", "restore", "--json", str(archive), "--exhibitor-dir", str(ex))).stdout)
    assert backup["verified"]["last_zxid"] == verify["last_zxid"] == restore["verified"]["last_zxid"]
    assert backup["verified"]["digest"] == verify["digest"] == restore["verified"]["digest"]
    assert restore["myid"] == "2" and restore["files"] == 4
    info = json.loads(ok(run_tool("dcos-zk", "info", "--json", str(archive))).stdout)
    # info does not replay: it names the zxid it has (from file names) for what it is, never "last_zxid"
    assert "last_zxid" not in info and info["newest_file_zxid"] == "0x100000abc"
    text = ok(run_tool("dcos-zk", "info", str(archive))).stdout
    assert "last zxid seen" not in text and "newest file zxid: 0x100000abc" in text


def test_restore_says_what_happens_to_the_replaced_data(tmp_path):
    ex = make_exhibitor_dir(tmp_path)
    archive = tmp_path / "zk.tar.gz"
    ok(run_tool("dcos-zk", "backup", str(archive), "--exhibitor-dir", str(ex)))
    deleted = ok(run_tool("dcos-zk", "restore", "-v", str(archive), "--exhibitor-dir", str(ex)))
    assert "moved the previous data aside" in deleted.stderr
    assert "deleted the previous data (zookeeper.old-" in deleted.stderr
    assert not list(ex.glob("zookeeper.old-*"))
    kept = ok(run_tool("dcos-zk", "restore", "-v", "--keep-old", str(archive), "--exhibitor-dir", str(ex)))
    assert "kept the previous data in" in kept.stderr and len(list(ex.glob("zookeeper.old-*"))) == 1


@pytest.mark.parametrize("command", ["restore", "verify", "dump"])
def test_tmp_dir_help_says_what_this_command_does_with_it(command):
    text = " ".join(ok(run_tool("dcos-zk", command, "--help")).stdout.split())
    assert "--tmp-dir" in text and "beside the archive" not in text and "backup:" not in text


def stderr_on_a_terminal(*args: str) -> tuple[int, str, str]:
    """Run a tool with stderr on a pseudo-terminal (stdout piped): what an operator would see."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([tool(args[0]), *args[1:]], stdout=subprocess.PIPE, stderr=follower, text=True)
    os.close(follower)
    seen = b""
    with contextlib.suppress(OSError):  # EIO once the tool has exited and closed its end
        while chunk := os.read(leader, 4096):
            seen += chunk
    os.close(leader)
    out = proc.communicate(timeout=120)[0]
    return proc.returncode, out, seen.decode(errors="replace")


def test_progress_goes_to_a_terminal_and_never_into_a_pipe(tmp_path):
    ex = make_exhibitor_dir(tmp_path, size=2_000_000)
    archive = tmp_path / "zk.tar.gz"
    rc, out, err = stderr_on_a_terminal("dcos-zk", "backup", str(archive), "--exhibitor-dir", str(ex))
    assert rc == 0 and "backup written" in out and "archiving and checking: " in err and "files" in err
    rc, out, err = stderr_on_a_terminal("dcos-zk", "verify", str(archive))
    assert rc == 0 and ": OK: " in out and "MiB/s" in err
    rc, out, err = stderr_on_a_terminal("dcos-zk", "restore", str(archive), "--exhibitor-dir", str(ex))
    assert rc == 0 and "restored" in out and "files" in err
    piped = ok(run_tool("dcos-zk", "verify", str(archive)))
    assert piped.stderr == ""


@pytest.mark.parametrize("command", ["verify", "restore"])
@pytest.mark.parametrize("url", ["s3://", "s3://onlybucket"])
def test_an_s3_archive_without_a_key_is_one_line_and_exit_2(command, url, tmp_path):
    result = (
        run_tool("dcos-zk", command, url, "--exhibitor-dir", str(tmp_path))
        if command == "restore"
        else (run_tool("dcos-zk", command, url))
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == f"error: {url} is not an s3://bucket/key URL\n"
