"""Checking a ZooKeeper backup tarball before anything is touched.

An archive is accepted only if it is a complete, readable gzip tar (every byte read, CRCs checked)
whose members are regular files and directories under ``zookeeper/`` (written ``./zookeeper/...`` by
DC/OS's script and ours): no absolute paths, no ``..``, no links, devices or fifos. ZooKeeper data
directories hold none of those, so refusing them loses nothing and closes every escape.
"""

from __future__ import annotations

import gzip
import posixpath
import shutil
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dcos_backup.errors import IntegrityError
from dcos_backup.master.layout import ZK_DIR_NAME

ROOT = ZK_DIR_NAME  # the one top-level directory of an archive


@dataclass(frozen=True)
class Member:
    name: str  # normalised, relative to the archive root, e.g. "zookeeper/snapshot/version-2/snapshot.1"
    size: int
    is_dir: bool


def normalise(name: str) -> str:
    """``./zookeeper/a`` -> ``zookeeper/a``; raises IntegrityError for anything that could escape."""
    if name.startswith("/") or "\\" in name or "\x00" in name:
        raise IntegrityError(f"unsafe member name {name!r} in archive (absolute or odd path)")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise IntegrityError(f"unsafe member name {name!r} in archive (leaves the tree)")
    clean = posixpath.join(*parts)
    if parts[0] != ROOT:
        raise IntegrityError(f"unexpected member {name!r}: a ZooKeeper backup holds only ./{ROOT}/")
    return clean


def iter_members(archive: Path, into: Path | None = None) -> Iterator[Member]:
    """Stream the archive's members, checking each; reading to the end verifies the gzip CRC.

    With ``into`` (a private, empty directory) each member is also written there as it streams by:
    one pass instead of validate-then-extract. Whoever passes ``into`` must discard it if this fails.
    """
    try:
        # gzip.open, not tarfile's "r|gz": the archive may hold several gzip members (our parallel
        # writer, pigz), which tarfile's own stream reader does not follow.
        with gzip.open(archive, "rb") as gz, tarfile.open(fileobj=gz, mode="r|") as tar:
            for info in tar:
                name = normalise(info.name)
                if info.issym() or info.islnk():
                    raise IntegrityError(f"archive member {info.name!r} is a link; refusing it")
                if not (info.isreg() or info.isdir()):
                    raise IntegrityError(f"archive member {info.name!r} is not a regular file or directory")
                if into is not None:
                    _write_member(tar, info, into / name)
                yield Member(name, info.size, info.isdir())
            # Past the tar end marker: read the gzip stream to its end so its CRC and length are checked.
            while gz.read(1 << 20):
                pass
    except IntegrityError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise IntegrityError(f"{archive} is not a complete gzip tar archive ({exc or type(exc).__name__})") from exc


def _write_member(tar: tarfile.TarFile, info: tarfile.TarInfo, target: Path) -> None:
    # ``target`` comes from normalise(): relative, no "..", so it stays inside the directory.
    if info.isdir():
        target.mkdir(parents=True, exist_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    source = tar.extractfile(info)
    assert source is not None
    with open(target, "xb") as out:
        shutil.copyfileobj(source, out, 1 << 20)


def validate(archive: Path, into: Path | None = None) -> list[Member]:
    """Read the whole archive and return its members; IntegrityError on the first problem.

    With ``into`` the members are extracted there in the same pass (see :func:`iter_members`).
    """
    members = list(iter_members(archive, into))
    if not members:
        raise IntegrityError(f"{archive} is empty")
    return members


def extract(archive: Path, target: Path) -> None:
    """Extract an archive that :func:`validate` accepted into ``target`` (an existing, empty directory)."""
    with tarfile.open(archive, mode="r:gz") as tar:
        # The data filter is a second guard behind validate(): no escapes, no devices, no setuid bits.
        tar.extractall(target, filter="data")
