"""The restore mark: what identifies the data a ``dcos-zk restore`` put in place on a master.

A ZooKeeper restore is only a restore if every master gets the same data: one forgotten master with newer
data, started first, becomes the leader and syncs the restored ones back to its own state, silently.
``dcos-zk restore`` (from an archive or a point of a repository) therefore writes, beside the data,
``zookeeper.restore-mark``: the restored data's last zxid and ZooKeeper's tree digest there (what the
content is, not which archive bytes it came from: the same data re-packed, or rebuilt by a point-in-time
restore, has the same mark). The master's supervisor exposes it in the Exhibitor cluster status and,
before it starts ZooKeeper, compares it with the other masters' (:func:`conflict`). Once the member has
served, the mark is kept but marked ``served``: the restore has taken, and a master rebuilt later
(no mark) may join.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from dcos_backup.fsutil import write_private_file

RUNNING_CODES = (2, 3)  # Exhibitor's "not serving" (runs, no quorum yet) and "serving"


@dataclass(frozen=True)
class RestoreMark:
    last_zxid: str
    digest: str
    nodes: int
    source: str
    restored_at: float
    served: bool = False

    @property
    def identity(self) -> tuple[str, str]:
        return self.last_zxid, self.digest

    def describe(self) -> str:
        return f"zxid {self.last_zxid}, digest {self.digest}"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: object) -> RestoreMark | None:
        try:
            return cls(**doc)  # type: ignore[arg-type]
        except TypeError:
            return None


def write(path: Path, last_zxid: str, digest: str, nodes: int, source: str) -> RestoreMark:
    mark = RestoreMark(last_zxid, digest, nodes, source, time.time())
    write_private_file(path, json.dumps(mark.to_dict()).encode())
    return mark


def read(path: Path) -> RestoreMark | None:
    """The mark at ``path``; None without one (or an unreadable one: a mark only ever refuses, never trusts)."""
    try:
        return RestoreMark.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def mark_served(path: Path) -> None:
    """The restored data has served: the restore took; keep the mark as history."""
    mark = read(path)
    if mark is not None and not mark.served:
        write_private_file(path, json.dumps({**mark.to_dict(), "served": True}).encode())


@dataclass(frozen=True)
class Peer:
    """What another master's Exhibitor says of itself: its status code and its mark (None: no mark)."""

    id: int
    code: int
    mark: RestoreMark | None


def conflict(me: int, mine: RestoreMark | None, peers: list[Peer]) -> str | None:
    """Why master ``me`` must not start ZooKeeper on its data, in one line naming the master to restore; or None.

    - Its data is a restore that has not served yet, and another master runs ZooKeeper on other data: that
      master would lead and undo the restore; it must be restored from the same archive first.
    - Another master holds a restore that has not served yet and this one's data is not that restore: this
      one must be restored from the same archive first, or it may undo that restore.
    """
    if mine is not None and not mine.served:
        for peer in peers:
            if peer.code in RUNNING_CODES and (peer.mark is None or peer.mark.identity != mine.identity):
                return (
                    f"master {me} holds restored data ({mine.describe()}) but master {peer.id} runs ZooKeeper on "
                    f"other data, which would replace it: stop master {peer.id} and restore it from the same "
                    f"backup, then start master {me} (--force starts it anyway)"
                )
    for peer in peers:
        fresh = peer.mark is not None and not peer.mark.served
        if fresh and (mine is None or mine.identity != peer.mark.identity):  # type: ignore[union-attr]
            return (
                f"master {peer.id} holds restored data ({peer.mark.describe()}) not yet started, and master "  # type: ignore[union-attr]
                f"{me}'s data is not that restore: restore master {me} from the same backup first "
                f"(--force starts it anyway)"
            )
    return None
