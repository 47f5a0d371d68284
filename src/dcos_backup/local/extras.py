"""Processes dcos-local runs beside the masters: the ephemeral-node holder and the backup service."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from dcos_backup.local.processes import live_process, python_module_command, spawn_detached, terminate

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


def stop_all(cluster: Cluster) -> None:
    for pid_file, marker in (
        (cluster.dir / "run" / "service.pid", "dcos_backup"),
        (holder_pid_file(cluster), "dcos_backup.local.holder"),
    ):
        proc = live_process(pid_file, marker)
        if proc is not None:
            terminate(proc)
        pid_file.unlink(missing_ok=True)
