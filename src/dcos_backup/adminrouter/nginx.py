"""One master's Admin Router: Debian's nginx, configured as DC/OS's Admin Router routes these paths.

It listens on ``https://<master-ip>:443`` with the master's certificate and proxies

- ``/exhibitor/`` to that master's Exhibitor, prefix removed, no auth (the seed's
  ``curl https://<master>/exhibitor/exhibitor/v1/cluster/status``);
- ``/system/v1/backup/`` to the backup service's unix socket, path unchanged (the service checks tokens);
- ``/backup/``, the web console, to the same socket (the service checks the token, header or
  ``dcos-acs-auth-cookie`` cookie).

Everything it refuses itself is JSON like the API's own errors (``{"errors": [...], "code": ...}``): a
body over the API's limit (413), headers too large (400), an unknown path (404), an upstream that is down
or too slow (503/504), a client over its connection limit (429). Limits: bodies of 64 KiB (chunked or not;
but for the streamed ``download``/``upload`` of portable backups), header lines of 16 KiB, 10 s to send
the headers (the TLS handshake included) and 10 s between two reads of a body, 30 s between two writes of
a response, and :data:`PER_CLIENT` requests in progress per client address. A capped body is buffered
whole before the backup service is connected to, so a slow client holds a connection of the Admin Router
(at most :data:`PER_CLIENT` per address), never one of the service.
"""

from __future__ import annotations

import json
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from dcos_backup.api.paths import MAX_BODY, PREFIX  # MAX_BODY enforced here too, before the service
from dcos_backup.errors import ClusterError, Conflict, MissingDependency

HTTPS_PORT = 443
# Requests in progress at once per client address: above what one client needs (a burst of 50 creates,
# 20 clients hammering list/show), far below what the Admin Router can hold (WORKER_CONNECTIONS, two per
# proxied request), so that one address holding its connections open cannot take the door down.
PER_CLIENT = 64
WORKER_CONNECTIONS = 4096

NGINX = "/usr/sbin/nginx"


def nginx_binary() -> str:
    found = shutil.which("nginx") or (NGINX if Path(NGINX).exists() else None)
    if found is None:
        raise MissingDependency("nginx is not installed (the Admin Router): apt-get install -y nginx")
    return found


def check_can_listen(host: str, port: int = HTTPS_PORT) -> None:
    """Fail with one line unless this process may listen on ``host:port`` (443 needs root)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except PermissionError as exc:
            raise ClusterError(
                f"cannot listen on {host}:{port} for the Admin Router (HTTPS): permission denied; run as root"
            ) from exc
        except OSError as exc:
            raise Conflict(f"the Admin Router's port {host}:{port} is already in use ({exc.strerror})") from exc


def _json(code: str, message: str) -> str:
    """An nginx ``return`` text: the API's error body, quoted for the configuration file."""
    return "'" + json.dumps({"errors": [message], "code": code}).replace("'", "\\'") + "'"


# The configuration, filled in by AdminRouter.render (nginx braces doubled for str.format).
_CONF = """# Admin Router of master {host} (written by dcos-local; regenerated at every start)
{user}worker_processes 1;
pid {pid_file};
error_log {error_log} warn;
worker_rlimit_nofile {open_files};
events {{ worker_connections {worker_connections}; }}

http {{
    # Which upstream served each request ("-": the Admin Router answered it itself).
    log_format admin_router '$remote_addr [$time_local] "$request" $status $body_bytes_sent '
                            '$request_time upstream=$upstream_addr';
    access_log {access_log} admin_router;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server_tokens off;
    default_type application/json;

    client_max_body_size {max_body};
    client_body_buffer_size {max_body};
    large_client_header_buffers 4 16k;
    client_header_timeout 10s;
    client_body_timeout 10s;
    send_timeout 30s;
    keepalive_timeout 30s;
    reset_timedout_connection on;  # a timed-out client's buffers are freed at once, no lingering close
    limit_conn_zone $binary_remote_addr zone=per_client:1m;
    limit_conn per_client {per_client};
    limit_conn_status 429;
    limit_conn_log_level warn;

    upstream dcos_backup {{
        server unix:{backup_socket};
        keepalive 16;
        keepalive_timeout 4s;  # shorter than the service's: nginx, not the service, ends idle connections
    }}

    server {{
        listen {host}:{port} ssl;
        server_name {host};
        ssl_certificate {certificate};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:admin_router_tls:1m;
        ssl_session_timeout 10m;

        error_page 400 494 = @bad_request;
        error_page 413 = @too_large;
        error_page 429 = @too_many;

        location /exhibitor/ {{
            {client_errors}
            proxy_pass {exhibitor_url}/;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_connect_timeout 5s;
            proxy_read_timeout 30s;
            error_page 502 503 504 = @exhibitor_unavailable;
        }}

        location /system/v1/backup/ {{
            {client_errors}
            {to_backup_service}
            proxy_send_timeout 60s;
            proxy_read_timeout 60s;
        }}

        # Portable backups stream both ways: no body limit, nothing buffered (the service checks the token
        # before it reads a byte of an upload, and streams it to storage).
        location ~ ^{prefix}/(download|upload)$ {{
            # Refused here, not by the service: nginx streams this body on unbuffered, and a service that
            # closes the connection on an unread body while nginx still writes it makes nginx answer 503.
            if ($http_authorization = "") {{
                add_header WWW-Authenticate acsjwt always;
                return 401 {missing_token};
            }}
            {client_errors}
            {to_backup_service}
            client_max_body_size 0;
            client_body_timeout 300s;
            proxy_request_buffering off;
            proxy_buffering off;
            proxy_send_timeout 300s;
            proxy_read_timeout 300s;
        }}

        # The web console (dcos_backup.console), served by the backup service on every master.
        location = /backup {{
            return 301 /backup/;
        }}
        location /backup/ {{
            {client_errors}
            {to_backup_service}
            proxy_read_timeout 60s;
        }}

        location / {{
            return 404 {not_found};
        }}
        location @bad_request {{
            return 400 {bad_request};
        }}
        location @too_large {{
            return 413 {too_large};
        }}
        location @too_many {{
            return 429 {too_many};
        }}
        location @exhibitor_unavailable {{
            return 503 {exhibitor_unavailable};
        }}
        location @backup_unavailable {{
            return 503 {backup_unavailable};
        }}
    }}
}}
"""


# The proxying every location of the backup service shares (each adds its timeouts and buffering).
_TO_BACKUP_SERVICE = """proxy_pass http://dcos_backup;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto https;
            proxy_connect_timeout 5s;
            error_page 502 503 504 = @backup_unavailable;"""


@dataclass(frozen=True)
class AdminRouter:
    """The Admin Router of the master at ``host``: its files live in ``directory``."""

    host: str
    directory: Path
    certificate: Path
    key: Path
    exhibitor_url: str
    backup_socket: Path
    worker_user: str | None = None  # the workers' user when nginx starts as root
    port: int = HTTPS_PORT

    @property
    def url(self) -> str:
        return f"https://{self.host}" + ("" if self.port == HTTPS_PORT else f":{self.port}")

    @property
    def conf_file(self) -> Path:
        return self.directory / "nginx.conf"

    @property
    def pid_file(self) -> Path:
        return self.directory / "nginx.pid"

    @property
    def error_log(self) -> Path:
        return self.directory / "error.log"

    @property
    def access_log(self) -> Path:
        return self.directory / "access.log"

    def command(self) -> list[str]:
        """nginx in the foreground (its supervisor restarts it), on this configuration only."""
        return [
            nginx_binary(),
            *("-p", str(self.directory), "-c", str(self.conf_file), "-e", str(self.error_log)),
            *("-g", "daemon off;"),
        ]

    def write(self) -> Path:
        for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.directory / "tmp" / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        self.conf_file.write_text(self.render())
        return self.conf_file

    def render(self) -> str:
        return _CONF.format(
            host=self.host,
            port=self.port,
            user=f"user {self.worker_user};\n" if self.worker_user else "",
            pid_file=self.pid_file,
            error_log=self.error_log,
            access_log=self.access_log,
            tmp=self.directory / "tmp",
            max_body=MAX_BODY,
            per_client=PER_CLIENT,
            worker_connections=WORKER_CONNECTIONS,
            open_files=2 * WORKER_CONNECTIONS,
            prefix=PREFIX,
            backup_socket=self.backup_socket,
            certificate=self.certificate,
            key=self.key,
            exhibitor_url=self.exhibitor_url.rstrip("/"),
            # A location with error_page directives inherits none from its server: each one lists them all.
            client_errors="error_page 400 494 = @bad_request;\n            error_page 413 = @too_large;\n"
            "            error_page 429 = @too_many;",
            to_backup_service=_TO_BACKUP_SERVICE,
            not_found=_json("not_found", "no such route on the Admin Router"),
            missing_token=_json("unauthorized", "missing token: send an Authorization header (token=<token>)"),
            bad_request=_json("invalid_request", "bad request (headers too large or malformed)"),
            too_large=_json("too_large", f"request body larger than {MAX_BODY} bytes"),
            too_many=_json("too_many_requests", f"more than {PER_CLIENT} requests at once from this address"),
            exhibitor_unavailable=_json("service_unavailable", "Exhibitor of this master is not answering"),
            backup_unavailable=_json("service_unavailable", "the backup service is not answering; retry shortly"),
        )
