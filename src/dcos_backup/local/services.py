"""Processes dcos-local runs beside the masters: the ephemeral-node holder, the backup service and one Admin
Router (nginx) per master.

The service and the Admin Routers run under a restart-always supervisor (``local/supervise.py``), as
systemd runs them on a DC/OS master. Their files are in the cluster directory (:class:`ClusterFiles`);
the functions take those and what the process needs; the backup service, whose flags come from most of the
cluster's description, takes its :class:`~dcos_backup.local.spec.ClusterSpec` whole.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import ssl
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

from dcos_backup.adminrouter.nginx import AdminRouter
from dcos_backup.api.paths import HEALTH
from dcos_backup.errors import ClusterError, MissingDependency
from dcos_backup.local import monitoring, s3, security
from dcos_backup.local.files import MAX_SOCKET_PATH, ClusterFiles
from dcos_backup.local.spec import ClusterSpec, Master
from dcos_backup.master.member import Member
from dcos_backup.master.processes import (
    last_lines,
    live_process,
    python_module_command,
    spawn_detached,
    terminate,
    terminate_all,
)
from dcos_backup.storage.crypto import create_key_file, load_key

SERVICE_MODULE = "dcos_backup.cli.service"
SUPERVISE_MODULE = "dcos_backup.local.supervise"
HOLDER_MODULE = "dcos_backup.testing.holder"
NGINX_MARKER = "nginx"
PROMETHEUS_MARKER = "prometheus"


def _stages(files: ClusterFiles) -> list[dict[Path, str]]:
    """Each pid file of these processes, with the marker its process's command line has, in the stages they
    stop in: supervisors before their children, so that a supervisor does not restart a child that is being
    stopped; the processes of one stage stop together."""
    routers = sorted(files.run_dir.glob("adminrouter-*.pid"))
    backup_services = sorted(files.run_dir.glob("service-*.pid"))
    return [
        {
            **{p: SUPERVISE_MODULE for p in backup_services if not p.name.endswith("-child.pid")},
            **{p: SUPERVISE_MODULE for p in routers if not p.name.endswith("-child.pid")},
        },
        {
            **{p: SERVICE_MODULE for p in backup_services if p.name.endswith("-child.pid")},
            **{p: NGINX_MARKER for p in routers if p.name.endswith("-child.pid")},
        },
        {files.pid_file("prometheus"): SUPERVISE_MODULE},
        {files.pid_file("prometheus-child"): PROMETHEUS_MARKER},
        {files.pid_file("holder"): HOLDER_MODULE},
        {files.pid_file("s3"): SUPERVISE_MODULE},  # last: the service may still be writing to it
        {files.pid_file("s3-child"): s3.MOTO_MARKER},
    ]


def _pid_files(files: ClusterFiles) -> dict[Path, str]:
    return {pid_file: marker for stage in _stages(files) for pid_file, marker in stage.items()}


def pid_files(cluster_dir: Path) -> list[Path]:
    return list(_pid_files(ClusterFiles(cluster_dir)))


def any_running(cluster_dir: Path) -> bool:
    """Whether any of these processes (the service, the Admin Routers, their supervisors) still runs."""
    return any(live_process(p, marker) is not None for p, marker in _pid_files(ClusterFiles(cluster_dir)).items())


def start_holder(cluster_dir: Path, zk_hosts: str) -> None:
    """Keep the cluster's ephemeral nodes alive (idempotent)."""
    files = ClusterFiles(cluster_dir)
    pid_file = files.pid_file("holder")
    if live_process(pid_file, HOLDER_MODULE) is not None:
        return
    spawn_detached(python_module_command(HOLDER_MODULE, "--zk", zk_hosts), files.log_file("holder"), pid_file)


def stop_holder(cluster_dir: Path) -> None:
    """Stop the holder of the ephemeral nodes (``seed --replace`` starts a new one on the new tree)."""
    pid_file = ClusterFiles(cluster_dir).pid_file("holder")
    proc = live_process(pid_file, HOLDER_MODULE)
    if proc is not None:
        terminate(proc)
    pid_file.unlink(missing_ok=True)


def start_prometheus(cluster: ClusterSpec) -> dict[str, str]:
    """Run Debian's ``prometheus`` on ``<subnet>.1:9090`` under a restart-always supervisor, scraping every
    master (:mod:`.monitoring`) with the token of the monitoring user; returns its cluster.json entry."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise MissingDependency("prometheus is not installed; install it with: apt-get install -y prometheus")
    files = cluster.files
    directory = files.dir / "prometheus"
    token_file = files.secrets_dir / "prometheus.token"
    security.create_monitoring_user(files, cluster.zk_hosts, token_file)
    config = monitoring.write_config(directory, cluster.subnet, len(cluster.masters), files.ca_cert, token_file)
    url = monitoring.prometheus_url(cluster.subnet)
    info = {
        "url": url,
        "user": security.MONITORING_USER,
        "config": str(config),
        "token_file": str(token_file),
        "log_file": str(files.log_file("prometheus")),
        "pid_file": str(files.pid_file("prometheus")),
    }
    command = [
        binary,
        f"--config.file={config}",
        f"--web.listen-address={monitoring.listen_address(cluster.subnet)}",
        f"--storage.tsdb.path={directory / 'data'}",
        f"--web.external-url={url}",
    ]
    supervised(files, "prometheus", command, Path(info["log_file"]))
    with httpx.Client() as client:
        _wait_until(
            lambda: _answers(client, f"{url}/-/ready"),
            lambda: live_process(files.pid_file("prometheus"), SUPERVISE_MODULE) is not None,
            f"Prometheus did not start on {url}",
            Path(info["log_file"]),
            timeout=60.0,
        )
    return info


def service_available() -> bool:
    return importlib.util.find_spec(SERVICE_MODULE) is not None


def supervised(
    files: ClusterFiles, name: str, command: list[str], output: Path, env: dict[str, str] | None = None
) -> None:
    """Run ``command`` under a restart-always supervisor (pid files ``name`` and ``name-child``), unless it runs."""
    pid_file = files.pid_file(name)
    if live_process(pid_file, SUPERVISE_MODULE) is not None:
        return
    files.run_dir.mkdir(parents=True, exist_ok=True)
    files.run_dir.chmod(0o700)  # the service's socket and the pid files: the cluster's owner only
    spawn_detached(
        python_module_command(
            SUPERVISE_MODULE,
            *("--name", name, "--child-pid-file", str(files.pid_file(f"{name}-child"))),
            *("--output", str(output), "--", *command),
        ),
        files.log_file(f"supervise-{name}"),
        pid_file,
        env,
    )


def start_s3(cluster_dir: Path, host: str) -> str:
    """Run moto's S3 server on ``host`` under a restart-always supervisor, with the service's bucket; its URL."""
    files = ClusterFiles(cluster_dir)
    endpoint = s3.endpoint_url(host)
    log_file = files.log_file("s3")
    supervised(files, "s3", s3.moto_command(host), log_file)
    _wait_until(
        lambda: s3.create_bucket(endpoint),
        lambda: live_process(files.pid_file("s3"), SUPERVISE_MODULE) is not None,
        f"the S3 server did not start on {endpoint}",
        log_file,
    )
    return endpoint


def start_service(cluster: ClusterSpec, master: Master, hooks: Sequence[str] = (), wait: bool = True) -> dict[str, str]:
    """Run ``master``'s backup service on its unix socket under a restart-always supervisor, advertising
    its Admin Router for job requests while it leads, calling ``hooks`` around restores; returns its
    cluster.json entry. Without ``wait``, return at once (:func:`wait_service` then). With the cluster's
    ``encryption_key_file`` (created with a new random key if missing) it encrypts every archive; with its
    S3 server (:func:`start_s3`) it keeps its catalog and archives in the bucket there."""
    files = cluster.files
    member = master.member
    s3_endpoint = cluster.s3_endpoint()
    key_file = Path(cluster.encryption_key_file) if cluster.encryption_key_file else None
    socket = files.backup_socket(member.id)
    if len(str(socket)) > MAX_SOCKET_PATH:
        raise ClusterError(f"the cluster directory is too deep for a unix socket ({socket}); use a shorter --dir")
    name = f"service-{member.id}"
    info = {
        "master": str(member.id),
        "instance": f"master-{member.id}",
        "socket": str(socket),
        "log_file": str(files.log_file(name)),
        "pid_file": str(files.pid_file(name)),
        "child_pid_file": str(files.pid_file(f"{name}-child")),
    }
    if s3_endpoint is None:  # the directory is shared by every master's service (docs/operations.md)
        info["storage"] = info["storage_dir"] = str(files.storage_dir)
    else:
        info.update(storage=f"s3://{s3.BUCKET}/{s3.PREFIX}", s3_endpoint_url=s3_endpoint)
    command = python_module_command(
        SERVICE_MODULE,
        *("--zk", cluster.zk_hosts, "--storage", info["storage"], "--socket", info["socket"]),
        *(("--s3-endpoint-url", s3_endpoint) if s3_endpoint else ()),
        *("--iam-public-key", str(files.iam_public_key), "--zk-credentials", str(files.zk_credentials)),
        *("--bootstrap-user", security.BOOTSTRAP_USER),
        *("--record-key-file", str(files.record_key)),
        *("--instance", info["instance"], "--advertise", master.admin_router_url, "--ca-file", str(files.ca_cert)),
        *(arg for m in cluster.masters for arg in ("--master", m.admin_router_url)),
        *(("--zk-auth", str(files.zk_auth)) if files.zk_auth.exists() else ()),
        *(arg for hook in hooks for arg in ("--hook", hook)),
        *(("--zk-archive", cluster.zk_archive) if cluster.zk_archive else ()),
        *(("--zk-archive-key-file", str(cluster.files.repo_key)) if cluster.zk_archive else ()),
        *encryption_options(info, key_file),
    )
    supervised(files, name, command, Path(info["log_file"]), s3.CREDENTIALS if s3_endpoint else None)
    if wait:
        wait_service(info)
    return info


def wait_service(info: dict[str, str]) -> None:
    """Wait until the service of ``info`` (:func:`start_service`) answers on its socket."""
    with httpx.Client(transport=httpx.HTTPTransport(uds=info["socket"])) as client:
        _wait_until(
            lambda: _answers(client, "http://service" + HEALTH),
            lambda: live_process(Path(info["pid_file"]), SUPERVISE_MODULE) is not None,
            f"the backup service did not start on {info['socket']}",
            Path(info["log_file"]),
        )


def encryption_options(info: dict[str, str], key_file: Path | None) -> list[str]:
    """The service's encryption flags, after creating the key file if it is new; noted in ``info``."""
    if key_file is None:
        return []
    key_file = key_file.absolute()
    create_key_file(key_file)
    info["encryption_key_file"] = str(key_file)
    info["encryption_key_id"] = load_key(key_file).id
    return ["--encryption-key-file", str(key_file)]


def admin_router(files: ClusterFiles, member: Member) -> AdminRouter:
    """Master ``member``'s Admin Router: its certificate, its Exhibitor, its backup service."""
    return AdminRouter(
        host=member.host,
        directory=files.admin_router_dir(member.id),
        certificate=files.master_cert(member.id),
        key=files.master_key(member.id),
        exhibitor_url=f"http://{member.host}:{member.exhibitor_port}",
        backup_socket=files.backup_socket(member.id),
        worker_user="root" if os.geteuid() == 0 else None,  # workers reach the socket in a 0700 directory
    )


def start_admin_router(cluster_dir: Path, member: Member, wait: bool = True) -> AdminRouter:
    """Run master ``member``'s nginx under a restart-always supervisor and, with ``wait``, wait until it serves
    HTTPS (without: :func:`wait_admin_router` then, so that several start together)."""
    files = ClusterFiles(cluster_dir)
    router = admin_router(files, member)
    router.write()
    supervised(files, f"adminrouter-{member.id}", router.command(), router.directory / "console.log")
    if wait:
        wait_admin_router(cluster_dir, member)
    return router


def wait_admin_router(cluster_dir: Path, member: Member) -> None:
    files = ClusterFiles(cluster_dir)
    router = admin_router(files, member)
    name = f"adminrouter-{member.id}"
    with httpx.Client(verify=ssl.create_default_context(cafile=str(files.ca_cert))) as client:
        _wait_until(
            lambda: _answers(client, router.url + HEALTH),
            lambda: live_process(files.pid_file(name), SUPERVISE_MODULE) is not None,
            f"the Admin Router of master {member.id} did not start on {router.url}",
            router.error_log,
        )


def _answers(client: httpx.Client, url: str) -> bool:
    try:
        return client.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _wait_until(
    answers: Callable[[], bool], alive: Callable[[], bool], failure: str, log_file: Path, timeout: float = 30.0
) -> None:
    """Wait until ``answers()``; fail with the last line of ``log_file`` if ``alive()`` turns false or time is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answers():
            return
        if not alive():
            break
        time.sleep(0.2)
    why = last_lines(log_file) or "no log"
    raise ClusterError(f"{failure}: {why} (log: {log_file})")


def stop_all(cluster_dir: Path) -> None:
    for stage in _stages(ClusterFiles(cluster_dir)):
        terminate_all([proc for pid_file, marker in stage.items() if (proc := live_process(pid_file, marker))])
        for pid_file in stage:
            pid_file.unlink(missing_ok=True)
