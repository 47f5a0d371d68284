"""``dcos-zk check-live``: did a restore take? The live ensemble's tree against the archive's.

After the seed's procedure every master should serve the archive's data plus whatever was written since.
Each node the archive holds is compared with the live one by its zxids: ZooKeeper keeps them, so a restored
node that nobody touched since has the archive's very stat, and anything written after the restore carries
a zxid of a later epoch (the restored ensemble elects a leader, which starts a new epoch). A live node whose
change has a zxid of the archive's epoch after the archive's last zxid, or of an epoch before, but that the
archive does not have, is history the archive does not know: data from a master that was not restored, and
the restore did not take. Compared: persistent nodes outside ``/zookeeper`` (ephemeral nodes belong to
sessions, which a restart ends), with their count and a digest made as ZooKeeper's (DigestCalculator).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from dcos_backup.errors import AccessDenied
from dcos_backup.logical import ZNode, connect, iter_tree
from dcos_backup.physical import formats
from dcos_backup.physical.replay import ArchivedNode
from dcos_backup.physical.verify import rebuilt_archive

_MASK = (1 << 64) - 1
_EXAMPLES = 5


@dataclass
class LiveCheck:
    archive: str
    last_zxid: str
    archive_nodes: int
    archive_digest: str
    live_nodes: int = 0
    live_digest: str = ""
    unchanged: int = 0
    changed_since: int = 0  # changed or created after the restore (a later epoch)
    removed: int = 0  # in the archive, not live (deleted since, or never restored)
    foreign: list[str] = field(default_factory=list)  # live history the archive does not know (examples)
    foreign_count: int = 0
    not_compared: list[str] = field(default_factory=list)  # top-level subtrees these credentials cannot read

    @property
    def took(self) -> bool:
        return self.foreign_count == 0

    def describe(self) -> str:
        counts = (
            f"archive {self.archive_nodes} nodes (digest {self.archive_digest}), live {self.live_nodes} nodes "
            f"(digest {self.live_digest}): {self.unchanged} unchanged, {self.changed_since} changed or created "
            f"since the restore, {self.removed} gone"
        )
        if self.not_compared:
            counts += f"; not compared (no READ permission): {', '.join(self.not_compared)}"
        if self.took:
            same = " (identical)" if self.live_digest == self.archive_digest else ""
            return f"the restore took{same}: {counts}"
        return (
            f"the restore did NOT take: {self.foreign_count} live nodes carry changes the archive (last zxid "
            f"{self.last_zxid}) does not know, e.g. {', '.join(self.foreign)}; {counts}. A master that was not "
            f"restored probably led the ensemble: stop every master, restore each from the same backup"
        )


def _compared(path: str) -> bool:
    return path not in ("", "/") and path != "/zookeeper" and not path.startswith("/zookeeper/")


def live_stat(node: ZNode) -> formats.Stat:
    s = node.stat
    assert s is not None
    return formats.Stat(
        s.czxid, s.mzxid, s.ctime, s.mtime, s.version, s.cversion, s.aversion, s.ephemeralOwner, s.pzxid
    )


def _archived(nodes: Iterator[ArchivedNode]) -> Iterator[ArchivedNode]:
    return (n for n in nodes if _compared(n.path) and not n.stat.ephemeral_owner)


def _top_level(hosts: str) -> list[str]:
    client = connect(hosts)
    try:
        return [f"/{top}" for top in sorted(client.get_children("/"))]
    finally:
        client.stop()
        client.close()


def _tally(nodes: Iterator[ZNode], archived: dict[str, tuple[int, int]], last_epoch: int) -> LiveCheck:
    """One subtree's live nodes compared (counts only; the caller merges them once the subtree is read whole)."""
    part = LiveCheck("", "", 0, "")
    live_sum = 0
    for node in nodes:
        stat = live_stat(node)
        digest = formats.node_digest(node.path, node.data, stat)
        part.live_nodes += 1
        live_sum += digest
        known = archived.get(node.path)
        part.removed -= known is not None  # made "archive nodes not seen" by the caller
        if known is not None and known[0] == digest:
            part.unchanged += 1
        elif stat.mzxid >> 32 > last_epoch or (known is not None and known[1] == stat.mzxid):
            part.changed_since += 1  # written after the restore, or only its children changed since
        else:
            part.foreign_count += 1
            if len(part.foreign) < _EXAMPLES:
                part.foreign.append(f"{node.path} (zxid {stat.mzxid:#x})")
    part.live_digest = str(live_sum)
    return part


def check_live(archive: Path, hosts: str, tmp_dir: Path | None = None) -> LiveCheck:
    """Compare the live tree at ``hosts`` with the tree ``archive`` restores (see the module's docstring).

    Live nodes are read one top-level subtree at a time; one these credentials cannot read is left out on
    both sides and named (a partial read would look like nodes gone).
    """
    with rebuilt_archive(archive, tmp_dir) as (store, result):
        archived = {
            n.path: (formats.node_digest(n.path, n.data, n.stat), n.stat.mzxid)
            for n in _archived(store.iter_nodes("/"))
        }
    last_epoch = int(result.last_zxid, 16) >> 32
    check = LiveCheck(str(archive), result.last_zxid, 0, "")
    live_sum = 0
    for top in _top_level(hosts):
        if not _compared(top):
            continue
        try:
            part = _tally(iter_tree(hosts, top), archived, last_epoch)
        except AccessDenied:
            check.not_compared.append(top)
            continue
        for name in ("live_nodes", "unchanged", "changed_since", "foreign_count", "removed"):
            setattr(check, name, getattr(check, name) + getattr(part, name))
        check.foreign += part.foreign[: _EXAMPLES - len(check.foreign)]
        live_sum += int(part.live_digest)
    skipped = tuple(check.not_compared)
    compared = [v for p, v in archived.items() if not any(p == t or p.startswith(t + "/") for t in skipped)]
    check.archive_nodes = len(compared)
    check.archive_digest = f"{sum(d for d, _ in compared) & _MASK:x}"
    check.live_digest = f"{live_sum & _MASK:x}"
    check.removed += check.archive_nodes
    return check
