"""Prometheus for a dcos-local cluster: the configuration that scrapes every master and loads the alert rules.

Prometheus listens on ``<subnet>.1:9090`` and scrapes, on every master ``<subnet>.N``:

- the backup service through the Admin Router, ``https://<master>/system/v1/backup/v1/metrics``, trusting the
  cluster CA and presenting a token read from a file (the service checks it);
- Exhibitor through the Admin Router, ``https://<master>/exhibitor/exhibitor/v1/metrics`` (the Admin Router
  strips ``/exhibitor``), with the same CA and token, as a DC/OS Admin Router would want;
- Exhibitor directly, ``http://<master>:8181/exhibitor/v1/metrics``, so the archive stays watched while an Admin
  Router is down (the rules deduplicate by ``master``).

The alert rules are packaged in ``packaging/prometheus/`` and copied beside the configuration, so the directory
Prometheus runs from holds everything it reads but the CA and the token.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from dcos_backup.master.member import Member

PROMETHEUS_PORT = 9090
RULES_FILE = Path(__file__).resolve().parents[3] / "packaging" / "prometheus" / "dcos-backup.rules.yml"
CONFIG_NAME = "prometheus.yml"
SERVICE_METRICS_PATH = "/system/v1/backup/v1/metrics"
EXHIBITOR_METRICS_PATH = "/exhibitor/v1/metrics"
ADMIN_ROUTER_EXHIBITOR_METRICS_PATH = "/exhibitor" + EXHIBITOR_METRICS_PATH
SCRAPE_INTERVAL = "15s"
EVALUATION_INTERVAL = "15s"


def listen_address(subnet: str) -> str:
    """Where Prometheus listens: the subnet's first address, beside master 1's ports."""
    return f"{subnet}.1:{PROMETHEUS_PORT}"


def prometheus_url(subnet: str) -> str:
    return f"http://{listen_address(subnet)}"


def master_hosts(subnet: str, masters: int) -> list[str]:
    return [f"{subnet}.{n}" for n in range(1, masters + 1)]


def scrape_config(
    subnet: str,
    masters: int,
    ca_file: Path,
    token_file: Path,
    rule_files: list[str],
    exhibitor_port: int = Member.exhibitor_port,
) -> dict:
    """The configuration document for ``masters`` masters on ``subnet`` (a dict; YAML reads its JSON)."""
    hosts = master_hosts(subnet, masters)
    through_admin_router = {
        "scheme": "https",
        "authorization": {"type": "Bearer", "credentials_file": str(token_file)},
        "tls_config": {"ca_file": str(ca_file)},
    }
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": EVALUATION_INTERVAL},
        "rule_files": rule_files,
        "scrape_configs": [
            {
                "job_name": "dcos-backup",
                "metrics_path": SERVICE_METRICS_PATH,
                # dcos_backup_leader{instance} names the instance itself: keep its label, not the target's.
                "honor_labels": True,
                **through_admin_router,
                "static_configs": [{"targets": [f"{host}:443" for host in hosts]}],
            },
            {
                "job_name": "exhibitor-adminrouter",
                "metrics_path": ADMIN_ROUTER_EXHIBITOR_METRICS_PATH,
                **through_admin_router,
                "static_configs": [{"targets": [f"{host}:443" for host in hosts]}],
            },
            {
                "job_name": "exhibitor",
                "metrics_path": EXHIBITOR_METRICS_PATH,
                "scheme": "http",
                "static_configs": [{"targets": [f"{host}:{exhibitor_port}" for host in hosts]}],
            },
        ],
    }


def write_config(
    directory: Path,
    subnet: str,
    masters: int,
    ca_file: Path,
    token_file: Path,
    rules_file: Path = RULES_FILE,
) -> Path:
    """Write ``directory/prometheus.yml`` and a copy of the rules beside it; returns the configuration's path."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(rules_file, directory / rules_file.name)
    config = directory / CONFIG_NAME
    document = scrape_config(subnet, masters, ca_file, token_file, [rules_file.name])
    config.write_text(json.dumps(document, indent=2) + "\n")
    return config
