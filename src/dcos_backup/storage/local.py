"""The local backend: objects as files under a directory (the master's disk, an NFS mount, a test's tmp)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from dcos_backup.errors import NotFound
from dcos_backup.fsutil import HashingWriter, Sink, fsync_dir
from dcos_backup.storage.base import PARTIAL, ObjectInfo, ObjectStore, TopEntry, check_key, storage_error


class LocalStore(ObjectStore):
    """Objects as files under a directory: written to a hidden partial name, fsynced, renamed."""

    def __init__(self, root: Path, create: bool = True) -> None:
        self.root = Path(root).absolute()
        self.url = str(self.root)
        if create:
            try:
                self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            except OSError as exc:
                raise storage_error(f"creating {self.root}", exc) from exc
        elif not self.root.is_dir():
            raise NotFound(f"repository {self.root} does not exist")

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def path(self, key: str) -> Path:
        """Where the object ``key`` is (or will be) on disk."""
        return self._path(key)

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[Sink]:
        path = self._path(key)
        partial = path.parent / f"{PARTIAL}{uuid.uuid4().hex[:8]}.{path.name}"
        try:
            _mkdirs(self.root, path.parent)
            # 0600 from its first byte: a backup's data is the cluster's secrets, partial or not.
            with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
                sink = HashingWriter(out)
                yield sink
                sink.finish()
                os.fsync(out.fileno())
            os.replace(partial, path)
            fsync_dir(path.parent)
        except OSError as exc:
            with contextlib.suppress(OSError):
                partial.unlink()
            raise storage_error(f"writing {key}", exc) from exc
        except BaseException:
            with contextlib.suppress(OSError):
                partial.unlink()
            raise

    def get(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except (FileNotFoundError, IsADirectoryError) as exc:  # a folder is no object (as on S3)
            raise NotFound(f"{key} is missing from the repository {self.url}") from exc
        except OSError as exc:
            raise storage_error(f"reading {key}", exc) from exc

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        base = self.root / prefix.rstrip("/") if prefix else self.root
        if not base.is_dir():
            return
        for root, dirs, files in os.walk(base):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            rel = Path(root).relative_to(self.root).as_posix()
            for name in sorted(files):
                if name.startswith("."):
                    continue  # partials of objects being written: not there yet
                key = name if rel == "." else f"{rel}/{name}"
                with contextlib.suppress(FileNotFoundError):  # deleted while listing
                    # os.stat on a joined string: a Path per object costs more than the stat (10k-key listings)
                    yield ObjectInfo(key, os.stat(os.path.join(root, name)).st_size)

    def top_level(self, prefix: str = "") -> Iterator[TopEntry]:
        # One directory listing, whatever the folders hold; hidden names are partials (never listed), and
        # a symlink is neither a folder nor an object (listing never follows one).
        try:
            with os.scandir(self.root) as scanned:
                wanted = (
                    entry for entry in scanned if entry.name.startswith(prefix) and not entry.name.startswith(".")
                )
                found = sorted((top for top in map(_top_entry, wanted) if top is not None), key=lambda t: t.order)
        except FileNotFoundError:
            return  # as list(): a store whose directory is gone holds nothing
        except OSError as exc:
            raise storage_error("listing the top level", exc) from exc
        yield from found

    def get_versioned(self, key: str) -> tuple[bytes, str | None]:
        # No version: a file rewritten in place within one clock tick keeps its size and timestamps, so
        # nothing here could vouch that bytes read before are still the file's (and a local read is cheap).
        return self.get_bytes(key), None

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise storage_error(f"deleting {key}", exc) from exc
        # Empty folders go too, so that a pruned generation leaves nothing behind.
        parent = path.parent
        while parent != self.root:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def remove_partials(self, prefix: str = "") -> int:
        base = self.root / prefix.rstrip("/") if prefix else self.root
        removed = 0
        for partial in base.rglob(f"{PARTIAL}*") if base.is_dir() else ():
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
                removed += 1
        return removed


def _top_entry(entry: os.DirEntry[str]) -> TopEntry | None:
    """A real directory or a regular file (a symlink is neither), or None."""
    try:
        if entry.is_dir(follow_symlinks=False):
            return TopEntry(entry.name, folder=True)
        if entry.is_file(follow_symlinks=False):
            return TopEntry(entry.name, folder=False)
    except OSError:  # gone while listing
        pass
    return None


def _mkdirs(root: Path, directory: Path) -> None:
    """Create ``directory`` (under ``root``) and fsync each new entry's parent: a new object's folder must
    survive a crash as surely as the object."""
    missing = []
    current = directory
    while current != root and not current.exists():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
        fsync_dir(path.parent)
