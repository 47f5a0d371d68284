"""Where ``dcos backup`` finds the cluster, as the DC/OS CLI does, with the local cluster as the fallback.

:func:`resolve_endpoint` is the one place that decides; each source fills only what is still missing:

1. ``--url`` and ``--token`` on the command line;
2. the DC/OS CLI's variables ``DCOS_URL``, ``DCOS_ACS_TOKEN`` and ``DCOS_SSL_VERIFY`` (``true``,
   ``false`` or a CA file; ``dcos-local env N`` exports all three);
3. when no URL was given: the local cluster (``dcos-local``, in ``$DCOS_LOCAL_DIR`` or the default
   directory): master 1's Admin Router, the cluster's CA and a bootstrapuser token.

A URL without a token is refused: a token of the local cluster is never sent to another URL.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from dcos_backup.cli.client import Endpoint
from dcos_backup.errors import DcosBackupError, UsageError

_FALSE = {"false", "0", "no", "off"}
_TRUE = {"true", "1", "yes", "on"}


def resolve_endpoint(url: str | None, token: str | None, env: Mapping[str, str] = os.environ) -> Endpoint:
    """The cluster to talk to: command line, then the DC/OS CLI's variables, then the local cluster."""
    url = url or env.get("DCOS_URL") or None
    token = token or env.get("DCOS_ACS_TOKEN") or None
    verify = ssl_verify(env.get("DCOS_SSL_VERIFY"))
    if url is not None:
        if token is None:
            raise UsageError(
                f"no token for {url}: set DCOS_ACS_TOKEN or pass --token (dcos-local iam login NAME prints one)"
            )
        return Endpoint(url.rstrip("/"), token, True if verify is None else verify)
    local = local_cluster_endpoint()
    return Endpoint(local.url, token or local.token, local.verify if verify is None else verify)


def ssl_verify(value: str | None) -> str | bool | None:
    """``DCOS_SSL_VERIFY``: True, False, a CA file, or None when it is not set."""
    if value is None or not value.strip():
        return None
    if value.strip().lower() in _FALSE:
        return False
    if value.strip().lower() in _TRUE:
        return True
    return value


def local_cluster_endpoint() -> Endpoint:
    """The local cluster's master 1 Admin Router, its CA, and a bootstrapuser token (renewed when expiring)."""
    # Imported here: the launcher pulls in the whole stack, which a configured CLI does not need to load.
    from dcos_backup.local.security import bootstrap_token
    from dcos_backup.local.spec import ClusterSpec

    try:
        cluster = ClusterSpec.load()
    except DcosBackupError as exc:
        raise UsageError(
            f"no cluster configured: set DCOS_URL and DCOS_ACS_TOKEN (and DCOS_SSL_VERIFY), or start a local "
            f"cluster with dcos-local up ({exc})"
        ) from exc
    if not cluster.service:
        raise UsageError("the local cluster runs no backup service; set DCOS_URL and DCOS_ACS_TOKEN")
    cli = cluster.dcos_cli()
    return Endpoint(cli["DCOS_URL"], bootstrap_token(cluster.files), cli["DCOS_SSL_VERIFY"])
