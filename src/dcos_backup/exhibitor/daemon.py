"""``dcos-exhibitor``: supervise this master's ZooKeeper and serve the cluster status API.

At every start of ZooKeeper the supervisor writes ``myid`` and ``zoo.cfg`` from the node config, as
Exhibitor does, so a restored data directory always gets this master's identity back. Before the first
start it compares this master's restore mark with the other masters' (:func:`check_restore_marks`): a
master whose data does not come from the restore the others hold is not started.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from dcos_backup.errors import Conflict, MissingDependency
from dcos_backup.exhibitor.config import NodeConfig, render_zoo_cfg
from dcos_backup.exhibitor.metrics import archive_registry
from dcos_backup.exhibitor.status import DESCRIPTIONS, LATENT, SERVING, cluster_status, member_status
from dcos_backup.exhibitor.supervisor import Supervisor
from dcos_backup.master import activity, restore_mark
from dcos_backup.master.processes import python_module_command, write_pid_file
from dcos_backup.master.zookeeper import SLF4J_BINDING, ZK_MAIN
from dcos_backup.physical.continuous.archiver import oldest_unarchived
from dcos_backup.physical.running import DCOS_ZK_MODULE
from dcos_backup.physical.swap import mark_found_data

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger(__name__)

MARK_FIELD = "restoreMark"  # our extra field in the cluster status: this master's restore mark
INSTALL_HINT = "install it with: apt-get update && apt-get install -y zookeeper (Java 17 comes with it)"


def check_dependencies(cfg: NodeConfig) -> None:
    """Fail early, with the fix, when Java or the ZooKeeper jar is missing."""
    if shutil.which(cfg.java) is None:
        raise MissingDependency(f"Java ({cfg.java}) is not installed; {INSTALL_HINT}")
    for entry in cfg.zk_classpath.split(":"):
        if entry and not Path(entry).exists():
            raise MissingDependency(f"the ZooKeeper server ({entry}) is not installed; {INSTALL_HINT}")


def check_port_free(host: str, port: int, what: str) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise Conflict(f"{what} port {host}:{port} is already in use ({exc.strerror})") from exc


def zookeeper_command(cfg: NodeConfig) -> list[str]:
    layout = cfg.layout
    classpath = [str(layout.conf_dir), cfg.zk_classpath]
    if Path(SLF4J_BINDING).exists():
        classpath.append(SLF4J_BINDING)
    return [
        cfg.java,
        f"-Xmx{cfg.heap}",
        *cfg.jvm_flags,
        f"-Dzookeeper.log.dir={layout.zk_dir}",
        "-Dorg.slf4j.simpleLogger.showDateTime=true",
        "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd HH:mm:ss,SSS",
        "-cp",
        ":".join(classpath),
        ZK_MAIN,
        str(layout.zoo_cfg),
    ]


def prepare_data_dirs(cfg: NodeConfig) -> None:
    """Create the DC/OS layout and write ``myid`` and ``zoo.cfg`` from the config (every start).

    A ``dcos-zk restore`` cut short mid-swap is finished or rolled back first, so ZooKeeper never
    starts on a half-swapped data directory; one still running is waited for (it holds the data-dir lock).
    On an archiving master the repository is consulted then (physical/continuous/start_check.py): the epoch
    files are raised above every archived epoch, and an empty data directory is reported loudly.
    """
    from dcos_backup.physical.journal import recover

    layout = cfg.layout
    recover(layout.exhibitor_dir, wait=True)
    for path in (layout.data_dir, layout.log_dir, layout.conf_dir, layout.run_dir):
        path.mkdir(parents=True, exist_ok=True)
    layout.myid_file.write_text(f"{cfg.id}\n")
    layout.zoo_cfg.write_text(render_zoo_cfg(cfg))
    if cfg.archive_repo is not None and cfg.archive_key_file is not None:
        from dcos_backup.physical.continuous.start_check import before_zookeeper_starts

        before_zookeeper_starts(layout, cfg.archive_repo, Path(cfg.archive_key_file))


def archiver_command(cfg: NodeConfig) -> list[str]:
    """``dcos-zk archive`` for this master (its exhibitor dir comes by environment, see :func:`serve`)."""
    assert cfg.archive_repo is not None
    key = ("--repo-key-file", cfg.archive_key_file) if cfg.archive_key_file else ()
    return python_module_command(
        DCOS_ZK_MODULE, "archive", "--repo", cfg.archive_repo, *key, "--stream", cfg.stream, "-v"
    )


def archive_status(cfg: NodeConfig, archiver: Supervisor | None) -> dict[str, object]:
    """The archiver's state (from its state file) and the master's status log, for the API."""
    layout = cfg.layout
    doc: dict[str, object] = {"enabled": cfg.archive_repo is not None, "repo": cfg.archive_repo, "stream": cfg.stream}
    if archiver is not None:
        doc["supervisor"] = archiver.state
        with contextlib.suppress(OSError, ValueError):
            doc.update(json.loads(layout.archiver_state.read_text()))
        if doc.get("archived_at"):
            doc["seconds_since_archived"] = round(time.time() - float(doc["archived_at"]), 3)  # type: ignore[arg-type]
        pending = oldest_unarchived(layout, doc)
        doc["lag_seconds"] = 0.0 if pending is None else round(max(time.time() - pending, 0.0), 3)
    doc["events"] = activity.tail(layout.activity_log)
    return doc


def build_app(cfg: NodeConfig, supervisor: Supervisor | None = None, archiver: Supervisor | None = None) -> FastAPI:
    # Imported here: the CLIs that only start and stop members (dcos-local) need not load the web stack.
    from fastapi import FastAPI
    from fastapi.responses import Response

    app = FastAPI(title="dcos-exhibitor", version="1", docs_url=None, redoc_url=None)

    @app.get("/exhibitor/v1/cluster/status")
    def get_cluster_status() -> list[dict[str, object]]:
        statuses = [s.to_dict() for s in cluster_status(cfg.members)]
        mark = restore_mark.read(cfg.layout.restore_mark)
        for entry, member in zip(statuses, cfg.members, strict=True):
            if member.id != cfg.id:
                continue
            # Before our own ZooKeeper has been started once, Exhibitor calls it latent, not down.
            if supervisor is not None and supervisor.state == "starting" and entry["code"] != 3:
                entry.update(code=LATENT, description=DESCRIPTIONS[LATENT])
            if mark is not None:  # an extra field, on our own entry only, beside DC/OS's four
                entry[MARK_FIELD] = mark.to_dict()
        return statuses

    @app.get("/exhibitor/v1/archive/status")
    def get_archive_status() -> dict[str, object]:
        return archive_status(cfg, archiver)

    registry = archive_registry(cfg.me.host, lambda: archive_status(cfg, archiver))

    @app.get("/exhibitor/v1/metrics", response_class=Response)
    def get_metrics() -> Response:
        """The archiver's metrics (exhibitor/metrics.py), Prometheus's text format; open, as the status is."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


def peers_of(cfg: NodeConfig, timeout: float = 2.0) -> list[restore_mark.Peer]:
    """What every other master's Exhibitor says of itself (status code, restore mark); unreachable ones left out."""
    peers = []
    for member in cfg.members:
        if member.id == cfg.id:
            continue
        try:
            doc = httpx.get(f"{member.exhibitor_url}/exhibitor/v1/cluster/status", timeout=timeout).json()
            entry = next(e for e in doc if e.get("hostname") == member.host)
        except (httpx.HTTPError, ValueError, StopIteration, AttributeError):
            continue
        mark = restore_mark.RestoreMark.from_dict(entry[MARK_FIELD]) if MARK_FIELD in entry else None
        peers.append(restore_mark.Peer(member.id, int(entry.get("code", 1)), mark))
    return peers


def check_restore_marks(cfg: NodeConfig, force: bool = False) -> None:
    """Refuse (Conflict, one line naming the master to restore) to start ZooKeeper on data that would undo,
    or be undone by, a restore the other masters hold; with ``force`` log it and go on."""
    layout = cfg.layout
    mine, peers = restore_mark.read(layout.restore_mark), peers_of(cfg)
    if (mine is None or mine.served) and any(p.mark is not None and not p.mark.served for p in peers):
        # No mark of this data (a served one describes data that has moved on since): restored by another tool
        # (DC/OS's script, tar by hand) from the same archive as the others, perhaps. What the data is decides,
        # not which tool put it there (issue 26 item 6).
        mine = mark_found_data(layout)
    reason = restore_mark.conflict(cfg.id, mine, peers)
    if reason is None:
        return
    if not force:
        activity.record(layout.activity_log, f"ZooKeeper not started: {reason}")
        raise Conflict(reason)
    log.warning("started with --force despite: %s", reason)
    activity.record(layout.activity_log, f"ZooKeeper started with --force despite: {reason}")


def _watch_restore_mark(cfg: NodeConfig, stopped: threading.Event) -> None:
    """Once our ZooKeeper serves, the restore it runs has taken: mark it served (see restore_mark)."""
    me, path = cfg.me, cfg.layout.restore_mark
    while not stopped.wait(1.0):
        mark = restore_mark.read(path)
        if mark is None or mark.served:
            return
        if member_status(me).code == SERVING:
            restore_mark.mark_served(path)
            return


def _start_archiver(cfg: NodeConfig, zookeeper: Supervisor) -> tuple[Supervisor | None, threading.Thread]:
    """With a repository in the config, supervise ``dcos-zk archive`` too, once ZooKeeper's first start
    (and its recovery of an interrupted restore, which needs the data-dir lock alone) is done."""
    layout = cfg.layout
    if cfg.archive_repo is None:
        return None, threading.Thread()
    archiver = Supervisor(
        f"archiver-{cfg.id}",
        archiver_command(cfg),
        output=layout.archiver_log,
        pid_file=layout.archiver_pid_file,
        env={**os.environ, "DCOS_EXHIBITOR_DIR": str(layout.exhibitor_dir)},
        events=layout.activity_log,
    )

    def run() -> None:
        while zookeeper.starts == 0 and zookeeper.state != "stopped":
            time.sleep(0.1)
        if zookeeper.state != "stopped":
            archiver.run()

    thread = threading.Thread(target=run, name="archive-supervisor", daemon=True)
    thread.start()
    return archiver, thread


def serve(cfg: NodeConfig, force: bool = False) -> None:
    """Run until SIGTERM/SIGINT: ZooKeeper under supervision plus the HTTP status API.

    ``force`` starts ZooKeeper even when the restore marks say this master's data is not the others' restore.
    """
    check_dependencies(cfg)
    check_restore_marks(cfg, force)
    me = cfg.me
    check_port_free(me.host, me.client_port, "ZooKeeper client")
    check_port_free(me.host, me.quorum_port, "ZooKeeper quorum")
    check_port_free(me.host, me.election_port, "ZooKeeper election")
    http_sock = socket.socket()
    http_sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        http_sock.bind((me.host, me.exhibitor_port))
    except OSError as exc:
        http_sock.close()
        raise Conflict(f"Exhibitor port {me.host}:{me.exhibitor_port} is already in use ({exc.strerror})") from exc

    layout = cfg.layout
    write_pid_file(layout.exhibitor_pid_file, os.getpid())
    supervisor = Supervisor(
        f"zookeeper-{cfg.id}",
        zookeeper_command(cfg),
        output=layout.console_log,
        pid_file=layout.zookeeper_pid_file,
        prepare=lambda: prepare_data_dirs(cfg),
        events=layout.activity_log,
    )
    thread = threading.Thread(target=supervisor.run, name="zk-supervisor", daemon=True)
    thread.start()
    stopped = threading.Event()
    threading.Thread(target=_watch_restore_mark, args=(cfg, stopped), name="restore-mark", daemon=True).start()
    archiver, archiver_thread = _start_archiver(cfg, supervisor)
    app = build_app(cfg, supervisor, archiver)
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    # uvicorn re-raises the signal that stopped it once it returns, to the handler that was there
    # before; make that a no-op so we, not the default action, decide how the process ends.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    try:
        server.run(sockets=[http_sock])
    finally:
        # uvicorn returns after SIGTERM/SIGINT; take ZooKeeper down cleanly before we exit.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stopped.set()
        supervisor.stop()
        thread.join(timeout=30)
        if archiver is not None:
            # After ZooKeeper: its last pass archives everything ZooKeeper wrote; before we exit, so that
            # the data-dir lock it holds is free for whatever comes after this stop (a restore).
            archiver.stop()
            archiver_thread.join(timeout=30)
        layout.exhibitor_pid_file.unlink(missing_ok=True)
        log.info("dcos-exhibitor %d stopped", cfg.id)
