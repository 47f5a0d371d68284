"""``dcos-zk backup --online`` under write load, and ``dcos-zk verify`` against damaged archives.

A private 3-master cluster with a small ``snapCount`` so that snapshots are taken and logs roll over
while the load runs: the online copy has to stitch a fuzzy snapshot and growing logs together.
"""

from __future__ import annotations

import functools
import json
import random
import shutil
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from kazoo.security import ACL, make_acl
from tests.helpers import ok, run_tool, seeded_cluster, wait_for

from dcos_backup.local import cluster as local_cluster
from dcos_backup.local.spec import ClusterSpec
from dcos_backup.logical import connect
from dcos_backup.master.layout import MasterLayout
from dcos_backup.physical import formats
from dcos_backup.testing.load import LoadGenerator
from dcos_backup.testing.trees import snapshot

pytestmark = pytest.mark.e2e
SNAP_COUNT = 400
dcos_zk = functools.partial(run_tool, "dcos-zk")


@pytest.fixture(scope="module")
def busy_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterSpec]:
    directory = tmp_path_factory.mktemp("online-cluster")
    with seeded_cluster(
        directory, apps=30, seed=5, zk_config=[("snapCount", str(SNAP_COUNT))], with_service=False
    ) as c:
        yield c


class StatusWatch:
    """Polls the Exhibitor status of every member; remembers any member seen not serving."""

    def __init__(self, cluster: ClusterSpec) -> None:
        self.urls = [f"{m.member.exhibitor_url}/exhibitor/v1/cluster/status" for m in cluster.masters]
        self.bad: list[object] = []
        self.polls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for url in self.urls:
                try:
                    status = httpx.get(url, timeout=2).json()
                    self.bad += [s for s in status if s["description"] != "serving"]
                except httpx.HTTPError as e:
                    self.bad.append(repr(e))
            self.polls += 1
            self._stop.wait(0.1)

    def __enter__(self) -> StatusWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_online_backup_under_load_restores_exactly_the_archived_state(busy_cluster: ClusterSpec, tmp_path: Path):
    cluster = busy_cluster
    client = connect(cluster.zk_hosts)
    marathon_before = snapshot(client)
    client.stop()
    archive = tmp_path / "online.tar.gz"
    master2 = cluster.master(2)

    load = LoadGenerator(cluster.zk_hosts, root="/load", rate=150, seed=7)
    load.start()
    with StatusWatch(cluster) as watch:
        # Several snapshots and log roll-overs before the backup: ZooKeeper snapshots every ~snapCount writes.
        wait_for(lambda: len(load.acknowledged()) >= 2 * SNAP_COUNT, timeout=120, what="writes for 2 snapshots")
        acked_before_backup = max(op.zxid for op in load.acknowledged())
        ex = master2.layout.exhibitor_dir
        result = ok(dcos_zk("backup", str(archive), "--online", "-v", "--exhibitor-dir", str(ex)))
        verified = json.loads(ok(dcos_zk("verify", str(archive), "--json")).stdout)
        last_zxid = int(verified["last_zxid"], 16)
        # The load goes on after the backup, and the members serve all along.
        wait_for(lambda: max(op.zxid for op in load.acknowledged()) > last_zxid, what="writes after the backup")
        wait_for(lambda: watch.polls >= 5, what="5 status polls")
    report = load.stop()

    assert report.failures == [], report.failures
    assert watch.bad == [], watch.bad
    assert "online backup written" in result.stdout and "verified up to zxid" in result.stdout
    assert last_zxid >= acked_before_backup
    assert verified["digests_checked"] > 0

    # The normal restore procedure on every master.
    restore_every_master(cluster, archive, tmp_path)

    client = connect(cluster.zk_hosts)
    try:
        children = {f"/load/{name}": client.get(f"/load/{name}")[0] for name in client.get_children("/load")}
        assert children == load.expected_children(last_zxid, report.ops)
        assert snapshot(client) == marathon_before
    finally:
        client.stop()


class AclChurn:
    """setACL and creates with ever new ACLs (each a new entry in ZooKeeper's ACL cache), one at a time, as
    fast as acknowledged: the load under which ZooKeeper once wrote fuzzy snapshots it could not load
    (ZOOKEEPER-4846). Remembers each node's czxid and every ACL it was given, in order."""

    def __init__(self, hosts: str, root: str = "/acl-churn", seed: int = 11) -> None:
        self.client = connect(hosts)
        self.client.ensure_path(root)
        self.root = root
        self.rng = random.Random(seed)
        self.czxid: dict[str, int] = {}
        self.acls: dict[str, list[list[ACL]]] = {}  # [0]: at create; [k]: after the k-th acknowledged setACL
        self.ambiguous: list[str] = []  # an op whose outcome the client never learned
        self.ops = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _acl(self) -> list[ACL]:
        n = self.ops
        return [
            make_acl("world", "anyone", all=True),
            make_acl("ip", f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", read=True),
        ]

    def _run(self) -> None:
        while not self._stop.is_set():
            self.ops += 1
            acl = self._acl()
            live = [p for p in self.acls if p not in self.ambiguous]
            path = self.rng.choice(live) if live and self.ops % 3 else f"{self.root}/n{self.ops:06d}"
            try:
                if path in self.acls:
                    self.client.set_acls(path, acl)
                    self.acls[path].append(acl)
                else:
                    _, stat = self.client.create(path, b"x", acl=acl, include_data=True)
                    self.czxid[path], self.acls[path] = stat.czxid, [acl]
            except Exception:
                self.ambiguous.append(path)
            self._stop.wait(0.005)

    def setacls_acknowledged(self) -> dict[str, int]:
        return {path: len(acls) - 1 for path, acls in list(self.acls.items())}

    def __enter__(self) -> AclChurn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.client.stop()


def restore_every_master(cluster: ClusterSpec, archive: Path, tmp_path: Path) -> None:
    """The seed's procedure: stop every master, restore each from its copy of the archive, start them all."""
    for m in cluster.masters:
        local_cluster.stop_master(cluster, m.id)
    for m in cluster.masters:
        copy = tmp_path / f"master-{m.id}.tar.gz"
        shutil.copy(archive, copy)
        ok(dcos_zk("restore", str(copy), "--exhibitor-dir", str(m.layout.exhibitor_dir)))
    for m in cluster.masters:
        local_cluster.start_master(cluster, m.id)
    statuses = local_cluster.wait_serving(cluster, 90)
    assert [s.description for s in statuses] == ["serving"] * 3


def test_online_backup_with_acl_churn_restores_exactly_the_acknowledged_acls(busy_cluster: ClusterSpec, tmp_path: Path):
    """Issue 17 item 7: setACL and creates with new ACLs while --online runs (and snapshots are taken)."""
    cluster = busy_cluster
    archive = tmp_path / "acl-churn.tar.gz"
    ex = cluster.master(1).layout.exhibitor_dir
    load = LoadGenerator(cluster.zk_hosts, root="/acl-load", rate=150, seed=9)
    load.start()
    with AclChurn(cluster.zk_hosts) as churn:
        wait_for(lambda: churn.ops >= 300 and len(load.acknowledged()) >= SNAP_COUNT, timeout=180, what="churn")
        before = churn.setacls_acknowledged()
        ok(dcos_zk("backup", str(archive), "--online", "--exhibitor-dir", str(ex)))
        ops_at_backup = churn.ops
        wait_for(lambda: churn.ops >= ops_at_backup + 100, what="churn after the backup")
    load.stop()
    assert churn.ambiguous == []
    last_zxid = int(json.loads(ok(dcos_zk("verify", str(archive), "--json")).stdout)["last_zxid"], 16)

    restore_every_master(cluster, archive, tmp_path)
    client = connect(cluster.zk_hosts)
    restored = [p for p, czxid in churn.czxid.items() if czxid <= last_zxid]
    assert len(restored) >= 50 and len(restored) < len(churn.czxid)  # nodes on both sides of the backup
    try:
        for path, czxid in churn.czxid.items():
            if czxid > last_zxid:
                assert not client.exists(path), f"{path} created after the backup's last zxid came back"
                continue
            acl, stat = client.get_acls(path)
            history = churn.acls[path]
            assert stat.aversion < len(history), f"{path}: aversion {stat.aversion} beyond {len(history)} ACLs"
            assert acl == history[stat.aversion], f"{path}: ACL is not the one of its aversion"
            assert stat.aversion >= before.get(path, 0), f"{path}: a setACL acknowledged before the backup is lost"
        assert sum(client.get_acls(p)[1].aversion > 0 for p in restored) >= 20  # setACLs made it into the backup
    finally:
        client.stop()


# ---------------------------------------------------------------------------------------- verify
@pytest.fixture(scope="module")
def full_data_archive(busy_cluster: ClusterSpec, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An offline archive of master 3 holding several snapshots and logs (the whole data directory)."""
    cluster = busy_cluster
    client = connect(cluster.zk_hosts)
    client.ensure_path("/verify")
    for i in range(1500):  # a few log roll-overs
        client.create(f"/verify/n{i:05d}", b"v" * (i % 300))
    client.stop()
    archive = tmp_path_factory.mktemp("verify") / "master3.tar.gz"
    local_cluster.stop_master(cluster, 3)
    try:
        ok(dcos_zk("backup", str(archive), "--exhibitor-dir", str(cluster.master(3).layout.exhibitor_dir)))
    finally:
        local_cluster.start_master(cluster, 3, wait=True)
    return archive


def unpack(archive: Path, target: Path) -> MasterLayout:
    """The archive's data, laid out as on a master (its ``zookeeper/`` in ``target``)."""
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(target, filter="data")
    return MasterLayout(target)


def repack(data: MasterLayout, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(data.zk_dir, arcname="./zookeeper")
    return archive


def data_files(data: MasterLayout, kind: str) -> list[Path]:
    directory = data.snapshots_dir if kind == "snapshot" else data.logs_dir
    files = [p for p in directory.iterdir() if formats.kind_of_name(p.name) == kind]
    return sorted(files, key=lambda p: formats.zxid_of_name(p.name) or 0)


def only_oldest_snapshot(data: MasterLayout) -> None:
    """Make the replay start at the first snapshot, so that it runs through every log."""
    for path in data_files(data, "snapshot")[1:]:
        path.unlink()


def verify(archive: Path) -> subprocess.CompletedProcess:
    return dcos_zk("verify", str(archive))


def flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x10]))


def test_verify_accepts_the_untouched_data(full_data_archive: Path, tmp_path: Path):
    data = unpack(full_data_archive, tmp_path)
    assert len(data_files(data, "log")) >= 3
    result = ok(verify(full_data_archive))
    assert "OK" in result.stdout and "tree digest" in result.stdout
    only_oldest_snapshot(data)
    from_first = json.loads(ok(dcos_zk("verify", str(repack(data, tmp_path / "first.tar.gz")), "--json")).stdout)
    assert from_first["transactions"] >= 1500 and len(from_first["logs"]) >= 3
    assert from_first["digests_checked"] >= 1500


@pytest.mark.parametrize("position", [0.2, 0.5, 0.9])
def test_verify_catches_a_flipped_byte_in_a_log(full_data_archive: Path, tmp_path: Path, position: float):
    data = unpack(full_data_archive, tmp_path)
    only_oldest_snapshot(data)
    log_file = data_files(data, "log")[1]
    _, end = formats.read_log(log_file)
    flip(log_file, 16 + int((end.valid_end - 16) * position))
    result = verify(repack(data, tmp_path / "flipped.tar.gz"))
    assert result.returncode == 1
    assert log_file.name in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_verify_catches_a_truncated_log(full_data_archive: Path, tmp_path: Path):
    data = unpack(full_data_archive, tmp_path)
    last_log = data_files(data, "log")[-1]
    records, _ = formats.read_log(last_log)
    with open(last_log, "r+b") as f:
        f.truncate(records[-1].offset + 9)  # inside the last record
    result = verify(repack(data, tmp_path / "truncated.tar.gz"))
    assert result.returncode == 1 and "truncated" in result.stderr


def test_verify_catches_a_log_cut_short_before_the_next(full_data_archive: Path, tmp_path: Path):
    data = unpack(full_data_archive, tmp_path)
    only_oldest_snapshot(data)
    middle = data_files(data, "log")[1]
    records, _ = formats.read_log(middle)
    with open(middle, "r+b") as f:
        f.truncate(records[len(records) // 2].offset)  # at a record boundary: only the gap tells
    result = verify(repack(data, tmp_path / "short.tar.gz"))
    # Within an epoch the zxid sequence shows the gap; across an epoch change the tree digest does.
    assert result.returncode == 1 and ("jump" in result.stderr or "digest mismatch" in result.stderr)


def test_verify_catches_a_missing_log_in_the_middle(full_data_archive: Path, tmp_path: Path):
    data = unpack(full_data_archive, tmp_path)
    only_oldest_snapshot(data)
    data_files(data, "log")[1].unlink()
    result = verify(repack(data, tmp_path / "missing.tar.gz"))
    assert result.returncode == 1
    assert "a log file is missing" in result.stderr or "digest mismatch" in result.stderr


@pytest.mark.parametrize("position", [0.1, 0.5, 0.95])
def test_verify_catches_a_corrupt_snapshot(full_data_archive: Path, tmp_path: Path, position: float):
    data = unpack(full_data_archive, tmp_path)
    snap = data_files(data, "snapshot")[-1]
    flip(snap, 16 + int((snap.stat().st_size - 16 - 5) * position))
    result = verify(repack(data, tmp_path / "corrupt.tar.gz"))
    assert result.returncode == 1 and snap.name in result.stderr


def test_dump_prints_the_archived_tree(full_data_archive: Path):
    lines = ok(dcos_zk("dump", str(full_data_archive), "--path", "/verify", "--json")).stdout.splitlines()
    nodes = [json.loads(line) for line in lines]
    assert nodes[0]["path"] == "/verify" and len(nodes) == 1501
    assert nodes[7] == {**nodes[7], "path": "/verify/n00006", "data": "v" * 6}
    missing = dcos_zk("dump", str(full_data_archive), "--path", "/nope")
    assert missing.returncode == 1 and "/nope is not in the archive" in missing.stderr


def test_bad_input_gets_one_line_and_a_nonzero_exit(tmp_path: Path, full_data_archive: Path):
    relative = dcos_zk("dump", str(full_data_archive), "--path", "marathon")
    assert relative.returncode == 2 and relative.stderr.strip() == "error: --path must be absolute, got 'marathon'"
    for command in ("verify", "dump"):
        missing = dcos_zk(command, str(tmp_path / "absent.tar.gz"))
        assert missing.returncode == 1 and len(missing.stderr.strip().splitlines()) == 1
        assert "does not exist" in missing.stderr and "Traceback" not in missing.stderr
    not_a_tar = tmp_path / "notes.txt"
    not_a_tar.write_text("hello")
    garbage = dcos_zk("verify", str(not_a_tar))
    assert garbage.returncode == 1 and "not a complete gzip tar archive" in garbage.stderr
    assert len(garbage.stderr.strip().splitlines()) == 1
