"""Processes dcos-local runs beside the masters: the ephemeral-node holder and the backup service."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from dcos_backup.errors import ClusterError
from dcos_backup.local.processes import last_lines, live_process, python_module_command, spawn_detached, terminate

if TYPE_CHECKING:
    from dcos_backup.local.cluster import Cluster


def holder_pid_file(cluster: Cluster) -> Path:
    return cluster.dir / "run" / "holder.pid"


def start_holder(cluster: Cluster) -> None:
    """Keep the cluster's ephemeral nodes alive (idempotent)."""
    pid_file = holder_pid_file(cluster)
    if live_process(pid_file, "dcos_backup.local.holder") is not None:
        return
    spawn_detached(
        python_module_command("dcos_backup.local.holder", "--zk", cluster.zk_hosts),
        cluster.dir / "holder.log",
        pid_file,
    )


SERVICE_PORT = 8100
SERVICE_MODULE = "dcos_backup.cli.service"


def service_available() -> bool:
    return importlib.util.find_spec(SERVICE_MODULE) is not None


def start_service(cluster: Cluster) -> dict[str, str]:
    """Run the backup service on master 1 under a restart-always supervisor; returns its cluster.json entry."""
    from dcos_backup.service.auth import generate_token_file

    run_dir = cluster.dir / "run"
    master = cluster.masters[0]
    info = {
        "url": f"http://{master.host}:{SERVICE_PORT}",
        "token_file": str(cluster.dir / "secrets" / "backup-token"),
        "log_file": str(cluster.dir / "service.log"),
        "pid_file": str(run_dir / "service.pid"),
        "child_pid_file": str(run_dir / "service-child.pid"),
        "storage_dir": str(master.exhibitor_dir.parent / "backups"),
    }
    if not Path(info["token_file"]).exists():
        generate_token_file(Path(info["token_file"]))
    if live_process(Path(info["pid_file"]), "dcos_backup.local.supervise") is None:
        command = python_module_command(
            SERVICE_MODULE,
            *("--zk", cluster.zk_hosts, "--storage", info["storage_dir"], "--token-file", info["token_file"]),
            *("--host", master.host, "--port", str(SERVICE_PORT)),
        )
        spawn_detached(
            python_module_command(
                "dcos_backup.local.supervise",
                *("--name", "dcos-backup-service", "--child-pid-file", info["child_pid_file"]),
                *("--output", info["log_file"], "--", *command),
            ),
            cluster.dir / "supervise-service.log",
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
        if live_process(Path(info["pid_file"]), "dcos_backup.local.supervise") is None:
            break
        time.sleep(0.2)
    why = last_lines(Path(info["log_file"])) or "no log"
    raise ClusterError(f"the backup service did not start at {info['url']}: {why} (log: {info['log_file']})")


def stop_all(cluster: Cluster) -> None:
    run_dir = cluster.dir / "run"
    for pid_file, marker in (
        (run_dir / "service.pid", "dcos_backup.local.supervise"),
        (run_dir / "service-child.pid", SERVICE_MODULE),
        (holder_pid_file(cluster), "dcos_backup.local.holder"),
    ):
        proc = live_process(pid_file, marker)
        if proc is not None:
            terminate(proc)
        pid_file.unlink(missing_ok=True)
