"""``dcos-zk drill``: prove that a point of the continuous archive restores, on a scratch ZooKeeper.

Plan a point (``--at`` a zxid or a time, ``--random``, default the latest) as a restore would, assemble
its data directory (:func:`.pitr.assemble`: snapshot and segments checked, replayed with ZooKeeper's tree
digests, whose result must match the digests ZooKeeper recorded) into a scratch server's private
directory, start that server (:class:`~dcos_backup.master.scratch.ScratchZooKeeper`, loopback, removed
after), and read back every node it serves against the replayed tree, node for node (data, ACL, stat):
the real server loaded the tree whose digest the replay checked. This
master's data directory and the live ensemble are never touched. A damaged repository fails with the reason.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from dcos_backup.errors import IntegrityError
from dcos_backup.logical import ZkSpec, ZNode, iter_tree
from dcos_backup.master.layout import MasterLayout
from dcos_backup.master.scratch import ScratchZooKeeper
from dcos_backup.physical.check_live import live_stat
from dcos_backup.physical.continuous import pitr
from dcos_backup.physical.continuous.index import RepoIndex, format_time
from dcos_backup.physical.continuous.repository import Repository
from dcos_backup.physical.formats import epoch_of, zxid_hex
from dcos_backup.physical.replay import ReplayResult, TreeStore, replay


@dataclass
class DrillResult:
    point: str
    zxid: str
    time: str | None
    transactions: int
    nodes: int
    digest: str
    served_nodes: int
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def random_target(repository: Repository, stream: str | None, rng: random.Random) -> pitr.Target:
    """A restorable zxid picked at random (a random stretch, then a point of it within one epoch)."""
    ranges = RepoIndex(repository, stream).ranges()
    if not ranges:
        return pitr.Target(latest=True)  # plan() says why nothing is restorable
    chosen = rng.choice(ranges)
    if epoch_of(chosen.first) == epoch_of(chosen.last):
        return pitr.Target(zxid=rng.randint(chosen.first, chosen.last))
    return pitr.Target(zxid=rng.choice((chosen.first, chosen.last)))


def _acl(node: ZNode) -> list[tuple[int, str, str]]:
    return [(a.perms, a.id.scheme, a.id.id) for a in node.acl]


def first_difference(served: Iterator[ZNode], replayed: TreeStore) -> tuple[int, str | None]:
    """Walk everything the server serves (ephemeral nodes too) against the replayed tree: (nodes served,
    the first difference or None). Child counters (``cversion``) may be higher on the server: a server
    loading a fuzzy snapshot raises them for creates it replays on nodes the snapshot already holds
    (and counts its own ``/zookeeper`` children); lower would let sequential names repeat."""
    count = 0
    for node in served:
        count += 1
        want = replayed.node(node.path)
        if want is None:
            return count, f"unexpected {node.path}"
        have = live_stat(node)
        if (node.data or b"") != (want.data or b""):
            return count, f"data differs at {node.path}"
        if _acl(node) != [tuple(entry) for entry in want.acl]:
            return count, f"ACL differs at {node.path}"
        if have._replace(cversion=0) != want.stat._replace(cversion=0):
            return count, f"stat differs at {node.path}: served {have}, replayed {want.stat}"
        if have.cversion < want.stat.cversion and node.path not in ("/", "/zookeeper"):
            return count, f"child counter {have.cversion} is below the replayed {want.stat.cversion} at {node.path}"
    return count, None


def drill(
    repository: Repository, target: pitr.Target, stream: str | None = None, tmp_dir: Path | None = None
) -> DrillResult:
    """Assemble ``target`` into a scratch ZooKeeper and compare what it serves with the replay."""
    started = time.monotonic()
    chosen = pitr.plan(repository, target, stream)
    assembled: list[tuple[int, ReplayResult]] = []
    with contextlib.ExitStack() as stack:

        def fill(layout: MasterLayout) -> None:
            assembled.append(pitr.assemble(repository, chosen, layout, layout.exhibitor_dir))
            tree = TreeStore(layout.exhibitor_dir / "replayed.db")
            stack.callback(tree.close)
            replay(layout, tree)
            assembled_tree.append(tree)

        assembled_tree: list[TreeStore] = []
        scratch = stack.enter_context(ScratchZooKeeper(fill, tmp_dir))
        spec = ZkSpec.parse(scratch.hosts, auth=[scratch.auth])
        served, difference = first_difference(iter_tree(spec, "/", skip_ephemeral=False), assembled_tree[0])
    written, replayed = assembled[0]
    if difference is None and served != replayed.nodes:
        difference = f"it serves {served} nodes, the replay has {replayed.nodes}"
    if difference is not None:
        raise IntegrityError(f"the scratch ZooKeeper of {chosen.describe()} differs from the replay: {difference}")
    return DrillResult(
        point=chosen.describe(),
        zxid=zxid_hex(chosen.zxid),
        time=format_time(chosen.time_ms) if chosen.time_ms is not None else None,
        transactions=written,
        nodes=replayed.nodes,
        digest=replayed.digest,
        served_nodes=served,
        seconds=time.monotonic() - started,
    )
