"""The Admin Router's configuration (checked by nginx itself) and the cluster CA's certificates."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import socket
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from tests.helpers import free_subnet

import dcos_backup
from dcos_backup.adminrouter import tls
from dcos_backup.adminrouter.nginx import PER_CLIENT, AdminRouter, check_can_listen, nginx_binary
from dcos_backup.api.paths import MAX_BODY
from dcos_backup.errors import Conflict

SYSTEM_PYTHON = "/usr/bin/python3"  # the modules this test loads need nothing beyond the standard library


@pytest.fixture
def router(tmp_path) -> AdminRouter:
    tls.create_ca(tmp_path / "ca.crt", tmp_path / "ca.key", "test CA")
    tls.issue_server_certificate(
        tmp_path / "ca.crt", tmp_path / "ca.key", "127.41.0.2", tmp_path / "m.crt", tmp_path / "m.key"
    )
    return AdminRouter(
        host="127.41.0.2",
        directory=tmp_path / "ar",
        certificate=tmp_path / "m.crt",
        key=tmp_path / "m.key",
        exhibitor_url="http://127.41.0.2:8181",
        backup_socket=tmp_path / "run" / "backup.sock",
        worker_user="root",
    )


def test_nginx_accepts_the_configuration(router):
    router.write()
    checked = subprocess.run([*router.command()[:-2], "-t"], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr


def test_routes_limits_and_json_errors(router):
    conf = router.render()
    assert "listen 127.41.0.2:443 ssl;" in conf
    assert "proxy_pass http://127.41.0.2:8181/;" in conf  # to /exhibitor/'s Exhibitor, prefix removed
    assert f"server unix:{router.backup_socket};" in conf and "proxy_pass http://dcos_backup;" in conf
    assert f"client_max_body_size {MAX_BODY};" in conf
    assert f"pid {router.pid_file};" in conf  # never the system's /run/nginx.pid
    bodies = re.findall(r"return (\d+) '(.*)';", conf)
    assert {code for code, _ in bodies} == {"400", "401", "404", "413", "429", "503"}
    assert f"limit_conn per_client {PER_CLIENT};" in conf
    for _, body in bodies:
        assert set(json.loads(body)) == {"errors", "code"}


def test_the_master_certificate_is_the_cas_for_its_ip(router, tmp_path):
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.crt").read_bytes())
    cert = x509.load_pem_x509_certificate((tmp_path / "m.crt").read_bytes())
    cert.verify_directly_issued_by(ca)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.41.0.2")]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for key in ("ca.key", "m.key"):
        assert stat.S_IMODE((tmp_path / key).stat().st_mode) == 0o600


def test_nginx_is_found():
    assert nginx_binary().endswith("nginx")


def test_port_443_taken_is_one_clear_line():
    host = f"{free_subnet()}.1"
    with socket.socket() as taken:
        taken.bind((host, 443))
        taken.listen()
        with pytest.raises(Conflict, match=f"the Admin Router's port {host}:443 is already in use"):
            check_can_listen(host)
    check_can_listen(host)  # free again


@pytest.mark.skipif(os.geteuid() != 0 or not Path(SYSTEM_PYTHON).exists(), reason="needs root to become nobody")
def test_without_root_443_is_refused_with_one_line():
    """As the unprivileged user nobody (through the system's Python: the venv's may live under /root)."""
    probe = f"from dcos_backup.adminrouter.nginx import check_can_listen; check_can_listen('{free_subnet()}.1')"
    src = str(Path(dcos_backup.__file__).parent.parent)
    result = subprocess.run(
        [SYSTEM_PYTHON, "-c", probe],
        user=65534,
        group=65534,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": src},
        cwd="/",
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].endswith("permission denied; run as root")
