"""How ``dcos backup`` finds the service: command line and environment first, the local cluster as fallback."""

from pathlib import Path

import pytest

from dcos_backup.cli.endpoint import resolve_endpoint
from dcos_backup.errors import UsageError
from dcos_backup.local.cluster import Cluster
from dcos_backup.service.client import Endpoint


@pytest.fixture
def env(monkeypatch, tmp_path):
    """No service settings, and a local cluster directory that holds nothing yet."""
    for name in ("DCOS_BACKUP_URL", "DCOS_BACKUP_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DCOS_LOCAL_DIR", str(tmp_path / "local"))
    return monkeypatch


def token_file(path: Path, token: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(token + "\n")
    return path


def local_cluster_with_service(directory: Path) -> None:
    cluster = Cluster.define(directory, masters=1, subnet="127.31.0")
    cluster.service = {"url": "http://127.31.0.1:8100", "token_file": str(token_file(directory / "t", "local"))}
    cluster.save()


def test_the_environment_wins_and_the_local_cluster_is_not_read(env, tmp_path):
    env.setenv("DCOS_BACKUP_URL", "http://backup.example:8100/")
    env.setenv("DCOS_BACKUP_TOKEN", "from-env")
    assert resolve_endpoint(None, None) == Endpoint("http://backup.example:8100", "from-env")
    assert resolve_endpoint("http://flag:1", token_file(tmp_path / "f", "file")) == Endpoint(
        "http://flag:1", "from-env"
    )


def test_the_token_file_serves_when_no_token_variable_is_set(env, tmp_path):
    assert resolve_endpoint("http://flag:1", token_file(tmp_path / "f", "file")) == Endpoint("http://flag:1", "file")


def test_the_local_cluster_fills_in_what_is_missing(env, tmp_path):
    local_cluster_with_service(tmp_path / "local")
    assert resolve_endpoint(None, None) == Endpoint("http://127.31.0.1:8100", "local")
    assert resolve_endpoint("http://flag:1", None) == Endpoint("http://flag:1", "local")
    env.setenv("DCOS_BACKUP_TOKEN", "from-env")
    assert resolve_endpoint(None, None) == Endpoint("http://127.31.0.1:8100", "from-env")


def test_nothing_configured_says_what_to_set(env, tmp_path):
    with pytest.raises(UsageError, match="set DCOS_BACKUP_URL and DCOS_BACKUP_TOKEN, or start a local cluster"):
        resolve_endpoint(None, None)
    Cluster.define(tmp_path / "local", masters=1, subnet="127.31.0").save()
    with pytest.raises(UsageError, match="the local cluster runs no backup service"):
        resolve_endpoint(None, None)
