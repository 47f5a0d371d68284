"""The records the engine hands out: a znode as read, one change of a difference, and the counts of a read,
an apply and a difference."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal, NamedTuple

from kazoo.protocol.states import ZnodeStat
from kazoo.security import ACL


@dataclass(frozen=True, slots=True)
class ZNode:
    """One znode. ``path`` is absolute in the connection's namespace (below its chroot).

    ``stat`` is ZooKeeper's as read (from an archive: the fields it records, ``numChildren`` -1 when the
    archive did not record it); a restore uses its ``cversion`` to keep sequential names unique.
    """

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
    reconnects: int = 0  # sessions opened again after a fault (the read went on where it was)
    server: str = ""  # the member the read's main session is on (the latest one after a reconnect)


@dataclass(slots=True)
class ApplyStats:
    """What an apply changed, or what a difference would change (same counts, nothing written)."""

    created: int = 0
    updated: int = 0  # data and/or ACL set
    deleted: int = 0
    unchanged: int = 0
    counters: int = 0  # parents whose child counter (cversion) was raised to the archive's
    counter_children: int = 0  # throw-away children created (and deleted) to raise them
    reconnects: int = 0  # sessions opened again after a fault
    server: str = ""  # the member the writer's session is on (the latest one after a reconnect)

    def to_dict(self) -> dict[str, int]:
        """The counts (what a dry run reports), without the session's details."""
        counts = asdict(self)
        del counts["reconnects"], counts["server"]
        return counts


class Change(NamedTuple):
    """One change a difference found (or an apply made), in pre-order of ``path``."""

    op: Literal["create", "update", "delete"]
    path: str

    def to_dict(self) -> dict[str, str]:
        return {"op": self.op, "path": self.path}


@dataclass(slots=True)
class TreeDiff:
    """A difference between a live subtree and a stream: every count, and the first ``len(changes)``
    changes in pre-order (``left_out`` more were not kept)."""

    stats: ApplyStats = field(default_factory=ApplyStats)
    changes: list[Change] = field(default_factory=list)
    left_out: int = 0

    def to_dict(self) -> dict[str, object]:
        """``{"created": n, "updated": n, "deleted": n, "unchanged": n, ..., "changes": [{"op", "path"}],
        "left_out": n}`` (issue 14's dry-run document, with the counter fields beside it)."""
        return {**self.stats.to_dict(), "changes": [c.to_dict() for c in self.changes], "left_out": self.left_out}


def path_key(path: str) -> tuple[str, ...]:
    """Sort key that orders paths in pre-order with sorted children."""
    return tuple(p for p in path.split("/") if p)


def is_under(path: str, ancestor: str) -> bool:
    """Whether ``path`` is ``ancestor`` or in its subtree (both normalised absolute paths)."""
    return path == ancestor or ancestor == "/" or path.startswith(ancestor + "/")


def parent_of(path: str) -> str:
    """The parent of a normalised absolute path other than ``/``."""
    return path.rpartition("/")[0] or "/"
