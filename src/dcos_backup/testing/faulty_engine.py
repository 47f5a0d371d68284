"""An engine for service tests: the real one (real ZooKeeper underneath) with faults a test switches on.

The service is given it instead of a :class:`~dcos_backup.jobs.engine.ZkEngine`; nothing is patched.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence

from dcos_backup.catalog.models import BackupRecord
from dcos_backup.errors import ZooKeeperUnavailable
from dcos_backup.jobs.engine import Engine, JobLock
from dcos_backup.jobs.fencing import Fence, JournalEntry
from dcos_backup.logical import ApplyStats, OpLog, ReadStats, TreeDiff, ZNode


class FaultyEngine:
    """Delegates to ``real``; faults are off until a test sets them.

    - ``gate``: an Event; while it is clear, a read stops after ``gate_after`` nodes (for 30 s at most),
      so a job is still running when the next request arrives;
    - ``read_fails_after``: a read raises ZooKeeperUnavailable after that many nodes;
    - ``compare_lies``: that many comparisons report an "injected difference" without looking;
    - ``apply_gate``: an Event; while it is clear, an apply stops taking nodes (or planned operations)
      after ``gate_after`` (30 s at most);
    - ``after_journal``: called with the record and phase after each journal write went through (the
      moment between a job's journal write and its record's storage write).
    """

    def __init__(self, real: Engine) -> None:
        self.real = real
        self.gate: threading.Event | None = None
        self.gate_after = 5
        self.read_fails_after: int | None = None
        self.compare_lies = 0
        self.reads = 0
        self.applies = 0
        self.apply_gate: threading.Event | None = None
        self.after_journal: Callable[[BackupRecord, str], None] | None = None

    def read(self, root: str, stats: ReadStats | None = None) -> Iterator[ZNode]:
        self.reads += 1
        for i, node in enumerate(self.real.read(root, stats)):
            if i == self.gate_after and self.gate is not None:
                self.gate.wait(30)
            if i == self.read_fails_after:
                raise ZooKeeperUnavailable(f"injected: connection lost after {i} nodes")
            yield node

    def apply(
        self, root: str, nodes: Iterable[ZNode], paths: Sequence[str] | None = None, fence: Fence | None = None
    ) -> ApplyStats:
        return self.real.apply(root, self._applied(nodes), paths, fence)

    def plan(
        self,
        root: str,
        nodes: Iterable[ZNode],
        ops: OpLog,
        paths: Sequence[str] | None = None,
        read: Callable[[str], Iterator[ZNode]] | None = None,
    ) -> ApplyStats:
        return self.real.plan(root, nodes, ops, paths, read or self.read)

    def apply_ops(self, ops: Iterable[object], fence: Fence | None = None, root: str = "/") -> None:
        self.real.apply_ops(self._applied(ops), fence, root)

    def journal(self, record: BackupRecord, phase: str, fence: Fence) -> None:
        self.real.journal(record, phase, fence)
        if self.after_journal is not None:
            self.after_journal(record, phase)

    def journal_of(self, backup_id: str) -> JournalEntry | None:
        return self.real.journal_of(backup_id)

    def forget(self, backup_id: str) -> None:
        self.real.forget(backup_id)

    def _applied(self, items: Iterable) -> Iterator:
        """What an apply (of nodes or of planned operations) takes, counted and behind ``apply_gate``."""
        self.applies += 1
        return self._gated(items)

    def _gated(self, nodes: Iterable) -> Iterator:
        for i, node in enumerate(nodes):
            if i == self.gate_after and self.apply_gate is not None:
                self.apply_gate.wait(30)
            yield node

    def compare(self, root: str, nodes: Iterable[ZNode], paths: Sequence[str] | None = None) -> str | None:
        if self.compare_lies:
            self.compare_lies -= 1
            return "injected difference"
        return self.real.compare(root, nodes, paths)

    def diff(self, root: str, nodes: Iterable[ZNode], paths: Sequence[str] | None = None, limit: int = 0) -> TreeDiff:
        return self.real.diff(root, nodes, paths, limit)

    def current_zxid(self) -> int:
        return self.real.current_zxid()

    def lock(self, identifier: str) -> JobLock:
        return self.real.lock(identifier)

    def release_stale_locks(self, owner: str) -> list[str]:
        return self.real.release_stale_locks(owner)
