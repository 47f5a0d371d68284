"""Physical archives in object storage (``dcos-zk backup|restore|verify s3://bucket/key``): the download
of one to a private temporary file, and the upload of a newly written one with its ``.sha256``."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from dcos_backup.errors import IntegrityError, NotFound, UsageError
from dcos_backup.fsutil import storage_error
from dcos_backup.physical.archive_write import BackupResult
from dcos_backup.storage.locations import open_store
from dcos_backup.storage.s3 import is_s3_url


def _split_object_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix/name`` as the store's location and the object's name in it."""
    location, _, name = url.rstrip("/").rpartition("/")
    if not is_s3_url(location) or len(location) <= len("s3://"):
        raise UsageError(f"{url} is not an s3://bucket/key URL")
    return location, name


@contextlib.contextmanager
def fetched(archive: str | Path, tmp_dir: Path | None = None) -> Iterator[Path]:
    """``archive`` as a local file: a path as it is; an ``s3://bucket/key`` downloaded, with its ``.sha256``
    when there is one (which the archive's reader then checks), into a private temporary directory (in
    ``tmp_dir``) that is removed afterwards."""
    if not is_s3_url(archive):
        yield Path(archive)
        return
    location, name = _split_object_url(str(archive))
    store = open_store(location)
    with tempfile.TemporaryDirectory(dir=tmp_dir, prefix=".dcos-zk-download-") as work:
        local = Path(work) / name
        try:
            with store.get(name) as source, open(local, "wb") as sink:
                shutil.copyfileobj(source, sink, 1 << 20)
        except OSError as exc:
            raise storage_error(exc, f"downloading {archive}", Path(work)) from exc
        with contextlib.suppress(NotFound):  # an archive without one is checked by its structure alone
            (Path(work) / (name + ".sha256")).write_bytes(store.get_bytes(name + ".sha256"))
        yield local


def backup_to_store(url: str, write: Callable[[Path], BackupResult], tmp_dir: Path | None = None) -> BackupResult:
    """A backup to object storage (``s3://bucket/key``): ``write`` makes the archive in a private temporary
    directory (in ``tmp_dir``), then it and its ``.sha256`` are uploaded; the object appears only whole."""
    location, name = _split_object_url(url)
    store = open_store(location)
    if any(info.key == name for info in store.list(name)):
        raise UsageError(f"{url} already exists; choose a new key")
    with tempfile.TemporaryDirectory(dir=tmp_dir, prefix=".dcos-zk-upload-") as work:
        local = Path(work) / name
        result = write(local)
        with open(local, "rb") as f:
            uploaded = store.put(name, f)
        if uploaded.sha256 != result.sha256:
            store.delete(name)
            raise IntegrityError(f"{local} changed while it was uploaded to {url}")
        store.put(name + ".sha256", (Path(work) / (name + ".sha256")).read_bytes())
    result.archive = url
    return result
