"""Processes dcos-local runs beside the masters: the ephemeral-node holder and the backup service.

Each lives in the cluster directory (``run/`` for pid files, logs beside them); the functions take that
directory and what the process needs, not the cluster, so that :mod:`.cluster` can use them.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import httpx

from dcos_backup.errors import ClusterError
from dcos_backup.master.processes import last_lines, live_process, python_module_command, spawn_detached, terminate

SERVICE_PORT = 8100
SERVICE_MODULE = "dcos_backup.cli.service"
SUPERVISE_MODULE = "dcos_backup.local.supervise"
HOLDER_MODULE = "dcos_backup.testing.holder"


def _run_dir(cluster_dir: Path) -> Path:
    return cluster_dir / "run"


def _pid_files(cluster_dir: Path) -> dict[Path, str]:
    """Each pid file of these processes, with the marker its process's command line has."""
    run_dir = _run_dir(cluster_dir)
    return {
        run_dir / "service.pid": SUPERVISE_MODULE,
        run_dir / "service-child.pid": SERVICE_MODULE,
        run_dir / "holder.pid": HOLDER_MODULE,
    }


def pid_files(cluster_dir: Path) -> list[Path]:
    return list(_pid_files(cluster_dir))


def start_holder(cluster_dir: Path, zk_hosts: str) -> None:
    """Keep the cluster's ephemeral nodes alive (idempotent)."""
    pid_file = _run_dir(cluster_dir) / "holder.pid"
    if live_process(pid_file, HOLDER_MODULE) is not None:
        return
    spawn_detached(python_module_command(HOLDER_MODULE, "--zk", zk_hosts), cluster_dir / "holder.log", pid_file)


def service_available() -> bool:
    return importlib.util.find_spec(SERVICE_MODULE) is not None


def start_service(cluster_dir: Path, host: str, zk_hosts: str) -> dict[str, str]:
    """Run the backup service on ``host`` under a restart-always supervisor; returns its cluster.json entry."""
    from dcos_backup.service.auth import generate_token_file

    run_dir = _run_dir(cluster_dir)
    info = {
        "url": f"http://{host}:{SERVICE_PORT}",
        "token_file": str(cluster_dir / "secrets" / "backup-token"),
        "log_file": str(cluster_dir / "service.log"),
        "pid_file": str(run_dir / "service.pid"),
        "child_pid_file": str(run_dir / "service-child.pid"),
        "storage_dir": str(cluster_dir / "backups"),
    }
    if not Path(info["token_file"]).exists():
        generate_token_file(Path(info["token_file"]))
    if live_process(Path(info["pid_file"]), SUPERVISE_MODULE) is None:
        command = python_module_command(
            SERVICE_MODULE,
            *("--zk", zk_hosts, "--storage", info["storage_dir"], "--token-file", info["token_file"]),
            *("--host", host, "--port", str(SERVICE_PORT)),
        )
        spawn_detached(
            python_module_command(
                SUPERVISE_MODULE,
                *("--name", "dcos-backup-service", "--child-pid-file", info["child_pid_file"]),
                *("--output", info["log_file"], "--", *command),
            ),
            cluster_dir / "supervise-service.log",
            Path(info["pid_file"]),
        )
    wait_for_service(info)
    return info


def wait_for_service(info: dict[str, str], timeout: float = 30.0) -> None:
    """Wait until the service answers its health check; fail with its last log line if it cannot start."""
    url = info["url"] + "/system/v1/backup/v1/health"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if live_process(Path(info["pid_file"]), SUPERVISE_MODULE) is None:
            break
        time.sleep(0.2)
    why = last_lines(Path(info["log_file"])) or "no log"
    raise ClusterError(f"the backup service did not start at {info['url']}: {why} (log: {info['log_file']})")


def stop_all(cluster_dir: Path) -> None:
    for pid_file, marker in _pid_files(cluster_dir).items():
        proc = live_process(pid_file, marker)
        if proc is not None:
            terminate(proc)
        pid_file.unlink(missing_ok=True)
