"""A master's directory layout, as DC/OS lays it out: every path, spelled once.

::

    <exhibitor-dir>/conf/node.json                   dcos-exhibitor's node config
    <exhibitor-dir>/conf/zoo.cfg                     rendered from it at every start
    <exhibitor-dir>/zookeeper/snapshot/              ZooKeeper dataDir (with myid)
    <exhibitor-dir>/zookeeper/snapshot/version-2/    snapshots, currentEpoch, acceptedEpoch
    <exhibitor-dir>/zookeeper/transactions/          ZooKeeper dataLogDir
    <exhibitor-dir>/zookeeper/transactions/version-2/  transaction logs
    <exhibitor-dir>/zookeeper/zookeeper.out          ZooKeeper's console output
    <exhibitor-dir>/zookeeper.restore-journal        a dcos-zk restore's swap, while it runs
    <exhibitor-dir>/zookeeper.lock                   the data-dir lock (flock; holders' pids inside)
    <exhibitor-dir>/run/exhibitor.pid                the supervisor, while it runs
    <exhibitor-dir>/run/zookeeper.pid                its ZooKeeper, while it runs
    <exhibitor-dir>/run/archiver.pid                 the archiver (dcos-zk archive), while it runs
    <exhibitor-dir>/run/archiver.json                the archiver's state, rewritten as it goes
    <exhibitor-dir>/exhibitor.log                    the supervisor's output (dcos-local)
    <exhibitor-dir>/archiver.log                     the archiver's output, when the supervisor runs it
    <exhibitor-dir>/activity.log                     the status log: notable events, one line each
    <exhibitor-dir>/zk.pid                           DC/OS Exhibitor's ZooKeeper pid file
    <exhibitor-dir>/../cluster.json                  the description of a dcos-local cluster, if any

Archives (DC/OS's ``dcos-zk`` and ours) hold the ``zookeeper/`` part. A restore's staging directory and an
extracted archive hold a ``zookeeper/`` too, so a :class:`MasterLayout` built on them names their files
the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_EXHIBITOR_DIR = Path("/var/lib/dcos/exhibitor")

ZK_DIR_NAME = "zookeeper"
MYID = "myid"
CONSOLE_LOG = "zookeeper.out"
VERSION_DIR = "version-2"
LOCAL_CLUSTER_FILE = "cluster.json"


@dataclass(frozen=True)
class MasterLayout:
    """The paths of one master's exhibitor directory (or of any directory holding a ``zookeeper/``)."""

    exhibitor_dir: Path

    # ---------------------------------------------------------------- ZooKeeper's data
    @property
    def zk_dir(self) -> Path:
        return self.exhibitor_dir / ZK_DIR_NAME

    @property
    def data_dir(self) -> Path:
        """ZooKeeper's ``dataDir``: snapshots and ``myid``."""
        return self.zk_dir / "snapshot"

    @property
    def log_dir(self) -> Path:
        """ZooKeeper's ``dataLogDir``: transaction logs."""
        return self.zk_dir / "transactions"

    @property
    def snapshots_dir(self) -> Path:
        return self.data_dir / VERSION_DIR

    @property
    def logs_dir(self) -> Path:
        return self.log_dir / VERSION_DIR

    @property
    def myid_file(self) -> Path:
        return self.data_dir / MYID

    @property
    def console_log(self) -> Path:
        return self.zk_dir / CONSOLE_LOG

    @property
    def restore_journal(self) -> Path:
        return self.exhibitor_dir / "zookeeper.restore-journal"

    @property
    def restore_mark(self) -> Path:
        """What the last ``dcos-zk restore`` put in place (:mod:`dcos_backup.master.restore_mark`)."""
        return self.exhibitor_dir / "zookeeper.restore-mark"

    @property
    def lock_file(self) -> Path:
        """The data-dir lock every command touching ``zookeeper/`` takes (:mod:`dcos_backup.master.lock`)."""
        return self.exhibitor_dir / "zookeeper.lock"

    # ---------------------------------------------------------------- configuration
    @property
    def conf_dir(self) -> Path:
        return self.exhibitor_dir / "conf"

    @property
    def node_config(self) -> Path:
        return self.conf_dir / "node.json"

    @property
    def zoo_cfg(self) -> Path:
        return self.conf_dir / "zoo.cfg"

    @property
    def local_cluster_file(self) -> Path:
        """Where dcos-local describes the cluster this master belongs to (absent on a real master)."""
        return self.exhibitor_dir.parent / LOCAL_CLUSTER_FILE

    # ---------------------------------------------------------------- processes
    @property
    def run_dir(self) -> Path:
        return self.exhibitor_dir / "run"

    @property
    def exhibitor_pid_file(self) -> Path:
        return self.run_dir / "exhibitor.pid"

    @property
    def zookeeper_pid_file(self) -> Path:
        return self.run_dir / "zookeeper.pid"

    @property
    def dcos_zk_pid_file(self) -> Path:
        """The pid file DC/OS's own Exhibitor writes for its ZooKeeper."""
        return self.exhibitor_dir / "zk.pid"

    @property
    def pid_files(self) -> tuple[Path, ...]:
        """Every pid file that names a process of this master's ZooKeeper or its supervisor."""
        return (self.exhibitor_pid_file, self.zookeeper_pid_file, self.dcos_zk_pid_file)

    @property
    def exhibitor_log(self) -> Path:
        return self.exhibitor_dir / "exhibitor.log"

    @property
    def archiver_pid_file(self) -> Path:
        return self.run_dir / "archiver.pid"

    @property
    def archiver_state(self) -> Path:
        return self.run_dir / "archiver.json"

    @property
    def archiver_log(self) -> Path:
        return self.exhibitor_dir / "archiver.log"

    @property
    def activity_log(self) -> Path:
        """The status log: one line per notable event (archiving paused, a new base, ...), newest last."""
        return self.exhibitor_dir / "activity.log"
