"""Rebuild the tree a ZooKeeper data directory holds: newest snapshot + the transaction logs after it.

This is what a ZooKeeper server does at start (FileTxnSnapLog.restore), done in Python so that an
archive can be checked and inspected without running a server:

- every snapshot seal and log record checksum is checked (:mod:`.formats`);
- transactions must follow each other without a gap from the snapshot's zxid on;
- transactions are applied with DataTree's semantics (including its tolerance of the fuzzy snapshot:
  creates of nodes that exist, deletes of nodes that do not);
- ZooKeeper's tree digest (3.6+) is kept up to date and compared with the digest the snapshot and every
  transaction carry, so the rebuilt tree is known to equal the server's, node for node.

The tree lives in a temporary SQLite file, not in memory: memory stays flat whatever the tree's size.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from dcos_backup.errors import IntegrityError
from dcos_backup.master.layout import MasterLayout
from dcos_backup.physical import formats
from dcos_backup.physical.formats import (
    ACL,
    Check,
    CloseSession,
    Create,
    CreateSession,
    Delete,
    Error,
    Multi,
    OpCode,
    SetACL,
    SetData,
    Stat,
    Txn,
    zxid_hex,
)

log = logging.getLogger(__name__)

_MASK = (1 << 64) - 1
CONTAINER_OWNER = -(1 << 63)
TTL_MASK = -(1 << 56)  # 0xff00000000000000 as a signed long
_BATCH = 5000
_UNRESOLVED_ACL = "unresolved"  # the acl column of a node whose ACL id its snapshot lacks (see load_snapshot)
_CACHE = 50_000  # nodes held in the write-back cache (about 100 MB at most with 1 KiB payloads)


def _signed64(value: int) -> int:
    value &= _MASK
    return value - (1 << 64) if value >= 1 << 63 else value


def session_owned(owner: int) -> bool:
    """Whether an ephemeralOwner is a session (not 0, not a container, not a TTL)."""
    return owner != 0 and owner != CONTAINER_OWNER and (owner & TTL_MASK) != TTL_MASK


class _NoNode(Exception):
    pass


class _NodeExists(Exception):
    pass


@dataclass
class ArchivedNode:
    """One node of the rebuilt tree, as ``dump`` prints it."""

    path: str
    data: bytes | None
    acl: list[ACL]
    stat: Stat

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"path": self.path or "/"}
        if self.data is None:
            doc["data"] = None
        else:
            try:
                doc["data"] = self.data.decode("utf-8")
            except UnicodeDecodeError:
                doc["data_hex"] = self.data.hex()
        doc["acl"] = [{"perms": p, "scheme": s, "id": i} for p, s, i in self.acl]
        doc["stat"] = self.stat._asdict()
        return doc


class _Row(NamedTuple):
    data: bytes | None  # None when the store does not keep data (verification needs only ``head``)
    acl: str  # JSON list of [perms, scheme, id]
    stat: Stat
    head: int  # CRC-32 of path and data: the part of the node digest that only a data change moves
    digest: int  # ZooKeeper's digest of this node (0 under /zookeeper/)

    def values(self, path: str) -> tuple[object, ...]:
        return path, self.data, self.acl, self.stat.pack(), self.stat.ephemeral_owner, self.head, self.digest

    def restat(self, path: str, stat: Stat) -> _Row:
        return _Row(self.data, self.acl, stat, self.head, formats.digest_from_head(path, self.head, stat))


class TreeStore:
    """A ZooKeeper data tree in SQLite with ZooKeeper's tree digest kept current (AdHash of node digests).

    ``keep_data=False`` (verification) stores no node data: the digests need only each node's ``head``.
    """

    def __init__(self, db_path: Path, keep_data: bool = True) -> None:
        self.keep_data = keep_data
        self.db = sqlite3.connect(db_path, isolation_level=None)
        self.db.executescript(
            """
            PRAGMA journal_mode = OFF;
            PRAGMA synchronous = OFF;
            PRAGMA temp_store = FILE;
            PRAGMA cache_size = -65536;
            CREATE TABLE nodes (
                path TEXT PRIMARY KEY, data BLOB, acl TEXT, stat BLOB, owner INTEGER, head INTEGER, digest INTEGER
            );
            CREATE INDEX by_owner ON nodes (owner) WHERE owner != 0;
            """
        )
        self.db.execute("BEGIN")
        self.digest = 0
        self.sessions: dict[int, int] = {}
        self.count = 0
        # Write-back cache of the nodes transactions touched (None: deleted). A multi of 1,000 creates
        # under one parent rewrites that parent 1,000 times; here that costs dict updates, and SQLite
        # sees one batched write per node when the cache is flushed.
        self._dirty: dict[str, _Row | None] = {}
        self._acls: dict[tuple[object, ...], str] = {}
        # Nodes of a fuzzy snapshot whose ACL id is not in its ACL map (path -> id): see load_snapshot.
        self.unresolved_acls: dict[str, int] = {}
        self._snapshot_name = ""

    def close(self) -> None:
        self.db.close()

    def flush(self) -> None:
        rows = [row.values(path) for path, row in self._dirty.items() if row is not None]
        gone = [(path,) for path, row in self._dirty.items() if row is None]
        self.db.executemany("INSERT OR REPLACE INTO nodes VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        self.db.executemany("DELETE FROM nodes WHERE path = ?", gone)
        self._dirty.clear()

    def commit(self) -> None:
        self.flush()
        self.db.execute("COMMIT")
        self.db.execute("BEGIN")

    # -- snapshot loading -----------------------------------------------------------------------
    def load_snapshot(self, reader: formats.SnapshotReader) -> None:
        """Load the snapshot's tree. A node may name an ACL id the snapshot's ACL map lacks: ZooKeeper writes
        the map before the nodes, and a create or setACL with a new ACL made meanwhile gives its node the next
        id. The node is kept with its ACL unresolved (ZooKeeper loads it the same way); the transaction that
        made that ACL follows the snapshot and sets it, and :meth:`check_acls` refuses a tree in which one is
        still unresolved."""
        self._snapshot_name = reader.name
        self.sessions = dict(reader.sessions)
        acl_json = {key: json.dumps(value) for key, value in reader.acls.items()}
        acl_json.setdefault(-1, json.dumps([(31, "world", "anyone")]))
        stack: list[str] = []
        rows = []
        for node in reader.nodes():
            path = node.path
            if path:
                parent = path[: path.rindex("/")]
                while stack and stack[-1] != parent:
                    stack.pop()
                if not stack:
                    raise IntegrityError(f"{reader.name}: node {path} comes without its parent {parent or '/'}")
            stack.append(path)
            acl = acl_json.get(node.acl)
            if acl is None:
                self.unresolved_acls[path] = node.acl
                acl = _UNRESOLVED_ACL  # not JSON: read before the replay set it, it fails loudly
            row = self._row(path, node.data, acl, node.stat)
            self.digest += row.digest
            rows.append(row.values(path))
            if len(rows) >= _BATCH:
                self._insert(rows)
        self._insert(rows)
        self.digest &= _MASK

    def check_acls(self) -> None:
        """IntegrityError if a node still has the ACL id its snapshot could not resolve (see load_snapshot)."""
        if self.unresolved_acls:
            path, acl_id = next(iter(self.unresolved_acls.items()))
            raise IntegrityError(
                f"{self._snapshot_name}: node {path} refers to ACL {acl_id}, which neither the snapshot's ACL map "
                f"nor a transaction after it defines ({len(self.unresolved_acls)} such node(s))"
            )

    def _insert(self, rows: list[tuple[object, ...]]) -> None:
        try:
            self.db.executemany("INSERT INTO nodes VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        except sqlite3.IntegrityError as e:
            raise IntegrityError(f"the snapshot holds a node twice ({e})") from e
        self.count += len(rows)
        rows.clear()

    # -- node access ----------------------------------------------------------------------------
    def _acl_text(self, acl: list[ACL]) -> str:
        """An ACL as stored; a tree has few distinct ACLs, so each is encoded once."""
        key = tuple(map(tuple, acl))
        text = self._acls.get(key)
        if text is None:
            text = self._acls[key] = json.dumps(acl)
        return text

    def _row(self, path: str, data: bytes | None, acl: str, stat: Stat) -> _Row:
        head = formats.digest_head(path, data)
        return _Row(data if self.keep_data else None, acl, stat, head, formats.digest_from_head(path, head, stat))

    def _get(self, path: str) -> _Row | None:
        if path in self._dirty:
            return self._dirty[path]
        row = self.db.execute("SELECT data, acl, stat, head, digest FROM nodes WHERE path = ?", (path,)).fetchone()
        if row is None:
            return None
        return _Row(row[0], row[1], Stat.unpack(row[2]), row[3], row[4])

    def _put(self, path: str, row: _Row, old: _Row | None) -> None:
        self.digest = (self.digest + row.digest - (old.digest if old else 0)) & _MASK
        self._dirty[path] = row
        if len(self._dirty) >= _CACHE:
            self.flush()

    # -- DataTree operations --------------------------------------------------------------------
    def create(
        self, path: str, data: bytes | None, acl: list[ACL], owner: int, parent_cv: int, zxid: int, time: int
    ) -> None:
        parent_path = _parent(path)
        parent = self._get(parent_path)
        if parent is None:
            raise _NoNode(path)
        existing = self._get(path)
        acl_text = self._acl_text(acl)
        if existing is not None:
            # DataTree replaces the ACL of the node it found (the fuzzy-snapshot case) and reports NODEEXISTS.
            self._dirty[path] = existing._replace(acl=acl_text)
            self.unresolved_acls.pop(path, None)
            raise _NodeExists(path)
        p_stat = parent.stat
        if parent_cv == -1:
            parent_cv = p_stat.cversion + 1
        if parent_cv > p_stat.cversion:
            czxid, mzxid, ctime, mtime, version, _, aversion, owner_, _ = p_stat
            p_stat = Stat(czxid, mzxid, ctime, mtime, version, parent_cv, aversion, owner_, zxid)
        self._put(parent_path, parent.restat(parent_path, p_stat), parent)
        self._put(path, self._row(path, data, acl_text, Stat(zxid, zxid, time, time, 0, 0, 0, owner, zxid)), None)
        self.count += 1

    def delete(self, path: str, zxid: int) -> None:
        parent_path = _parent(path)
        parent = self._get(parent_path)
        if parent is None:
            raise _NoNode(path)
        # DataTree moves the parent's pzxid forward even when the child is already gone (fuzzy snapshot).
        if zxid > parent.stat.pzxid:
            self._put(parent_path, parent.restat(parent_path, parent.stat._replace(pzxid=zxid)), parent)
        node = self._get(path)
        if node is None:
            raise _NoNode(path)
        self._dirty[path] = None
        self.unresolved_acls.pop(path, None)
        self.digest = (self.digest - node.digest) & _MASK
        self.count -= 1

    def set_data(self, path: str, data: bytes | None, version: int, zxid: int, time: int) -> None:
        node = self._get(path)
        if node is None:
            raise _NoNode(path)
        stat = node.stat._replace(mtime=time, mzxid=zxid, version=version)
        self._put(path, self._row(path, data, node.acl, stat), node)

    def set_acl(self, path: str, acl: list[ACL], version: int) -> None:
        node = self._get(path)
        if node is None:
            raise _NoNode(path)
        self._put(path, node._replace(acl=json.dumps(acl)).restat(path, node.stat._replace(aversion=version)), node)
        self.unresolved_acls.pop(path, None)

    def set_cversion_pzxid(self, path: str, cversion: int, zxid: int) -> None:
        node = self._get(path)
        if node is None:
            raise _NoNode(path)
        if cversion == -1:
            cversion = node.stat.cversion + 1
        if cversion > node.stat.cversion:
            self._put(path, node.restat(path, node.stat._replace(cversion=cversion, pzxid=zxid)), node)

    def kill_session(self, session: int, zxid: int, listed: list[str] | None) -> None:
        self.flush()
        owned = [row[0] for row in self.db.execute("SELECT path FROM nodes WHERE owner = ?", (session,))]
        paths = list(listed or [])
        listed_set = set(paths)
        paths += [p for p in owned if p not in listed_set]
        for path in paths:
            with contextlib.suppress(_NoNode):
                self.delete(path, zxid)

    # -- transactions ---------------------------------------------------------------------------
    def apply(self, txn: Txn) -> None:
        """Apply one transaction the way DataTree.processTxn does (errors are part of the semantics)."""
        if txn.type == OpCode.createSession:
            assert isinstance(txn.record, CreateSession)
            self.sessions[txn.client_id] = txn.record.timeout
        elif txn.type == OpCode.closeSession:
            self.sessions.pop(txn.client_id, None)
        self._apply(txn.type, txn.record, txn)

    def _apply(self, kind: int, record: object, txn: Txn) -> None:
        try:
            self._apply_one(kind, record, txn)
        except _NodeExists:
            if kind == OpCode.create:
                assert isinstance(record, Create)
                with contextlib.suppress(_NoNode):
                    self.set_cversion_pzxid(_parent(record.path), record.parent_cversion, txn.zxid)
        except _NoNode:
            pass

    def _apply_one(self, kind: int, record: object, txn: Txn) -> None:
        zxid = txn.zxid
        if isinstance(record, Create):
            if kind == OpCode.createContainer:
                owner = CONTAINER_OWNER
            elif kind == OpCode.createTTL:
                owner = _signed64(TTL_MASK | (record.ttl or 0))
            else:
                owner = txn.client_id if record.ephemeral else 0
            self.create(record.path, record.data, record.acl, owner, record.parent_cversion, zxid, txn.time)
        elif isinstance(record, Delete):
            self.delete(_alias(record.path), zxid)
        elif isinstance(record, SetData):
            self.set_data(_alias(record.path), record.data, record.version, zxid, txn.time)
        elif isinstance(record, SetACL):
            self.set_acl(_alias(record.path), record.acl, record.version)
        elif isinstance(record, CloseSession):
            self.kill_session(txn.client_id, zxid, record.paths)
        elif isinstance(record, Multi):
            failed = any(sub_kind == OpCode.error for sub_kind, _ in record.ops)
            for sub_kind, sub in record.ops:
                if not failed:
                    self._apply(sub_kind, sub, txn)
        elif isinstance(record, (Check, CreateSession, Error)):
            pass

    # -- reading the result ---------------------------------------------------------------------
    def node(self, path: str) -> ArchivedNode | None:
        """The node at ``path`` ("/" or "" for the root), or None."""
        row = self._get(_alias(path))
        if row is None:
            return None
        return ArchivedNode(_alias(path), row.data, [tuple(entry) for entry in json.loads(row.acl)], row.stat)

    def iter_nodes(self, prefix: str = "/") -> Iterator[ArchivedNode]:
        """Nodes at and below ``prefix``, sorted by path."""
        self.flush()
        base = _alias(prefix.rstrip("/"))
        query = "SELECT path, data, acl, stat FROM nodes WHERE path = ? OR (path > ? AND path < ?) ORDER BY path"
        for path, data, acl, stat in self.db.execute(query, (base, base + "/", base + "0")):
            yield ArchivedNode(path, data, [tuple(entry) for entry in json.loads(acl)], Stat.unpack(stat))

    def write_snapshot(self, out: BinaryIO, zxid: int, dbid: int = -1) -> int:
        """Write the tree as ZooKeeper's ``snapshot.<zxid>`` would hold it (the digest record: ``zxid`` and
        this tree's digest); returns the nodes written. Pre-order: ``/`` sorts below every other character
        a ZooKeeper path may hold once it is made char(1), so each node comes right after its ancestors."""
        if not self.keep_data:
            raise ValueError("a snapshot needs the nodes' data: TreeStore(keep_data=True)")
        self.check_acls()
        self.flush()
        ids = {text: i for i, (text,) in enumerate(self.db.execute("SELECT DISTINCT acl FROM nodes"), start=1)}
        acls = {i: [tuple(entry) for entry in json.loads(text)] for text, i in ids.items()}
        writer = formats.SnapshotWriter(out, dbid, self.sessions, acls)
        written = 0
        query = "SELECT path, data, acl, stat FROM nodes ORDER BY replace(path, '/', char(1))"
        for path, data, acl, stat in self.db.execute(query):
            writer.node(path, data, ids[acl], Stat.unpack(stat))
            written += 1
        writer.finish(zxid, self.digest)
        return written


def _alias(path: str) -> str:
    """DataTree keeps the root under both "" and "/"; the store keeps it under ""."""
    return "" if path == "/" else path


def _parent(path: str) -> str:
    return path[: path.rindex("/")]


@dataclass
class ReplayResult:
    snapshot: str
    snapshot_zxid: str
    logs: list[str] = field(default_factory=list)
    transactions: int = 0
    last_zxid: str = ""
    nodes: int = 0
    sessions: int = 0
    digest: str = ""
    digests_checked: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _data_files(directory: Path, kind: str) -> list[tuple[int, Path]]:
    found = []
    if directory.is_dir():
        for path in directory.iterdir():
            zxid = formats.zxid_of_name(path.name)
            if zxid is not None and formats.kind_of_name(path.name) == kind:
                found.append((zxid, path))
    return sorted(found)


def snapshot_files(layout: MasterLayout) -> list[tuple[int, Path]]:
    return _data_files(layout.snapshots_dir, "snapshot")


def newest_sealed_snapshot(layout: MasterLayout) -> tuple[int, Path] | None:
    """The snapshot ZooKeeper starts from: the newest with its seal. One without is still being written
    (or was left by a crash mid-snapshot); ZooKeeper skips it, and so do we. A sealed snapshot that does
    not check out later is corruption, not skipped."""
    for zxid, path in reversed(snapshot_files(layout)):
        if formats.is_sealed_snapshot(path):
            return zxid, path
        log.warning("%s has no seal (being written, or left by a crash): skipped, as ZooKeeper does", path.name)
    return None


def log_files(layout: MasterLayout) -> list[tuple[int, Path]]:
    return _data_files(layout.logs_dir, "log")


def logs_after(logs: list[tuple[int, Path]], snapshot_zxid: int) -> list[tuple[int, Path]]:
    """The logs ZooKeeper reads after a snapshot: the last one starting at or before it, and every later one."""
    start = 0
    for i, (zxid, _) in enumerate(logs):
        if zxid <= snapshot_zxid:
            start = i
    return logs[start:]


_CHANGES_NODES = frozenset(
    {
        formats.OpCode.create,
        formats.OpCode.create2,
        formats.OpCode.createContainer,
        formats.OpCode.createTTL,
        formats.OpCode.delete,
        formats.OpCode.deleteContainer,
        formats.OpCode.setData,
        formats.OpCode.setACL,
        formats.OpCode.multi,
    }
)


class _DigestCheck:
    """Compares the running tree digest with the ones ZooKeeper recorded, as DataTree does."""

    def __init__(self, store: TreeStore, pending: formats.SnapshotDigest | None, required: bool = False) -> None:
        self.store = store
        # Once ZooKeeper is seen writing digests (the snapshot ends with one, or a transaction has one) every
        # later transaction must have one: a rewritten transaction with its digest dropped is refused.
        self.required = required
        self.pending = pending  # the snapshot's digest, due once its (fuzzy) zxid range is replayed
        self.doubt: IntegrityError | None = None  # a snapshot digest that disagreed, until a later one decides
        self.checked = 0

    def _mismatch(self, expected: int, where: str) -> IntegrityError | None:
        if (expected & _MASK) == self.store.digest:
            self.checked += 1
            return None
        return IntegrityError(
            f"tree digest mismatch at {where}: ZooKeeper recorded {expected & _MASK:x}, "
            f"the replayed tree has {self.store.digest:x} (corrupt or incomplete data)"
        )

    def _compare(self, expected: int, where: str) -> None:
        error = self._mismatch(expected, where)
        if error is not None:
            raise error
        if self.doubt is not None:
            # The digest is a sum over every node: a tree that was wrong at the snapshot's point stays wrong
            # until that very node changes, so a matching digest of a later transaction clears the snapshot.
            # ZooKeeper can record a stale snapshot digest after a member's crash and resync (it only logs
            # the mismatch and goes on); without this check such a sound snapshot would be refused.
            log.warning("%s; %s matches, so the snapshot's recorded digest was stale", self.doubt, where)
            self.doubt = None

    def finish(self) -> None:
        """Raise what stays undecided: a snapshot digest that no later transaction's digest cleared."""
        if self.doubt is not None:
            raise self.doubt

    def after(self, zxid: int, txn_digest: tuple[int, int] | None = None, kind: int | None = None) -> None:
        if self.pending is not None:
            if zxid == self.pending.zxid:
                if self.pending.version == formats.DIGEST_VERSION:
                    self.doubt = self._mismatch(self.pending.digest, f"the snapshot's zxid {zxid_hex(zxid)}")
                self.pending = None
            elif zxid > self.pending.zxid:
                # ZooKeeper only logs this ("the txn of snapshot digest does not exist") and goes on.
                log.warning("no transaction %s for the snapshot's digest; not compared", zxid_hex(self.pending.zxid))
                self.pending = None
            return  # still inside the fuzzy range: per-transaction digests do not apply yet
        if txn_digest is None:
            # Only where a node changes: ZooKeeper writes some session transactions without one.
            if self.required and kind in _CHANGES_NODES:
                raise IntegrityError(
                    f"zxid {zxid_hex(zxid)} has no tree digest though ZooKeeper writes one with every change "
                    "of this data (the log was rewritten?)"
                )
            return
        self.required = True
        if txn_digest[0] == formats.DIGEST_VERSION:
            self._compare(txn_digest[1], f"zxid {zxid_hex(zxid)}")


class DataFile(NamedTuple):
    """A snapshot or log to replay: its zxid, its name, and how to read it (a file, or bytes on a pipe)."""

    zxid: int
    name: str
    open: Callable[[], contextlib.AbstractContextManager[BinaryIO]]


def data_file(zxid: int, path: Path) -> DataFile:
    return DataFile(zxid, path.name, lambda: formats.open_data_file(path))


def replay_plan(layout: MasterLayout) -> tuple[DataFile, list[DataFile]]:
    """What ZooKeeper loads from ``layout``'s ``zookeeper/``: the newest sealed snapshot, the logs after it."""
    newest = newest_sealed_snapshot(layout)
    if newest is None:
        raise IntegrityError("no complete snapshot in the data (snapshot/version-2/snapshot.*)")
    snap_zxid, snap_path = newest
    logs = [data_file(zxid, path) for zxid, path in logs_after(log_files(layout), snap_zxid)]
    return data_file(snap_zxid, snap_path), logs


def replay(layout: MasterLayout, store: TreeStore) -> ReplayResult:
    """Load the newest snapshot of ``layout``'s ``zookeeper/`` directory and replay the logs after it."""
    snapshot, logs = replay_plan(layout)
    return replay_files(store, snapshot, logs)


def replay_files(store: TreeStore, snapshot: DataFile, logs: Iterable[DataFile]) -> ReplayResult:
    """Load ``snapshot`` into ``store`` and replay ``logs`` (in zxid order) on it, checking everything."""
    run = Replay(store, snapshot)
    for log_file in logs:
        run.result.logs.append(log_file.name)
        log.info("replaying %s", log_file.name)
        with log_file.open() as f:
            for record in formats.LogReader(f, log_file.name, strict=True).records():
                run.apply(record.txn, log_file.name)
    return run.finish()


class Replay:
    """A snapshot loaded into ``store``, then transactions applied one at a time with every check
    (continuity, ZooKeeper's digests): what :func:`replay_files` does, for callers that act between
    transactions (compaction writes snapshots along the way)."""

    def __init__(self, store: TreeStore, snapshot: DataFile) -> None:
        self.store = store
        log.info("loading %s", snapshot.name)
        with snapshot.open() as f:
            reader = formats.SnapshotReader(f, snapshot.name)
            store.load_snapshot(reader)
            snap_digest = reader.finish()
        self.dbid = reader.dbid
        writes_digests = snap_digest is not None
        if snap_digest is not None and snap_digest.zxid < snapshot.zxid:
            snap_digest = None  # taken at an epoch start: not fuzzy, nothing to compare (as in DataTree)
        self.check = _DigestCheck(store, snap_digest, required=writes_digests)
        self.check.after(snapshot.zxid)
        self.result = ReplayResult(snapshot.name, zxid_hex(snapshot.zxid))
        self.last = snapshot.zxid

    def apply(self, txn: Txn, where: str) -> bool:
        """Apply ``txn`` (one already applied is skipped: False); ``where`` names its file in errors."""
        if txn.zxid <= self.last:
            return False
        if not formats.follows(self.last, txn.zxid):
            raise IntegrityError(
                f"{where}: transactions jump from {zxid_hex(self.last)} to {zxid_hex(txn.zxid)} "
                "(a log file is missing or was cut short)"
            )
        self.store.apply(txn)
        self.check.after(txn.zxid, txn.digest, txn.type)
        self.last = txn.zxid
        self.result.transactions += 1
        if self.result.transactions % 20000 == 0:
            self.store.commit()
        return True

    @property
    def settled(self) -> bool:
        """Whether the tree is consistent: the snapshot's fuzzy range is replayed, its digest decided."""
        return self.check.pending is None and self.check.doubt is None and not self.store.unresolved_acls

    def finish(self) -> ReplayResult:
        if self.check.pending is not None:
            raise IntegrityError(
                f"the logs end at {zxid_hex(self.last)}, before the snapshot's last change "
                f"{zxid_hex(self.check.pending.zxid)}: the snapshot cannot be made consistent"
            )
        self.check.finish()
        self.store.check_acls()
        self.store.commit()
        result = self.result
        result.last_zxid = zxid_hex(self.last)
        result.nodes = self.store.count
        result.sessions = len(self.store.sessions)
        result.digest = f"{self.store.digest:016x}"
        result.digests_checked = self.check.checked
        return result
