"""Running the package's console scripts as a user would, and waiting for a state (never for a duration)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

BIN = Path(sys.executable).parent  # the console scripts of the package under test
# Settings from the caller's shell that would point a tool at something else than the cluster under test.
AMBIENT_SETTINGS = ("DCOS_LOCAL_DIR", "DCOS_URL", "DCOS_ACS_TOKEN", "DCOS_SSL_VERIFY", "DCOS_EXHIBITOR_DIR")


def wait_for(predicate: Callable[[], T], timeout: float = 60.0, interval: float = 0.1, what: str = "condition") -> T:
    """Poll ``predicate`` until it returns something true, and return that; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def tool(name: str) -> str:
    """The path of one of the package's console scripts (dcos, dcos-zk, dcos-local, ...)."""
    return str(BIN / name)


def run_tool(
    name: str, *args: str, cluster_dir: Path | None = None, env: dict[str, str] | None = None, timeout: float = 300.0
) -> subprocess.CompletedProcess:
    """Run a console script as a user would, against ``cluster_dir`` (``DCOS_LOCAL_DIR``) if given."""
    full_env = {k: v for k, v in os.environ.items() if k not in AMBIENT_SETTINGS}
    if cluster_dir is not None:
        full_env["DCOS_LOCAL_DIR"] = str(cluster_dir)
    full_env.update(env or {})
    return subprocess.run([tool(name), *args], capture_output=True, text=True, env=full_env, timeout=timeout)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stdout + result.stderr
    return result
