"""A restore from a point of the continuous archive, online: ``POST /restore`` with ``{"point": ...}``.

The point's state of the subtrees asked for is rebuilt from the cluster's repository
(:func:`~dcos_backup.physical.continuous.state.state_at`: snapshot + segments, replayed with ZooKeeper's
digests) and written as a **point backup**: an ordinary catalog backup labelled ``point-<zxid>``, one
component archive per component the paths lie in, holding exactly those subtrees, its record saying the
point (``point``: asked, restored zxid, history). Then that backup is restored like any other, with
``--path``/``--map``: safety backup, difference, apply, verify, rollback, fencing, the record going
STATUS_RESTORING -> STATUS_READY/ERROR. A dry run builds it into a temporary catalog instead and computes
the difference only. No ZooKeeper member is restarted and writes elsewhere in the tree are kept.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from dcos_backup.catalog.archive import ArchiveWriter
from dcos_backup.catalog.models import ArchivePoint, BackupRecord, ZxidWindow
from dcos_backup.catalog.storage import LocalStorage, Storage
from dcos_backup.components import ZkSubtree, archive_name
from dcos_backup.errors import NotFound, UsageError
from dcos_backup.logical import PathMap
from dcos_backup.logical.records import is_under, parent_of, path_key
from dcos_backup.logical.subtrees import normal_path
from dcos_backup.physical.continuous.index import parse_time, parse_zxid
from dcos_backup.physical.continuous.pitr import Target
from dcos_backup.physical.continuous.repository import Repository
from dcos_backup.physical.continuous.state import PointState, state_at

log = logging.getLogger(__name__)

NO_ARCHIVE = (
    "no continuous archive configured: this service restores points only from the cluster's repository "
    "(start it with --zk-archive and --zk-archive-key-file; dcos-local up --zk-archive wires them)"
)

RepositoryOpener = Callable[[], Repository]


@dataclass(frozen=True)
class Point:
    """A point of the continuous archive, as a request gives it: exactly one of a time and a zxid."""

    time: str | None = None  # RFC 3339
    zxid: str | None = None  # decimal or 0x hex

    def target(self) -> Target:
        if (self.time is None) == (self.zxid is None):
            raise UsageError("a point is exactly one of a time (--to-time) and a zxid (--to-zxid)")
        if self.time is not None:
            return Target(time_us=parse_time(self.time))
        assert self.zxid is not None
        return Target(zxid=parse_zxid(self.zxid))

    def describe(self) -> str:
        return f"time {self.time}" if self.time is not None else f"zxid {self.zxid}"


def source_subtrees(paths: Sequence[str], mapping: str | None) -> list[str]:
    """The subtrees a point restore reads from the archive: the ``paths`` (source side when mapped), or
    the mapping's SRC; disjoint, in pre-order. A point restore always names what it restores."""
    chosen = sorted({normal_path(p, "--path") for p in paths}, key=path_key)
    if not chosen and mapping is not None:
        chosen = [PathMap.parse(mapping).src]
    if not chosen:
        raise UsageError("a restore from a point needs --path (or --map): it restores subtrees, not whole components")
    disjoint: list[str] = []
    for path in chosen:
        if not disjoint or not is_under(path, disjoint[-1]):
            disjoint.append(path)
    return disjoint


def components_for(sources: Sequence[str], registry: Sequence[ZkSubtree]) -> dict[str, tuple[str, list[str]]]:
    """Each component holding some of ``sources`` -> (its root, those sources); UsageError for a source
    under no component's root."""
    found: dict[str, tuple[str, list[str]]] = {}
    for path in sources:
        owner = next((c for c in registry if is_under(path, c.root)), None)
        if owner is None:
            roots = ", ".join(c.root for c in registry)
            raise UsageError(f"--path {path} is not under any component's root ({roots})")
        found.setdefault(owner.name, (owner.root, []))[1].append(path)
    return found


def ancestors(path: str, root: str) -> list[str]:
    """The paths from ``root`` down to the parent of ``path`` (which lies under ``root``), top-down."""
    chain = []
    while path != root and path != "/":
        path = parent_of(path)
        chain.append(path)
    return chain[::-1]


def _discard(storage: Storage, backup_id: str) -> None:
    """Drop what a point backup that failed before its record was written left (no record: never listed)."""
    storage.remove_partials(backup_id)
    for info in storage.objects.list(f"{backup_id}/"):
        storage.objects.delete(info.key)


class PointBackups:
    """Builds point backups from the repository ``open_repository()`` returns (None: not configured)."""

    def __init__(
        self,
        open_repository: RepositoryOpener | None,
        registry: Sequence[ZkSubtree],
        dcos_version: str,
        tmp_dir: Path | None = None,
    ) -> None:
        self.open_repository = open_repository
        self.registry = tuple(registry)
        self.dcos_version = dcos_version
        self.tmp_dir = tmp_dir

    def build(self, storage: Storage, point: Point, paths: Sequence[str], mapping: str | None) -> BackupRecord:
        """The point backup of the subtrees a restore of ``paths``/``mapping`` reads, written READY into
        ``storage``; raises (nothing written) for a point outside the window or a subtree absent then."""
        if self.open_repository is None:
            raise UsageError(NO_ARCHIVE)
        target = point.target()
        sources = source_subtrees(paths, mapping)
        owners = components_for(sources, self.registry)
        repo = self.open_repository()
        with state_at(repo, target, self.tmp_dir) as state:
            at = f"zxid {state.info.zxid}" + (f" ({state.info.time})" if state.info.time else "")
            missing = [p for p in sources if not state.exists(p)]
            if missing:
                raise NotFound(f"{', '.join(missing)} did not exist at {at}; nothing was changed")
            info = state.info
            record = BackupRecord.start(
                f"point-{info.zxid.removeprefix('0x')}",
                {name: root for name, (root, _) in owners.items()},
                self.dcos_version,
            )
            record.point = ArchivePoint(
                requested=point.describe(),
                zxid=info.zxid,
                time=info.time,
                generation=info.generation,
                snapshot=info.snapshot,
                transactions=info.transactions,
                digest=info.digest,
                digests_checked=info.digests_checked,
                note=info.note,
            )
            try:
                for name, (root, subtrees) in owners.items():
                    self._write_component(storage, record, state, name, root, subtrees)
            except BaseException:
                _discard(storage, record.id)
                raise
            record.finish()
        storage.write(record)
        log.info("point backup %s of %s: %s", record.id, at, ", ".join(sources))
        return record

    def _write_component(
        self, storage: Storage, record: BackupRecord, state: PointState, name: str, root: str, subtrees: list[str]
    ) -> None:
        entry = record.start_component(name)
        skipped = state.skipped_ephemeral
        archive = archive_name(name)
        held: set[str] = set()  # ancestors already written
        with storage.archive_writer(record.id, archive) as raw:
            writer = ArchiveWriter(raw, name, root)
            for subtree in subtrees:
                # Its ancestors first (pre-order): a parent deleted live too comes back as it was, not empty.
                for path in ancestors(subtree, root):
                    node = state.node(path)
                    if path not in held and node is not None:
                        held.add(path)
                        writer.add(node)
                for node in state.nodes(subtree):
                    writer.add(node)
            summary = writer.close()
        zxid = int(state.info.zxid, 16)
        entry.finish(archive, summary, state.skipped_ephemeral - skipped, ZxidWindow(first=zxid, last=zxid))

    @contextlib.contextmanager
    def scratch_catalog(self, storage: Storage) -> Iterator[Storage]:
        """A private catalog for a dry run's point backup (with ``storage``'s keys), removed afterwards."""
        with tempfile.TemporaryDirectory(prefix=".dcos-backup-point-dry-run-", dir=self.tmp_dir) as work:
            yield LocalStorage(Path(work), storage.key, storage.record_key)
