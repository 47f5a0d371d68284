"""How ``dcos backup`` finds the cluster: --url/--token, then DCOS_URL/DCOS_ACS_TOKEN/DCOS_SSL_VERIFY, then the
local cluster as the fallback; a URL never gets the local cluster's token."""

from pathlib import Path

import pytest

from dcos_backup.cli.client import Endpoint
from dcos_backup.cli.endpoint import resolve_endpoint, ssl_verify
from dcos_backup.errors import UsageError
from dcos_backup.iam.tokens import generate_key_pair
from dcos_backup.local.security import bootstrap_token
from dcos_backup.local.spec import ClusterSpec


@pytest.fixture
def local_dir(monkeypatch, tmp_path) -> Path:
    """A local cluster directory that holds nothing yet (and no DC/OS CLI variables set)."""
    monkeypatch.setenv("DCOS_LOCAL_DIR", str(tmp_path / "local"))
    return tmp_path / "local"


def local_cluster_with_service(directory: Path) -> ClusterSpec:
    cluster = ClusterSpec.define(directory, masters=1, subnet="127.31.0")
    generate_key_pair(cluster.files.iam_private_key, cluster.files.iam_public_key)
    cluster = cluster.with_services([{"socket": str(cluster.files.backup_socket(1))}])
    cluster.save()
    return cluster


def test_flags_win_over_the_variables(local_dir):
    env = {"DCOS_URL": "https://10.0.0.1", "DCOS_ACS_TOKEN": "from-env", "DCOS_SSL_VERIFY": "/ca.crt"}
    assert resolve_endpoint("https://flag/", "from-flag", env) == Endpoint("https://flag", "from-flag", "/ca.crt")
    assert resolve_endpoint(None, None, env) == Endpoint("https://10.0.0.1", "from-env", "/ca.crt")
    assert resolve_endpoint(None, None, {**env, "DCOS_SSL_VERIFY": "false"}).verify is False
    assert resolve_endpoint(None, None, {"DCOS_URL": "https://x", "DCOS_ACS_TOKEN": "t"}).verify is True


def test_a_url_without_a_token_is_refused_even_with_a_local_cluster(local_dir):
    local_cluster_with_service(local_dir)
    for url, env in (("https://flag", {}), (None, {"DCOS_URL": "https://10.0.0.1"})):
        with pytest.raises(UsageError, match=r"no token for https://.*: set DCOS_ACS_TOKEN or pass --token"):
            resolve_endpoint(url, None, env)


def test_the_local_cluster_fills_in_what_is_missing(local_dir):
    cluster = local_cluster_with_service(local_dir)
    endpoint = resolve_endpoint(None, None, {})
    assert endpoint.url == "https://127.31.0.1" and endpoint.verify == str(cluster.files.ca_cert)
    assert endpoint.token == bootstrap_token(cluster.files) == cluster.files.token_file.read_text().strip()
    assert cluster.files.token_file.stat().st_mode & 0o777 == 0o600
    assert resolve_endpoint(None, "mine", {"DCOS_SSL_VERIFY": "true"}) == Endpoint("https://127.31.0.1", "mine", True)


def test_an_expiring_saved_token_is_replaced(local_dir):
    cluster = local_cluster_with_service(local_dir)
    cluster.files.token_file.parent.mkdir(parents=True)
    cluster.files.token_file.write_text("not-a-jwt\n")
    token = resolve_endpoint(None, None, {}).token
    assert token != "not-a-jwt" and token.count(".") == 2


def test_nothing_configured_says_what_to_set(local_dir):
    with pytest.raises(UsageError, match=r"set DCOS_URL and DCOS_ACS_TOKEN .*or start a local cluster"):
        resolve_endpoint(None, None, {})
    ClusterSpec.define(local_dir, masters=1, subnet="127.31.0").save()
    with pytest.raises(UsageError, match="the local cluster runs no backup service"):
        resolve_endpoint(None, None, {})


@pytest.mark.parametrize(
    ("value", "verify"),
    [
        (None, None),
        ("", None),
        ("false", False),
        ("False", False),
        ("0", False),
        ("true", True),
        ("/ca.crt", "/ca.crt"),
    ],
)
def test_dcos_ssl_verify_is_a_flag_or_a_ca_file(value, verify):
    assert ssl_verify(value) == verify
