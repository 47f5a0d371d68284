"""What an archiving master's supervisor checks in the repository before it starts ZooKeeper.

- **epochs**: whatever replaced this master's data since ZooKeeper last ran (a plain archive restore,
  DC/OS's script, an empty data directory), its epoch files are raised to every epoch the repository
  has seen, so that the history ZooKeeper begins now cannot reuse an archived history's zxids;
- **an empty data directory** while the repository holds history: said loudly (the master's status log
  and the supervisor's log) before it joins: it takes the ensemble's data if the others have it, and if
  they do not, the cluster starts empty while a restore was possible.

A repository that cannot be read does not keep ZooKeeper down: that is logged, and the archiver's own
check (it refuses to archive a history that reuses an epoch) still stands.
"""

from __future__ import annotations

import logging
from pathlib import Path

from dcos_backup.errors import DcosBackupError, NotFound
from dcos_backup.master import activity
from dcos_backup.master.layout import MasterLayout
from dcos_backup.physical.continuous.index import RepoIndex, describe_ranges
from dcos_backup.physical.continuous.repository import open_repository
from dcos_backup.physical.epochs import data_epoch, raise_epoch
from dcos_backup.physical.replay import newest_sealed_snapshot

log = logging.getLogger(__name__)


def before_zookeeper_starts(layout: MasterLayout, repo_url: str, key_file: Path) -> list[str]:
    """Raise the epoch files and warn about an empty data directory; returns what was said."""
    said: list[str] = []

    def say(message: str, level: int = logging.WARNING) -> None:
        log.log(level, "%s", message)
        activity.record(layout.activity_log, message)
        said.append(message)

    try:
        index = RepoIndex(open_repository(repo_url, key_file))
    except NotFound:
        return said  # nothing archived yet (a new cluster's first start)
    except DcosBackupError as exc:
        say(f"could not read the repository before starting ZooKeeper ({exc}); epochs not checked")
        return said
    if not index.generations:
        return said
    seen = index.max_epoch()
    mine = data_epoch(layout)
    if newest_sealed_snapshot(layout) is None:
        say(
            f"WARNING: ZooKeeper starts on an EMPTY data directory while the repository {repo_url} holds history "
            f"({describe_ranges(index.ranges(), limit=1)}, up to epoch {seen}): this master takes the ensemble's "
            "data if the others have it; if all lost it, restore first: dcos-zk restore --repo REPO --latest",
            logging.ERROR,
        )
    if mine < seen and raise_epoch(layout, seen):
        say(
            f"raised this data directory's epoch from {mine} to {seen}, the highest the repository has seen: "
            "the history ZooKeeper begins now cannot reuse an archived one's zxids"
        )
    return said
