"""The records the engine hands out: a znode as read, and the counts of a read and of an apply."""

from __future__ import annotations

from dataclasses import dataclass

from kazoo.protocol.states import ZnodeStat
from kazoo.security import ACL


@dataclass(frozen=True, slots=True)
class ZNode:
    """One znode. ``path`` is absolute in the connection's namespace (below its chroot)."""

    path: str
    data: bytes
    acl: tuple[ACL, ...]
    stat: ZnodeStat | None = None


@dataclass(slots=True)
class ReadStats:
    nodes: int = 0
    bytes: int = 0
    skipped_ephemeral: int = 0
    min_zxid: int | None = None  # zxid in the header of the first reply of the read
    max_zxid: int = 0  # ... and of the last one: the read saw every change up to min_zxid


@dataclass(slots=True)
class ApplyStats:
    created: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0


def path_key(path: str) -> tuple[str, ...]:
    """Sort key that orders paths in pre-order with sorted children."""
    return tuple(p for p in path.split("/") if p)
