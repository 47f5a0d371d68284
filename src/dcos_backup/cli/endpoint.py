"""Where ``dcos backup`` finds the backup service: the command line and the environment first, the local
cluster (``dcos-local``) as the fallback.

:func:`resolve_endpoint` is the one place that decides; each source fills only what is still missing, so
a new source (another variable, a config file) is one more step in it.
"""

from __future__ import annotations

import os
from pathlib import Path

from dcos_backup.errors import DcosBackupError, UsageError
from dcos_backup.service.auth import read_token_file
from dcos_backup.service.client import Endpoint


def resolve_endpoint(url: str | None, token_file: Path | None) -> Endpoint:
    """``--url``/``DCOS_BACKUP_URL`` and ``DCOS_BACKUP_TOKEN``/``--token-file``, else the local cluster's."""
    url = url or os.environ.get("DCOS_BACKUP_URL")
    token = os.environ.get("DCOS_BACKUP_TOKEN")
    if token is None and token_file is not None:
        token = read_token_file(token_file)
    if url is None or token is None:
        service = local_cluster_service()
        url = url or service["url"]
        if token is None:
            token = read_token_file(Path(service["token_file"]))
    return Endpoint(url.rstrip("/"), token)


def local_cluster_service() -> dict[str, str]:
    """The backup service of the local cluster (``$DCOS_LOCAL_DIR``, else the default directory)."""
    # Imported here: the launcher pulls in the whole stack, which a configured CLI does not need to load.
    from dcos_backup.local.cluster import Cluster

    try:
        service = Cluster.load().service
    except DcosBackupError as exc:
        raise UsageError(
            f"no backup service configured: set DCOS_BACKUP_URL and DCOS_BACKUP_TOKEN, or start a local "
            f"cluster with dcos-local up ({exc})"
        ) from exc
    if not service:
        raise UsageError("the local cluster runs no backup service; set DCOS_BACKUP_URL and DCOS_BACKUP_TOKEN")
    return service
