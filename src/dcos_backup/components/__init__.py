"""What a backup contains: a registry of components, each a ZooKeeper subtree.

By default ``marathon`` (``/marathon``) and ``metronome`` (``/metronome``); a root that does not exist
backs up as an empty archive (and a restore of it leaves the root absent). A cluster configures its own
with the service's ``--component name=/path`` flags (they replace the defaults); ``dcos backup create
--component NAME`` backs up some of them. Beside them the service always has ``iam``, the users and their
grants (:data:`dcos_backup.jobs.plan.IAM`), backed up only when named and restored only by a superuser.
Application hooks around a restore: :mod:`.hooks`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from dcos_backup.errors import UsageError

_NAME_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}")


@dataclass(frozen=True)
class ZkSubtree:
    """A component stored as one ZooKeeper subtree (data, ACLs; ephemeral nodes are skipped)."""

    name: str
    root: str
    by_default: bool = True  # in a backup that names no components (``iam`` is not: only when named)

    def __post_init__(self) -> None:
        if not _NAME_RE.fullmatch(self.name):
            raise UsageError(f"invalid component name {self.name!r}: lowercase letters, digits, '-' and '_'")
        if not self.root.startswith("/") or (self.root != "/" and self.root.endswith("/")) or "//" in self.root:
            raise UsageError(f"invalid ZooKeeper path {self.root!r} for component {self.name}")


def archive_name(component: str) -> str:
    """The file name of a component's archive in its backup's directory."""
    return f"{component}.dcosbkp"


MARATHON = ZkSubtree("marathon", "/marathon")
METRONOME = ZkSubtree("metronome", "/metronome")
DEFAULT_COMPONENTS: tuple[ZkSubtree, ...] = (MARATHON, METRONOME)


def choose(registry: Sequence[ZkSubtree], names: Sequence[str] = ()) -> tuple[ZkSubtree, ...]:
    """The components ``names`` of ``registry`` (without names, those it backs up by default); an unknown name
    is a UsageError."""
    if not names:
        return tuple(comp for comp in registry if comp.by_default)
    known = {comp.name: comp for comp in registry}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UsageError(f"unknown component {', '.join(unknown)}: this cluster has {', '.join(known)}")
    return tuple(known[n] for n in dict.fromkeys(names))


def parse_component(spec: str) -> ZkSubtree:
    """``name=/zk/path`` -> ZkSubtree."""
    name, sep, root = spec.partition("=")
    if not sep:
        raise UsageError(f"--component wants NAME=/zk/path, got {spec!r}")
    return ZkSubtree(name.strip(), root.strip())
