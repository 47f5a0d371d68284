"""Is this master's ZooKeeper running? Physical backup and restore must never race a live server.

Three independent checks, any of which says "running": systemd's ``dcos-exhibitor`` unit (where systemd
manages it), the supervisor's pid files (ours, and DC/OS Exhibitor's ``zk.pid``), and a live look at
the processes and the client port: a server that holds the data directory cannot hide from all three.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import psutil

from dcos_backup.errors import Conflict
from dcos_backup.master.layout import MasterLayout
from dcos_backup.master.processes import live_process, port_open

SYSTEMD_UNIT = "dcos-exhibitor"
DCOS_ZK_MODULE = "dcos_backup.cli.dcos_zk"  # how the supervisor starts the archiver


def systemd_active(unit: str = SYSTEMD_UNIT) -> bool:
    if not Path("/run/systemd/system").is_dir() or shutil.which("systemctl") is None:
        return False
    result = subprocess.run(["systemctl", "is-active", "--quiet", unit], check=False)
    return result.returncode == 0


def processes_holding(layout: MasterLayout) -> list[psutil.Process]:
    """Processes whose command line names this exhibitor dir (its zoo.cfg, data dirs or node config).

    Other ``dcos-zk`` commands (the archiver among them) are left out: they coordinate through the
    data-dir lock, and one that has just released it may still be exiting.
    """
    marker = str(layout.exhibitor_dir.resolve())
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if any(marker in part for part in cmdline) and not _is_self_or_parent(proc) and not _is_dcos_zk(cmdline):
            found.append(proc)
    return found


def _is_dcos_zk(cmdline: list[str]) -> bool:
    return any(part.endswith("/dcos-zk") or part in ("dcos-zk", DCOS_ZK_MODULE) for part in cmdline[:3])


def _is_self_or_parent(proc: psutil.Process) -> bool:
    me = psutil.Process()
    return proc.pid == me.pid or proc.pid in {p.pid for p in me.parents()}


def client_port_open(layout: MasterLayout) -> str | None:
    """``host:port`` if the client port named in this master's zoo.cfg accepts connections."""
    try:
        settings = dict(line.split("=", 1) for line in layout.zoo_cfg.read_text().splitlines() if "=" in line)
    except OSError:
        return None
    host = settings.get("clientPortAddress", "127.0.0.1").strip()
    try:
        port = int(settings.get("clientPort", "2181"))
    except ValueError:
        return None
    return f"{host}:{port}" if port_open(host, port) else None


def how_to_stop(layout: MasterLayout) -> str:
    try:
        master_id = json.loads(layout.node_config.read_text())["id"]
        if layout.local_cluster_file.exists():
            return f"dcos-local stop-zk {master_id}"
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return "systemctl stop dcos-exhibitor"


def ensure_not_running(layout: MasterLayout) -> None:
    """Raise Conflict naming what runs and how to stop it."""
    reasons = []
    if systemd_active():
        reasons.append(f"systemd unit {SYSTEMD_UNIT} is active")
    for pid_file in layout.pid_files:
        proc = live_process(pid_file)
        if proc is not None and proc.pid != psutil.Process().pid:
            reasons.append(f"pid {proc.pid} from {pid_file.relative_to(layout.exhibitor_dir)} is alive")
    holders = processes_holding(layout)
    if holders:
        reasons.append("process " + ", ".join(str(p.pid) for p in holders) + " uses this data directory")
    address = client_port_open(layout)
    if address:
        reasons.append(f"a server answers on its client port {address}")
    if reasons:
        raise Conflict(
            f"ZooKeeper of this master is running ({'; '.join(reasons)}); stop it first: {how_to_stop(layout)}"
        )
