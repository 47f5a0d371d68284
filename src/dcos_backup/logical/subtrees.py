"""Parts of a pre-order stream of znodes: which subtrees a restore covers, and a stream moved elsewhere.

Pure functions over streams (no ZooKeeper), used by :func:`~dcos_backup.logical.apply_tree`,
:func:`~dcos_backup.logical.diff_tree` and :func:`~dcos_backup.logical.compare_tree` (``paths=``) and by callers:

- :func:`subtree_paths`: validated paths -> the disjoint subtrees they cover, in pre-order;
- :func:`missing_subtrees`: which of them a stream does not hold (to refuse before anything is written);
- :class:`PathMap`: ``SRC=DST``, the subtree at SRC of a stream rewritten to lie at DST.

Streams are in canonical pre-order (parents first, children sorted by name, :func:`path_key`), so a
subtree is one contiguous run of a stream and every split here is a single pass in bounded memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from dcos_backup.errors import NotFound, UsageError
from dcos_backup.logical.records import ZNode, is_under, path_key


def normal_path(path: str, what: str = "path") -> str:
    """An absolute znode path as ZooKeeper spells it (no trailing slash, no ``.``/``..``); else UsageError."""
    if not isinstance(path, str) or not path.startswith("/") or "\x00" in path:
        raise UsageError(f"{what} {path!r} is not an absolute znode path")
    parts = path.split("/")[1:]
    if path != "/" and any(p in ("", ".", "..") for p in parts):
        raise UsageError(f"{what} {path!r} is not a normalised znode path (empty, '.' or '..' element)")
    return path


def subtree_paths(root: str, paths: Iterable[str] | None = None) -> list[str]:
    """The subtrees ``paths`` cover under ``root``, in pre-order, without duplicates or nested ones.

    ``None`` means the whole of ``root``. A path that is not absolute and normalised, or not in
    ``root``'s subtree, is a :class:`UsageError`.
    """
    root = normal_path(root, "root")
    if paths is None:
        return [root]
    chosen: list[str] = []
    for path in sorted({normal_path(p) for p in paths}, key=path_key):
        if not is_under(path, root):
            raise UsageError(f"path {path} is not under {root}")
        if not chosen or not is_under(path, chosen[-1]):
            chosen.append(path)
    if not chosen:
        raise UsageError("no path given")
    return chosen


def missing_subtrees(nodes: Iterable[ZNode], paths: Sequence[str]) -> list[str]:
    """The ``paths`` (in their order) at which the stream holds no node; consumes the stream.

    Run it over an archive before a restore limited to ``paths``, so a path it does not hold is
    refused before anything is written.
    """
    wanted = set(paths)
    found = {node.path for node in nodes if node.path in wanted}
    return [p for p in paths if p not in found]


@dataclass(frozen=True)
class PathMap:
    """``SRC=DST``: the subtree at ``src`` of a stream, moved to ``dst`` (e.g. ``/marathon=/marathon-copy``).

    ``map_nodes`` keeps only SRC's subtree and rewrites each path's SRC prefix to DST; pre-order is kept
    (the order below SRC does not depend on SRC's name). Applying the result at DST never touches SRC:
    the two may not overlap.
    """

    src: str
    dst: str

    def __post_init__(self) -> None:
        for name in ("src", "dst"):
            if normal_path(getattr(self, name), f"mapping {name.upper()}") == "/":
                raise UsageError(f"cannot map the whole tree ({name.upper()} is /)")
        if is_under(self.src, self.dst) or is_under(self.dst, self.src):
            raise UsageError(f"cannot map {self.src} to {self.dst}: one contains the other")

    @classmethod
    def parse(cls, text: str) -> PathMap:
        """``"SRC=DST"`` -> a mapping; a malformed one is a :class:`UsageError`."""
        src, sep, dst = text.partition("=")
        if not sep or not src or not dst:
            raise UsageError(f"invalid path mapping {text!r}: expected SRC=DST, e.g. /marathon=/marathon-copy")
        return cls(src, dst)

    def map_path(self, path: str) -> str:
        """A path in SRC's subtree -> the same place under DST."""
        return self.dst + path[len(self.src) :]

    def map_nodes(self, nodes: Iterable[ZNode]) -> Iterator[ZNode]:
        """The stream's subtree at SRC, moved to DST (other nodes are dropped)."""
        src, cut, dst = self.src, len(self.src), self.dst
        inside = False
        for node in nodes:
            if is_under(node.path, src):
                inside = True
                yield ZNode(dst + node.path[cut:], node.data, node.acl, node.stat)
            elif inside:
                return  # past SRC's subtree: nothing later in pre-order is in it


@dataclass
class Scope:
    """One subtree a merge covers: its path, the stream's nodes above it (ancestors the stream holds,
    to create if missing) and its part of the stream (consume it before asking for the next scope)."""

    path: str
    ancestors: list[ZNode]
    nodes: Iterator[ZNode]
    empty: bool  # the stream holds nothing of it


def split_scopes(nodes: Iterable[ZNode], paths: Sequence[str], require: bool = True) -> Iterator[Scope]:
    """The stream cut into the subtrees at ``paths`` (from :func:`subtree_paths`), in one pass.

    With ``require``, a path the stream does not hold raises :class:`NotFound` when its turn comes, before
    anything of it is read or written (earlier scopes may have been: use :func:`missing_subtrees` first
    to refuse early). Without, such a scope comes out empty (a restore then deletes it: an archive of a
    root that did not exist is empty).
    """
    stream = _Cursor(iter(nodes))
    for path in paths:
        stream.skip_to(path)
        held = stream.head is not None and stream.head.path == path
        if require and not held:
            raise NotFound(f"the backup does not hold {path}", path=path)
        ancestors = [n for n in stream.above if n.path != path]
        yield Scope(path, ancestors, stream.take_subtree(path), empty=not held)
        stream.drain_subtree(path)


class _Cursor:
    """A stream read one node ahead, remembering the stream's nodes above the next subtree to cut."""

    def __init__(self, nodes: Iterator[ZNode]) -> None:
        self.nodes = nodes
        self.above: list[ZNode] = []  # nodes skipped so far that are ancestors-or-self of ``head``
        self.head = next(nodes, None)

    def skip_to(self, path: str) -> None:
        """Move to the first node at or after ``path`` in pre-order."""
        key = path_key(path)
        while self.head is not None:
            self._climb(self.head)
            if path_key(self.head.path) >= key:
                return
            self.head = next(self.nodes, None)

    def _climb(self, node: ZNode) -> None:
        above = self.above
        if above and above[-1] is node:
            return
        while above and not is_under(node.path, above[-1].path):
            above.pop()
        above.append(node)

    def take_subtree(self, path: str) -> Iterator[ZNode]:
        # Nodes inside a cut subtree are never above a later one (cut subtrees are disjoint): not tracked.
        prefix = path if path == "/" else path + "/"
        nodes = self.nodes
        head = self.head
        while head is not None and (head.path == path or head.path.startswith(prefix)):
            self.head = next(nodes, None)
            yield head
            head = self.head

    def drain_subtree(self, path: str) -> None:
        for _ in self.take_subtree(path):
            pass
