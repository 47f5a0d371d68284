"""What a storage location names: ``s3://bucket/prefix``, a ``file://`` URL or a local directory."""

from __future__ import annotations

from pathlib import Path

from dcos_backup.errors import UsageError
from dcos_backup.storage.base import ObjectStore
from dcos_backup.storage.local import LocalStore
from dcos_backup.storage.s3 import S3Store, is_s3_url


def open_store(spec: str, create: bool = False, endpoint_url: str | None = None) -> ObjectStore:
    """The store a location names: ``s3://bucket/prefix``, a ``file://`` URL or a local directory."""
    if is_s3_url(spec):
        return S3Store(spec, endpoint_url)
    if "://" in spec:
        scheme, _, rest = spec.partition("://")
        if scheme != "file":
            raise UsageError(f"{spec}: {scheme}:// locations are not supported (a directory, file:// or s3:// are)")
        spec = rest
    if not spec:
        raise UsageError("a storage location is a directory, file:// or s3:// URL")
    return LocalStore(Path(spec), create=create)
