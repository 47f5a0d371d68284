"""What a backup contains: a registry of components, each a ZooKeeper subtree.

``marathon`` is the subtree ``/marathon`` (the seed's only component). More are added with
``register(ZkSubtree("name", "/path"))`` or the service's ``--component name=/path`` flag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dcos_backup.errors import UsageError

_NAME_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}")


@dataclass(frozen=True)
class ZkSubtree:
    """A component stored as one ZooKeeper subtree (data, ACLs; ephemeral nodes are skipped)."""

    name: str
    root: str

    def __post_init__(self) -> None:
        if not _NAME_RE.fullmatch(self.name):
            raise UsageError(f"invalid component name {self.name!r}: lowercase letters, digits, '-' and '_'")
        if not self.root.startswith("/") or (self.root != "/" and self.root.endswith("/")) or "//" in self.root:
            raise UsageError(f"invalid ZooKeeper path {self.root!r} for component {self.name}")


def archive_name(component: str) -> str:
    """The file name of a component's archive in its backup's directory."""
    return f"{component}.dcosbkp"


MARATHON = ZkSubtree("marathon", "/marathon")
DEFAULT_COMPONENTS: tuple[ZkSubtree, ...] = (MARATHON,)


def parse_component(spec: str) -> ZkSubtree:
    """``name=/zk/path`` -> ZkSubtree."""
    name, sep, root = spec.partition("=")
    if not sep:
        raise UsageError(f"--component wants NAME=/zk/path, got {spec!r}")
    return ZkSubtree(name.strip(), root.strip())
