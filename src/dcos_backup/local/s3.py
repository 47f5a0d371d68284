"""The S3 server of ``dcos-local up --storage s3``: moto in server mode (``moto_server``) on the cluster's
loopback, with one bucket the backup service keeps its catalog and archives in.

moto keeps objects in memory: they live as long as its process (``dcos-local down`` ends them). It accepts
any credentials; the service gets :data:`CREDENTIALS` in its environment, as a real deployment gets its
own through the standard AWS variables or files.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from dcos_backup.errors import MissingDependency, StorageError

S3_PORT = 9000
BUCKET = "dcos-backup"
PREFIX = "backups"
MOTO_MARKER = "moto_server"
# moto's server checks no signature: these name the cluster, they protect nothing.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "dcos-local",
    "AWS_SECRET_ACCESS_KEY": "dcos-local",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def moto_server_binary() -> str:
    """``moto_server`` beside this Python (the venv's), else on PATH."""
    beside = Path(sys.executable).parent / MOTO_MARKER
    found = str(beside) if beside.exists() else shutil.which(MOTO_MARKER)
    if found is None:
        raise MissingDependency("--storage s3 needs moto's server: pip install 'moto[server]'")
    return found


def moto_command(host: str, port: int = S3_PORT) -> list[str]:
    return [moto_server_binary(), "-H", host, "-p", str(port)]


def endpoint_url(host: str, port: int = S3_PORT) -> str:
    return f"http://{host}:{port}"


def create_bucket(endpoint: str, bucket: str = BUCKET) -> bool:
    """Create ``bucket`` (idempotent); False while the server does not answer yet."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10),
    )
    try:
        client.create_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise StorageError(f"cannot create the bucket {bucket} at {endpoint}: {exc}") from exc
    except BotoCoreError:
        return False
    return True
