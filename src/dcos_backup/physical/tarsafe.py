"""Reading a ZooKeeper backup tarball, hostile or not, before anything is touched: the one tar reader of dcos-zk.

An archive is accepted only if it is a complete, readable gzip tar (every byte read, CRCs checked)
whose members are regular files and directories under ``zookeeper/`` (written ``./zookeeper/...`` by
DC/OS's script and ours): no absolute paths, no ``..``, no links, devices, fifos or sparse files, no
file twice. ZooKeeper data directories hold none of those, so refusing them loses nothing and closes
every escape.

Python's ``tarfile`` takes a damaged header after the first one for the end of the archive and stops
there without a word (GNU tar exits 2), keeps every header it read in memory, and believes any size a
header claims. This reader uses ``tarfile``'s header parsing only, and around it:

- any header error is an error, and after the end-of-archive marker only zeros may follow (a damaged
  header that reads as zeros cannot hide the rest either);
- every size a header claims is bounded before anything is read for it: by what the compressed archive
  could hold (deflate expands at most 1032:1) and, for long names and pax records, by 1 MiB;
- members are streamed (nothing kept but their names, for the duplicate check), at most
  :data:`MAX_MEMBERS` of them;
- the archive's sha256 is computed on the bytes read and, when ``<archive>.sha256`` exists, compared
  with it: what is checked is what is read, through one open file.
"""

from __future__ import annotations

import gzip
import hashlib
import posixpath
import shutil
import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Self

from dcos_backup.errors import IntegrityError, StorageError
from dcos_backup.fsutil import ensure_free_space, storage_error
from dcos_backup.master.layout import ZK_DIR_NAME

ROOT = ZK_DIR_NAME  # the one top-level directory of an archive
MAX_MEMBERS = 100_000  # a ZooKeeper data dir holds a few snapshots and logs; autopurge keeps it so
DEFLATE_MAX_RATIO = 1032  # no deflate stream expands more than this
MAX_EXTENDED_HEADER = 1 << 20  # a long name or a pax record set; real ones are a few hundred bytes
_EXTENDED_TYPES = {tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE}


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


class _HashingReader:
    """The archive file as read: sha256 and byte count of everything that went through."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.sha256 = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        chunk = self._raw.read(n)
        self.sha256.update(chunk)
        return chunk


def _strict_tarinfo(max_size: int) -> type[tarfile.TarInfo]:
    """A TarInfo whose headers raise IntegrityError (which tarfile does not swallow) on any damage."""

    class StrictTarInfo(tarfile.TarInfo):
        @classmethod
        def fromtarfile(cls, tar: tarfile.TarFile) -> Self:
            assert tar.fileobj is not None  # tarfile.open was given one
            offset = tar.fileobj.tell()
            buf = tar.fileobj.read(tarfile.BLOCKSIZE)
            try:
                info = cls.frombuf(buf, tar.encoding, tar.errors)
            except tarfile.EOFHeaderError:  # type: ignore[attr-defined]  # tarfile's own, not in its stubs
                raise  # the end-of-archive marker; what follows it is checked by the caller
            except tarfile.EmptyHeaderError:  # type: ignore[attr-defined]
                raise IntegrityError("the tar stream ends without its end-of-archive marker (cut short)") from None
            except tarfile.HeaderError as exc:
                raise IntegrityError(f"damaged tar header at byte {offset} of the tar stream ({exc})") from None
            limit = MAX_EXTENDED_HEADER if info.type in _EXTENDED_TYPES else max_size
            if info.size > limit:
                raise IntegrityError(
                    f"tar header at byte {offset} claims {info.size} bytes for {info.name!r}, more than this "
                    f"archive can hold ({limit}); refusing it"
                )
            info.offset = offset
            member: Self = info._proc_member(tar)  # type: ignore[attr-defined]  # tarfile's own, not in its stubs
            return member

    return StrictTarInfo


def iter_members(archive: Path, into: Path | None = None) -> Iterator[Member]:
    """Stream the archive's members, checking each; reading to the end verifies the gzip CRC and the sha256 file.

    With ``into`` (a private, empty directory) each member is also written there as it streams by:
    one pass instead of validate-then-extract. Whoever passes ``into`` must discard it if this fails.
    """
    archive = Path(archive)
    expected = read_sha256_file(archive)
    try:
        raw_file = open(archive, "rb")  # noqa: SIM115 (closed below; the hash must see every byte)
    except OSError as exc:
        raise storage_error(exc, f"reading {archive}", archive.parent) from exc
    with raw_file:
        raw = _HashingReader(raw_file)
        max_size = DEFLATE_MAX_RATIO * max(archive.stat().st_size, tarfile.RECORDSIZE)
        yield from _read_tar(archive, raw, max_size, into)
        if expected is not None and raw.sha256.hexdigest() != expected:
            raise IntegrityError(f"{archive} does not match its sha256 file ({archive.name}.sha256); refusing it")


def _read_tar(archive: Path, raw: _HashingReader, max_size: int, into: Path | None) -> Iterator[Member]:
    seen: set[str] = set()
    try:
        # gzip.GzipFile, not tarfile's "r|gz": the archive may hold several gzip members (our parallel
        # writer, pigz), which tarfile's own stream reader does not follow.
        with (
            gzip.GzipFile(fileobj=raw, mode="rb") as gz,  # type: ignore[call-overload]  # reads only, never seeks
            tarfile.open(fileobj=gz, mode="r|", tarinfo=_strict_tarinfo(max_size)) as tar,
        ):
            while (info := tar.next()) is not None:
                tar.members.clear()  # type: ignore[attr-defined]  # tarfile keeps every header it read: keep none
                name = _check_member(info, seen)
                if into is not None:
                    _write_member(tar, info, into / name, into)
                yield Member(name, info.size, info.isdir())
            _expect_only_zeros(tar)
            while gz.read(1 << 20):  # to the end of the gzip stream, so that its CRC and length are checked
                pass
    except (IntegrityError, StorageError):
        raise
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise IntegrityError(f"{archive} is not a complete gzip tar archive ({exc or type(exc).__name__})") from exc
    except OSError as exc:
        raise storage_error(exc, f"reading {archive}", archive.parent) from exc
    if not seen:
        raise IntegrityError(f"{archive} holds no files: not a ZooKeeper backup")


def _check_member(info: tarfile.TarInfo, seen: set[str]) -> str:
    name = normalise(info.name)
    if info.issym() or info.islnk():
        raise IntegrityError(f"archive member {info.name!r} is a link; refusing it")
    if info.issparse() or not (info.isreg() or info.isdir()):
        raise IntegrityError(f"archive member {info.name!r} is not a regular file or directory")
    if not info.isdir():
        if name in seen:
            raise IntegrityError(f"archive member {info.name!r} appears twice; refusing an ambiguous archive")
        if len(seen) >= MAX_MEMBERS:
            raise IntegrityError(f"archive holds more than {MAX_MEMBERS} files: not a ZooKeeper data directory")
        seen.add(name)
    return name


def _expect_only_zeros(tar: tarfile.TarFile) -> None:
    """After the end-of-archive marker only zero padding may follow: anything else was cut off by damage."""
    assert tar.fileobj is not None
    while chunk := tar.fileobj.read(1 << 20):
        if chunk.strip(b"\0"):
            raise IntegrityError("data after the tar end-of-archive marker (a damaged header?); refusing it")


def _write_member(tar: tarfile.TarFile, info: tarfile.TarInfo, target: Path, into: Path) -> None:
    # ``target`` comes from normalise(): relative, no "..", so it stays inside the directory.
    try:
        if info.isdir():
            target.mkdir(parents=True, exist_ok=True)
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        ensure_free_space(into, info.size, f"extracting {info.name}")
        source = tar.extractfile(info)
        assert source is not None
        with open(target, "xb") as out:
            shutil.copyfileobj(source, out, 1 << 20)
    except OSError as exc:
        raise storage_error(exc, f"extracting {info.name}", into) from exc


def read_sha256_file(archive: Path) -> str | None:
    """The sha256 that ``<archive>.sha256`` (``sha256sum`` format) records, or None without one."""
    sidecar = archive.with_name(archive.name + ".sha256")
    try:
        text = sidecar.read_text(errors="replace")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise storage_error(exc, f"reading {sidecar}", sidecar.parent) from exc
    digest = text.split()[0].lower() if text.split() else ""
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise IntegrityError(f"{sidecar} does not hold a sha256; fix or remove it")
    return digest


Progress = Callable[[str, int, int], None]  # (phase, files so far, bytes so far)


def validate(archive: Path, into: Path | None = None, progress: Progress | None = None) -> list[Member]:
    """Read the whole archive and return its members; IntegrityError on the first problem.

    With ``into`` the members are extracted there in the same pass (see :func:`iter_members`);
    ``progress`` is told the files and bytes read after each member.
    """
    members: list[Member] = []
    files = size = 0
    for member in iter_members(archive, into):
        members.append(member)
        files, size = files + (not member.is_dir), size + member.size
        if progress is not None:
            progress("checking and extracting" if into is not None else "checking", files, size)
    return members
