"""The pipelined tree reader: a subtree streamed in canonical pre-order with many requests in flight.

Per znode it needs data + stat, ACL, and (when the stat says it has any) the children. Data and
children requests are batched into ZooKeeper's ``multiRead`` (3.6+, :class:`~.protocol.MultiRead`),
which costs the server about one request per batch; ``getACL`` cannot be batched, so it goes out on its
own. Measured on the 2-core machine: about 10,000 znodes/s with single requests, about twice that with
batches.

Requests go out earliest-in-pre-order first (a heap over sibling lists), so the replies that arrive
before their turn to be emitted are few, and memory stays bounded by the window, not the tree.

A reader can start *after* a path (``after=P``): it then yields only what follows P in pre-order. Since
children are sorted, "after P" is well defined whatever changed meanwhile; a read that lost its sessions
goes on with a new reader from its :attr:`TreeReader.position`. The ancestors of P are read again (their
children lists are needed) but not yielded, and their children up to P's branch are not requested.
"""

from __future__ import annotations

import bisect
import contextlib
import heapq
import itertools
import select
from collections import deque
from collections.abc import Iterator
from typing import cast

from kazoo.exceptions import ConnectionLoss, NoAuthError, NoNodeError, SessionExpiredError, SessionMovedError
from kazoo.protocol.serialization import Sync, stat_struct
from kazoo.protocol.states import ZnodeStat
from kazoo.security import ACL

from dcos_backup.errors import AccessDenied, UsageError, ZooKeeperUnavailable
from dcos_backup.logical.protocol import GET_CHILDREN, GET_DATA, ErrorResult, GetACLRequest, MultiRead
from dcos_backup.logical.records import ReadStats, ZNode, is_under, path_key
from dcos_backup.logical.ride import Outage
from dcos_backup.logical.spec import ZkSpec
from dcos_backup.logical.wire import OFFSET, Connection, Reply

DEFAULT_WINDOW = 256  # requests in flight (a batch counts once)
# Sessions for getACL besides the main one. Measured on 100k znodes: one session 13k znodes/s, one ACL
# session more 20k/s, two more 25k/s (above the one-socket getData ceiling).
ACL_SESSIONS = 2
BATCH_SIZE = 32
ACL_CACHE = 1024  # distinct ACLs remembered (parsed once each)
_GET_ACL = GetACLRequest.type
_REQUEST_NAMES = {GET_DATA: "getData", GET_CHILDREN: "getChildren", _GET_ACL: "getACL"}
# Errors a reply can carry that mean the session, not the node, is the problem.
_SESSION_ERRORS = (ConnectionLoss, SessionExpiredError, SessionMovedError)


class _Node:
    """A znode from its request to its emission: the replies gathered so far and its place in the walk."""

    __slots__ = (
        "acl",
        "children",
        "children_emitted",
        "children_requested",
        "data",
        "emitted",
        "hidden",
        "key",
        "kids",
        "path",
        "skip",
        "stat",
        "waiting",
    )

    def __init__(self, path: str, key: tuple[str, ...]) -> None:
        self.path = path
        self.key = key
        self.data: bytes | None = None
        self.acl: tuple[ACL, ...] = ()
        self.stat: ZnodeStat | None = None
        # Only names are kept; a child's node object exists from its request to its emission, so a
        # directory of 500,000 children costs its name list, not 500,000 objects.
        self.children: list[str] | None = None  # sorted child names, once known
        self.children_requested = 0  # how many children are requested (in name order)
        self.kids: deque[_Node] = deque()  # child nodes requested but not emitted yet, in name order
        self.waiting = 2  # replies still expected: data and ACL (children are counted separately)
        self.skip = False  # ephemeral (when skipped), or deleted during the walk
        self.emitted = False  # handed out (or skipped); its children follow
        self.hidden = False  # handed out by an earlier reader (an ancestor of where this one starts)
        self.children_emitted = 0  # how many children are emitted (or skipped)

    @property
    def complete(self) -> bool:
        return self.waiting == 0 and self.children is not None

    def expect_no_children_if_gone(self) -> None:
        """A node deleted during the walk gets no children reply: complete once its other replies are in."""
        if self.skip and self.waiting == 0 and self.children is None:
            self.children = []


# The schedule: a heap of (key of a directory's next child to request, the directory), one entry per
# directory being walked, so requests go out earliest in pre-order first. Keys are distinct paths: the
# heap never compares the directories. A plain pair: the heap compares it in C, and one is made per znode.
_Scheduled = tuple[tuple[str, ...], _Node]


def _join(parent: str, child: str) -> str:
    return f"{parent}/{child}" if parent != "/" else f"/{child}"


class TreeReader:
    """``root`` and its subtree as :class:`ZNode` s in pre-order, children sorted; iterate it once.

    With ``acl_conns`` (more sessions) the getACL requests are spread over them, so the servers work
    on several streams at once. Nodes deleted during the walk are skipped; a missing ``root`` yields
    nothing. After the walk, ``skipped_ephemeral`` counts the ephemeral nodes left out. With ``after``
    (a path in root's subtree) only the nodes after it in pre-order are yielded. ``position`` is the
    last path handed out or skipped: where a new reader goes on if this one loses its sessions.
    A node we may not read raises :class:`AccessDenied` naming it.
    """

    __slots__ = (
        "_acl_cache",
        "_acl_turn",
        "_after",
        "_batch_nodes",
        "_batch_ops",
        "_schedule",
        "_stack",
        "acl_conns",
        "conn",
        "conns",
        "position",
        "root",
        "skip_ephemeral",
        "skipped_ephemeral",
        "window",
    )

    def __init__(
        self,
        conn: Connection,
        root: str,
        *,
        skip_ephemeral: bool = True,
        window: int = DEFAULT_WINDOW,
        acl_conns: list[Connection] | None = None,
        after: str | None = None,
    ) -> None:
        if after is not None and not is_under(after, root):
            raise UsageError(f"cannot resume a read of {root} after {after}: not in that subtree")
        self.conn = conn
        self.root = root
        self.position = after
        self._after = path_key(after) if after is not None else None
        self.skip_ephemeral = skip_ephemeral
        self.window = window
        self.acl_conns = acl_conns or [conn]
        self.conns = list(dict.fromkeys([conn, *self.acl_conns]))
        self.skipped_ephemeral = 0
        self._acl_turn = itertools.cycle(self.acl_conns)
        self._schedule: list[_Scheduled] = []  # the next child to request of each directory being walked
        self._stack: list[_Node] = []  # the emission cursor: the path from the root to the node being emitted
        self._batch_nodes: list[_Node] = []  # the multiRead being filled: the node of each op ...
        self._batch_ops: list[tuple[int, str]] = []  # ... and the op
        self._acl_cache: dict[bytes, tuple[ACL, ...]] = {}

    def __iter__(self) -> Iterator[ZNode]:
        self._sync()
        top = _Node(self.root, path_key(self.root))
        top.hidden = self._after is not None
        self._stack.append(top)
        self._request(top)
        while True:
            self._fill_window()
            yield from self._emit_ready()
            if not self._stack:
                return
            if not self._handle_buffered_replies():
                self._wait_for_replies()

    # ---------------------------------------------------------------- requests
    def _sync(self) -> None:
        """A follower catches up with the leader first."""
        for c in self.conns:
            c.queue(Sync(c.full_path(self.root)), None)
            for _ in c.replies():
                pass

    def _fill_window(self) -> None:
        """Request the earliest scheduled children; each adds at most one request to any connection.

        Taking a directory's next child puts the sibling after it in the schedule.
        """
        room = min(self.window - c.in_flight for c in self.conns)
        schedule = self._schedule
        while schedule and room > 0:
            room -= 1
            key, parent = heapq.heappop(schedule)
            assert parent.children is not None  # a node is scheduled once its children are known
            node = _Node(_join(parent.path, parent.children[parent.children_requested]), key)
            if parent.hidden:
                assert self._after is not None  # only a resumed walk hides nodes
                node.hidden = self._after[: len(key)] == key
            parent.kids.append(node)
            parent.children_requested += 1
            if parent.children_requested < len(parent.children):
                heapq.heappush(schedule, ((*parent.key, parent.children[parent.children_requested]), parent))
            self._request(node)

    def _request(self, node: _Node) -> None:
        self._add_to_batch(node, GET_DATA)
        target = next(self._acl_turn)
        target.queue(GetACLRequest(target.full_path(node.path)), node)

    def _add_to_batch(self, node: _Node, kind: int) -> None:
        self._batch_nodes.append(node)
        self._batch_ops.append((kind, self.conn.full_path(node.path)))
        if len(self._batch_nodes) >= BATCH_SIZE:
            self._send_batch()

    def _send_batch(self) -> None:
        if self._batch_nodes:
            self.conn.queue(MultiRead(self._batch_ops), self._batch_nodes)
            self._batch_nodes, self._batch_ops = [], []

    # ---------------------------------------------------------------- emission
    def _emit_ready(self) -> Iterator[ZNode]:
        """The nodes whose turn it is in pre-order and whose replies are all in."""
        stack = self._stack
        while stack:
            node = stack[-1]
            if not node.emitted:
                if not node.complete:
                    return
                node.emitted = True
                if node.hidden:  # handed out before: only its children after the resume point follow
                    if node.skip:
                        stack.pop()
                    continue
                self.position = node.path
                if node.skip:
                    if node.stat is not None and node.stat.ephemeralOwner:
                        self.skipped_ephemeral += 1
                    stack.pop()
                    continue
                data, node.data = node.data, None
                assert data is not None  # complete: its data is in
                yield ZNode(node.path, data, node.acl, node.stat)
            elif node.children_emitted < len(node.children or ()):
                if not node.kids:
                    return  # the next child is not requested yet: the window fills first
                stack.append(node.kids.popleft())
                node.children_emitted += 1
            else:
                node.children = []  # emitted: let the subtree go
                stack.pop()

    # ---------------------------------------------------------------- replies
    def _handle_buffered_replies(self) -> bool:
        """Handle the replies already received, without waiting; whether there were any."""
        # Batch up while replies are still buffered; send before waiting on the server.
        if not self.conn.reply_ready():
            self._send_batch()
        handled = False
        for c in self.conns:
            while c.in_flight and c.reply_ready():
                self._handle(c.next_reply())
                handled = True
        return handled

    def _wait_for_replies(self) -> None:
        """Wait until a server answers (pinging idle sessions meanwhile)."""
        busy = [c for c in self.conns if c.in_flight]
        if not busy:
            if self._schedule:
                return
            raise RuntimeError(f"tree reader stalled at {self._stack[-1].path}")
        if len(busy) == 1:
            self._handle(busy[0].next_reply())
            return
        for c in busy:
            c.flush()
            c.ping_if_idle()
        ready, _, _ = select.select(busy, [], [], self.conn.session_timeout / 3)
        for c in ready:
            c.receive()
        if not ready:
            for c in busy:
                c.check_silence()  # a frozen member is a lost one

    def _handle(self, reply: Reply) -> None:
        if type(reply.request) is MultiRead:
            if reply.err:
                raise _failure(reply.error())
            self._got_batch(reply)
        elif reply.err:
            self._gone(reply.tag, _GET_ACL, reply.error())
        else:
            self._got_acl(reply.tag, reply.body)

    def _got_batch(self, reply: Reply) -> None:
        results = MultiRead.deserialize(reply.body, OFFSET)
        for node, (kind, _), result in zip(reply.tag, reply.request.ops, results, strict=True):
            if type(result) is tuple:  # DataResult
                self._got_data(node, *result)
            elif type(result) is list:  # ChildrenResult
                self._got_children(node, result)
            else:
                self._gone(node, kind, cast(ErrorResult, result).exception())  # a NamedTuple: not `type() is tuple`

    def _got_data(self, node: _Node, data: bytes | None, stat: ZnodeStat) -> None:
        node.data, node.stat = data or b"", stat
        node.waiting -= 1
        if stat.ephemeralOwner and self.skip_ephemeral:
            node.skip = True
        if stat.numChildren == 0 or node.skip:
            node.children = []  # ephemeral nodes cannot have children
        else:
            self._add_to_batch(node, GET_CHILDREN)

    def _got_children(self, node: _Node, names: list[str]) -> None:
        node.children = sorted(names)
        if node.hidden and self._after is not None and len(node.key) < len(self._after):
            # Children before the resume point's branch were handed out with their subtrees already.
            del node.children[: bisect.bisect_left(node.children, self._after[len(node.key)])]
        if node.children:
            heapq.heappush(self._schedule, ((*node.key, node.children[0]), node))

    def _got_acl(self, node: _Node, body: bytes) -> None:
        # Most nodes share a handful of ACLs: parse each distinct one once (the reply ends with a stat).
        raw = body[OFFSET : len(body) - stat_struct.size]
        acl = self._acl_cache.get(raw)
        if acl is None:
            acl = tuple(GetACLRequest.deserialize(body, OFFSET)[0])
            if len(self._acl_cache) < ACL_CACHE:
                self._acl_cache[raw] = acl
        node.acl = acl
        node.waiting -= 1
        if node.skip:
            node.expect_no_children_if_gone()

    def _gone(self, node: _Node, kind: int, error: Exception) -> None:
        """A request for ``node`` failed: a node deleted during the walk is skipped, anything else is fatal."""
        if isinstance(error, NoAuthError):
            raise AccessDenied(
                f"not allowed to read {node.path} ({_REQUEST_NAMES[kind]}: NoAuth): "
                "the ZooKeeper credentials in use lack READ on it",
                path=node.path,
            )
        if not isinstance(error, NoNodeError):
            raise _failure(error)
        node.skip = True
        if kind == GET_CHILDREN:
            node.children = []
        else:
            node.waiting -= 1
            node.expect_no_children_if_gone()


def _failure(error: Exception) -> Exception:
    """A reply's error as the engine raises it: a lost session is ZooKeeperUnavailable (ridden over)."""
    if isinstance(error, _SESSION_ERRORS):
        return ZooKeeperUnavailable(f"ZooKeeper answered {type(error).__name__}")
    return error


def read_tree(
    spec: ZkSpec,
    root: str,
    *,
    skip_ephemeral: bool = True,
    stats: ReadStats | None = None,
    acl_sessions: int = ACL_SESSIONS,
) -> Iterator[ZNode]:
    """``root``'s subtree in pre-order on fresh sessions, riding over ZooKeeper faults.

    When the sessions are lost (a member dies, the leader changes, a member freezes), new ones are opened
    on any member and a new :class:`TreeReader` goes on after the last node handed out, so the stream is
    the same as without the fault; :class:`~.ride.Outage` bounds the time without progress.
    """
    stats = stats if stats is not None else ReadStats()
    outage = Outage(spec, f"reading {root}")
    position: str | None = None
    while True:
        try:
            with contextlib.ExitStack() as sessions:
                conn = sessions.enter_context(Connection(spec))
                acl_conns = [sessions.enter_context(Connection(spec)) for _ in range(acl_sessions)]
                outage.connected_now()
                stats.reconnects, stats.server = outage.reconnects, conn.address
                reader = TreeReader(conn, root, skip_ephemeral=skip_ephemeral, acl_conns=acl_conns, after=position)
                try:
                    for node in reader:
                        if outage.since is not None:
                            outage.recovered()
                        stats.nodes += 1
                        stats.bytes += len(node.data)
                        yield node
                finally:
                    position = reader.position
                    stats.skipped_ephemeral += reader.skipped_ephemeral
                    if stats.min_zxid is None:
                        stats.min_zxid = conn.first_zxid
                    stats.max_zxid = max(stats.max_zxid, conn.last_zxid)
                return
        except ZooKeeperUnavailable as exc:
            outage.wait(exc)
