"""A master's layout is DC/OS's, spelled once in MasterLayout; this spells it again, on purpose."""

from pathlib import Path

from dcos_backup.master.layout import DEFAULT_EXHIBITOR_DIR, MasterLayout


def test_the_layout_is_the_one_of_dcos_masters():
    ex = Path("/var/lib/dcos/exhibitor")
    layout = MasterLayout(ex)
    assert ex == DEFAULT_EXHIBITOR_DIR
    assert layout.zk_dir == ex / "zookeeper"
    assert layout.data_dir == ex / "zookeeper/snapshot"
    assert layout.myid_file == ex / "zookeeper/snapshot/myid"
    assert layout.snapshots_dir == ex / "zookeeper/snapshot/version-2"
    assert layout.log_dir == ex / "zookeeper/transactions"
    assert layout.logs_dir == ex / "zookeeper/transactions/version-2"
    assert layout.console_log == ex / "zookeeper/zookeeper.out"
    assert layout.node_config == ex / "conf/node.json"
    assert layout.zoo_cfg == ex / "conf/zoo.cfg"
    assert layout.dcos_zk_pid_file == ex / "zk.pid"
    assert layout.pid_files == (ex / "run/exhibitor.pid", ex / "run/zookeeper.pid", ex / "zk.pid")
    assert layout.local_cluster_file == ex.parent / "cluster.json"
    assert layout.lock_file == ex / "zookeeper.lock"
    assert layout.activity_log == ex / "activity.log"


def test_a_layout_is_a_value():
    a, b = MasterLayout(Path("/x")), MasterLayout(Path("/x"))
    assert a == b and hash(a) == hash(b) and a != MasterLayout(Path("/y"))
