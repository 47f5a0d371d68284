"""What one restore touches: the backup's components, or some subtrees of them (``--path``), or one subtree
moved under another root (``--map SRC=DST``).

:func:`plan_restore` turns a restore request into :class:`Target` s, one per component it applies to; the
job steps (:mod:`.restore`, :mod:`.dry_run`) apply, compare and diff each target, and back up exactly
:meth:`Target.touched` first (the safety backup), so a failure rolls back those subtrees only.
Every check that needs no ZooKeeper is made here, before anything runs: a path that is not absolute
or outside every component's root, a malformed mapping (:class:`UsageError`, 400 / exit 2).

Where a component is applied comes from this cluster's component registry, never from the catalog: a
record whose root for a component differs from the registry's, or that holds a component the registry
does not know, is refused (:func:`registry_roots`, IntegrityError, 422) before anything runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from dcos_backup.catalog.models import BackupRecord
from dcos_backup.components import ZkSubtree
from dcos_backup.errors import IntegrityError, UsageError
from dcos_backup.iam import znodes
from dcos_backup.logical import ApplyStats, OpLog, PathMap, ZNode
from dcos_backup.logical.records import is_under
from dcos_backup.logical.subtrees import normal_path

RESERVED = ("/zookeeper", "/dcos-backup")  # ZooKeeper's own subtree and the service's (its lock): never a DST

# The users and their grants (issue 26): a component of every service, backed up only when named (dcos backup
# create --component iam), restored in place only, under the service's ACL (the engine's), and only for a
# superuser (the API's check: restoring grants is privilege).
IAM = ZkSubtree("iam", znodes.IAM, by_default=False)
PRIVILEGED = frozenset({IAM.name})  # components whose restore, dry run or download needs dcos:superuser


def with_iam(components: Sequence[ZkSubtree]) -> tuple[ZkSubtree, ...]:
    """The registry of a service configured with ``components``: those and :data:`IAM` (UsageError if one of
    them takes its name or lies in the service's own subtree)."""
    for comp in components:
        if comp.name == IAM.name or is_under(comp.root, znodes.ROOT):
            raise UsageError(f"component {comp.name}={comp.root}: the name iam and {znodes.ROOT} are the service's own")
    return (*components, IAM)


@dataclass(frozen=True)
class Target:
    """One component's part of a restore: its archive's nodes (``src_paths`` of them, or all), applied at
    ``root`` (``paths`` of it, or all), moved by ``mapping`` if one is given."""

    component: str
    root: str  # where the archive is applied: the component's root, or the mapping's DST
    paths: tuple[str, ...] | None = None  # subtrees of root to restore (None: all of it)
    src_paths: tuple[str, ...] = ()  # what the archive must hold (checked before anything is written)
    mapping: PathMap | None = None

    def nodes(self, archive: Iterable[ZNode]) -> Iterable[ZNode]:
        """The archive's stream as this target applies it."""
        return self.mapping.map_nodes(archive) if self.mapping is not None else archive

    def touched(self) -> tuple[str, ...]:
        """The live subtrees the restore may change: what its safety backup must hold."""
        return self.paths if self.paths is not None else (self.root,)


@dataclass
class Plan:
    """A target's difference as the restore's safety-backup pass computed it: the operations, kept on disk
    until the safety backup is journalled, and their counts."""

    target: Target
    ops: OpLog
    stats: ApplyStats


def plan_restore(
    record: BackupRecord, paths: Sequence[str] = (), mapping: str | None = None, *, registry: Sequence[ZkSubtree]
) -> list[Target]:
    """The targets of a restore of ``record`` into the components ``registry`` defines; with neither
    ``paths`` nor ``mapping``, every component whole."""
    chosen = sorted({normal_path(p, "--path") for p in paths})
    roots = registry_roots(record, registry)
    if mapping is not None:
        return [_mapped_target(roots, PathMap.parse(mapping), chosen)]
    if not chosen:
        return [Target(name, root) for name, root in roots.items()]
    for path in chosen:
        if not any(is_under(path, root) for root in roots.values()):
            raise UsageError(f"--path {path} is not under any component's root ({', '.join(roots.values())})")
    targets = []
    for name, root in roots.items():
        mine = tuple(p for p in chosen if is_under(p, root))
        if mine:
            targets.append(Target(name, root, mine, mine))
    return targets


def registry_roots(record: BackupRecord, registry: Sequence[ZkSubtree]) -> dict[str, str]:
    """Each component of ``record`` -> its root in ``registry``; IntegrityError if the record disagrees."""
    known = {comp.name: comp.root for comp in registry}
    roots = {}
    for name, comp in record.component_status.items():
        if name not in known:
            raise IntegrityError(
                f"backup {record.id} holds a component {name!r:.40} this cluster does not have "
                f"({', '.join(known)}); nothing was changed"
            )
        if comp.root != known[name]:
            raise IntegrityError(
                f"backup {record.id}: its record says component {name} is {comp.root!r:.80}, this cluster's "
                f"registry says {known[name]}; nothing was changed"
            )
        roots[name] = known[name]
    return roots


def _mapped_target(roots: dict[str, str], mapping: PathMap, paths: list[str]) -> Target:
    owner = next((name for name, root in roots.items() if is_under(mapping.src, root)), None)
    if owner is None:
        raise UsageError(f"--map source {mapping.src} is not under any component's root ({', '.join(roots.values())})")
    if owner in PRIVILEGED:
        raise UsageError(f"--map: the {owner} component is restored only in place, at {roots[owner]}")
    for reserved in RESERVED:
        if is_under(mapping.dst, reserved) or is_under(reserved, mapping.dst):
            raise UsageError(f"--map destination {mapping.dst} would overwrite {reserved}")
    for path in paths:
        if not is_under(path, mapping.src):
            raise UsageError(f"--path {path} is not under the --map source {mapping.src}")
    if not paths:
        return Target(owner, mapping.dst, None, (mapping.src,), mapping)
    return Target(owner, mapping.dst, tuple(mapping.map_path(p) for p in paths), tuple(paths), mapping)


def components_of(targets: Iterable[Target]) -> list[str]:
    """The components a restore works on, in order, once each."""
    return list(dict.fromkeys(t.component for t in targets))


def safety_roots(targets: Sequence[Target]) -> dict[str, str]:
    """The safety backup's components: one per touched subtree, named after its component (``marathon``,
    or ``marathon-1``, ``marathon-2``, ... for a restore of some subtrees or into another root)."""
    roots = {}
    for target in targets:
        whole = target.paths is None and target.mapping is None
        for i, path in enumerate(target.touched(), 1):
            roots[target.component if whole else f"{target.component}-{i}"] = path
    return roots
