"""S3 storage against a real S3-protocol server (moto's): the object store both the backup catalog and the
ZooKeeper archive repository use, the catalog on it, and the service backing up to and restoring from a
bucket with nothing on the master's disk. Faults: an S3 server failing mid-upload or unreachable ends the
backup STATUS_ERROR with S3's reason, leaves no object or unfinished upload behind, and the next one works."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import boto3
import pytest
from kazoo.security import OPEN_ACL_UNSAFE
from tests.helpers import (
    backup_doc,
    create_ready,
    damage,
    marathon_chroot,
    ok,
    restore_ended,
    restore_through_cli,
    run_tool,
    seeded_cluster,
    service_api,
    show,
    tool,
    wait_for,
)

from dcos_backup.api.models import CREATE, LIST, RESTORE
from dcos_backup.catalog.archive import ArchiveWriter, read_archive, verify_archive
from dcos_backup.catalog.ids import new_backup_id
from dcos_backup.catalog.models import BackupRecord, Status, now
from dcos_backup.catalog.storage import open_storage
from dcos_backup.errors import NotFound, StorageError, UsageError
from dcos_backup.local import cluster as local_cluster
from dcos_backup.local.s3 import CREDENTIALS
from dcos_backup.logical import ZNode, connect
from dcos_backup.master.processes import read_pid, wait_until_gone
from dcos_backup.storage.crypto import MAGIC, EncryptionKey
from dcos_backup.storage.local import LocalStore
from dcos_backup.storage.locations import open_store
from dcos_backup.storage.s3 import S3_PART
from dcos_backup.testing.faulty_s3 import FaultyS3
from dcos_backup.testing.trees import snapshot

pytestmark = pytest.mark.e2e

KEY = EncryptionKey(bytes(range(32)))
LOCAL_CREDENTIALS = {
    "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
    "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    "region_name": CREDENTIALS["AWS_DEFAULT_REGION"],
}


def client(endpoint: str):
    return boto3.client("s3", endpoint_url=endpoint)


def bucket_state(endpoint: str, bucket: str) -> tuple[list[str], list[str]]:
    """Every object key in the bucket, and every unfinished multipart upload's key."""
    s3 = client(endpoint)
    objects = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    uploads = [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    return objects, uploads


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalStore(tmp_path / "repo")
    endpoint = request.getfixturevalue("s3_endpoint")
    return open_store(f"s3://{request.getfixturevalue('s3_bucket')}/some/prefix", endpoint_url=endpoint)


def test_object_store_contract_on_both_backends(store):
    big = os.urandom(2 * S3_PART + 12345)  # three parts on S3
    assert store.put("a/b/small", b"tiny").sha256 == hashlib.sha256(b"tiny").hexdigest()
    result = store.put("a/big", big)
    assert (result.size, store.get_bytes("a/big")) == (len(big), big)
    with store.get("a/b/small") as f:
        assert f.read(2) == b"ti" and f.read() == b"ny"
    assert [(o.key, o.size) for o in store.list("a/")] == [("a/b/small", 4), ("a/big", len(big))] or [
        (o.key, o.size) for o in store.list("a/")
    ] == [("a/big", len(big)), ("a/b/small", 4)]
    with pytest.raises(RuntimeError), store.writer("a/torn") as sink:
        sink.write(big)  # past the first part on S3: a multipart upload is under way
        raise RuntimeError("the writer died")
    assert "a/torn" not in {o.key for o in store.list()}
    assert store.remove_partials() == 0  # the failed write cleaned up after itself
    with pytest.raises(NotFound):
        store.get("a/none")
    for bad in ("../x", ".hidden", "/abs"):
        with pytest.raises(UsageError):
            store.put(bad, b"")
    store.delete("a/big")
    store.delete("a/b/small")
    assert list(store.list()) == []


def test_a_killed_writer_s_upload_is_aborted_by_remove_partials(s3_endpoint, s3_bucket):
    store = open_store(f"s3://{s3_bucket}", endpoint_url=s3_endpoint)
    writer = store.writer("x/killed")
    sink = writer.__enter__()
    sink.write(os.urandom(S3_PART + 1))  # one part uploaded, then the process "dies" (never exits the block)
    assert bucket_state(s3_endpoint, s3_bucket) == ([], ["x/killed"])
    assert store.remove_partials("x/") == 1
    assert bucket_state(s3_endpoint, s3_bucket) == ([], [])


def test_s3_urls(s3_endpoint):
    for bad in ("s3://", "s3://UPPER/x", "s3://a/../b"):
        with pytest.raises(UsageError):
            open_store(bad, endpoint_url=s3_endpoint)


def test_catalog_on_s3_round_trips_encrypted_archives(s3_endpoint, s3_bucket):
    storage = open_storage(f"s3://{s3_bucket}/backups", s3_endpoint, KEY)
    record = BackupRecord(
        dcos_version="2.2.0", id=new_backup_id("ons3"), label="ons3", status=Status.READY, timestamp=now()
    )
    storage.write(record)
    data = [os.urandom(900) + b"clear-text-marker" for _ in range(20000)]
    nodes = [ZNode("/r", b"root", tuple(OPEN_ACL_UNSAFE))] + [
        ZNode(f"/r/n{i}", d, tuple(OPEN_ACL_UNSAFE)) for i, d in enumerate(data)
    ]
    with storage.archive_writer(record.id, "r.dcosbkp") as sink:
        writer = ArchiveWriter(sink, "r", "/r")
        for node in nodes:
            writer.add(node)
        summary = writer.close()
    assert summary.bytes > S3_PART  # a multipart upload
    objects, uploads = bucket_state(s3_endpoint, s3_bucket)
    assert sorted(objects) == [f"backups/{record.id}.json", f"backups/{record.id}/r.dcosbkp"] and not uploads
    at_rest = client(s3_endpoint).get_object(Bucket=s3_bucket, Key=f"backups/{record.id}/r.dcosbkp")["Body"].read()
    assert len(at_rest) == summary.bytes and b"clear-text-marker" not in at_rest
    with storage.archive_reader(record.id, "r.dcosbkp") as source:
        assert verify_archive(source, summary.sha256).nodes == len(nodes)
    with storage.archive_reader(record.id, "r.dcosbkp") as source:
        assert [n.data for n in read_archive(source)] == [n.data for n in nodes]
    assert [r.id for r in storage.list_records()] == [record.id] == [r.id for r in storage.list_records("ons3")]
    storage.delete(record.id)
    assert bucket_state(s3_endpoint, s3_bucket) == ([], [])


@pytest.fixture
def chroot(cluster):
    with marathon_chroot(cluster, apps=20, seed=4) as made:
        yield made


@pytest.fixture
def faulty(s3_endpoint):
    proxy = FaultyS3(s3_endpoint)
    yield proxy
    proxy.close()


def test_service_backs_up_to_s3_and_restores_with_nothing_on_disk(chroot, s3_endpoint, s3_bucket, tmp_path):
    hosts, zk = chroot
    before = snapshot(zk)
    cwd = os.getcwd()
    os.chdir(tmp_path)  # anything written to "the disk" would land here
    try:
        with service_api(open_storage(f"s3://{s3_bucket}/b", s3_endpoint, KEY), hosts) as api:
            doc = create_ready(api.http, "ons3")
            assert doc["status"] == "STATUS_READY" and doc["component_status"]["marathon"]["encryption"]
            damage(zk)
            assert api.http.post(RESTORE, json={"id": doc["id"]}).status_code == 200
            assert restore_ended(api.http, doc["id"])["restores"][-1]["status"] == "STATUS_READY"
            assert snapshot(zk) == before
    finally:
        os.chdir(cwd)
    assert list(tmp_path.iterdir()) == []
    objects, uploads = bucket_state(s3_endpoint, s3_bucket)
    assert not uploads and any(k.endswith("marathon.dcosbkp") for k in objects)


def big_tree(zk, megabytes: int) -> None:
    """Incompressible data, so that the archive needs a multipart upload."""
    zk.ensure_path("/marathon/big")
    for i in range(megabytes):
        zk.create(f"/marathon/big/n{i}", os.urandom(1000 * 1000))


def test_s3_failing_mid_upload_ends_the_backup_in_error_and_leaves_nothing(chroot, faulty, s3_bucket):
    hosts, zk = chroot
    big_tree(zk, 3 * S3_PART // 1_000_000)
    with service_api(open_storage(f"s3://{s3_bucket}/b", faulty.url), hosts) as api:
        faulty.fails = lambda method, path: method == "PUT" and "partNumber=2" in path
        failed = create_ready(api.http, "cut")
        assert failed["status"] == "STATUS_ERROR", failed
        assert "S3 storage" in failed["reason"] and "injected" in failed["reason"], failed["reason"]
        assert faulty.failed >= 1
        objects, uploads = bucket_state(faulty.url, s3_bucket)
        assert objects == [f"b/{failed['id']}.json"] and uploads == []  # the record says ERROR
        faulty.fails = None
        assert create_ready(api.http, "next")["status"] == "STATUS_READY"
        assert backup_doc(api.http, failed["id"])["status"] == "STATUS_ERROR"


def test_unreachable_s3_is_one_clear_error(chroot, tmp_path):
    hosts, _ = chroot
    closed = "http://127.0.0.1:9"  # discard port: nothing listens
    with service_api(open_storage("s3://nowhere/b", closed), hosts) as api:
        reply = api.http.post(CREATE, json={"label": "unreachable"})
        assert reply.status_code == 507, reply.text
        (message,) = reply.json()["errors"]
        assert message.startswith("S3 storage s3://nowhere/b failed while") and "127.0.0.1:9" in message
    with pytest.raises(StorageError):
        open_storage("s3://nowhere/b", closed).list_records()


def test_local_cluster_with_s3_storage_keeps_backups_in_the_bucket_only(tmp_path_factory):
    """``dcos-local up --storage s3 --encryption-key-file --zk-archive s3://...``: the seed procedure through
    the CLI, the backup in moto's bucket only (nothing under the cluster's storage directory), encrypted; every
    master's archiver streams into the same S3 server, readable with what ``dcos-local env`` exports; ``down``
    stops moto."""
    key_file = tmp_path_factory.mktemp("keys") / "backup.key"
    directory = tmp_path_factory.mktemp("s3-cluster")
    repo = "s3://dcos-backup/zk-archive"
    with seeded_cluster(
        directory, apps=30, seed=8, storage="s3", encryption_key_file=key_file, zk_archive=repo
    ) as cluster:
        service = cluster.service
        assert service["storage"] == "s3://dcos-backup/backups" and "storage_dir" not in service
        doc = json.loads((cluster.dir / "cluster.json").read_text())
        assert doc["storage"] == "s3" and doc["service"]["s3_endpoint_url"] == service["s3_endpoint_url"]
        moto = read_pid(cluster.files.pid_file("s3-child"))
        zk = connect(cluster.zk_hosts)
        try:
            before = snapshot(zk)
            backup_id = ok(run_tool("dcos", "backup", "create", "--label=ons3", cluster_dir=cluster.dir)).stdout.strip()
            wait_for(lambda: show(cluster, backup_id)["status"] == "STATUS_READY", what="READY")
            assert not cluster.files.storage_dir.exists()
            s3 = boto3.client("s3", endpoint_url=service["s3_endpoint_url"], **LOCAL_CREDENTIALS)
            keys = [o["Key"] for o in s3.list_objects_v2(Bucket="dcos-backup", Prefix="backups/")["Contents"]]
            names = ("marathon.dcosbkp", "metronome.dcosbkp")  # every component, even an empty one
            assert sorted(keys) == [f"backups/{backup_id}.json"] + [f"backups/{backup_id}/{name}" for name in names]
            archive = s3.get_object(Bucket="dcos-backup", Key=f"backups/{backup_id}/marathon.dcosbkp")
            assert archive["Body"].read().startswith(MAGIC)  # encrypted: no znode data in clear
            damage(zk)
            ended = restore_through_cli(cluster, backup_id)
            assert ended["status"] == "STATUS_READY", ended
            assert snapshot(zk) == before
            assert_archived_to_s3(cluster, repo)
        finally:
            zk.stop()
    assert wait_until_gone([moto], timeout=30) == []


def assert_archived_to_s3(cluster, repo: str) -> None:
    """Every master's stream reaches the cluster's S3 server, and the repository verifies there with the
    variables ``dcos-local env`` exports."""
    exports = ok(run_tool("dcos-local", "env", "1", cluster_dir=cluster.dir)).stdout
    env = dict(line.removeprefix("export ").split("=", 1) for line in exports.splitlines())
    env = {k: v.strip("'") for k, v in env.items() if k.startswith(("AWS_", "DCOS_ZK_REPO"))}
    assert env["DCOS_ZK_REPO"] == repo and env["AWS_ENDPOINT_URL"] == cluster.service["s3_endpoint_url"]

    def streams() -> set[str]:
        status = run_tool("dcos-zk", "archive", "status", "--repo", repo, "--json", env=env)
        return {d["stream"] for d in json.loads(status.stdout)} if status.returncode == 0 else set()

    wait_for(lambda: streams() == {"master-1", "master-2", "master-3"}, timeout=120, what="three streams in S3")
    ok(run_tool("dcos-zk", "archive", "verify", "--repo", repo, env=env))


def test_dcos_zk_backup_and_archive_take_s3_urls(make_cluster, s3_endpoint, s3_bucket, tmp_path):
    """``dcos-zk backup s3://...`` uploads the verified archive and its .sha256; ``dcos-zk archive --repo
    s3://...`` streams into the bucket through the same object store, and the repository verifies."""
    cluster = make_cluster(masters=1, with_service=False)
    exhibitor_dir = str(cluster.masters[0].layout.exhibitor_dir)
    env = {"AWS_ENDPOINT_URL": s3_endpoint, **CREDENTIALS}
    url = f"s3://{s3_bucket}/zk/master-1.tar.gz"
    out = ok(run_tool("dcos-zk", "backup", "--online", url, "--exhibitor-dir", exhibitor_dir, env=env)).stdout
    s3 = client(s3_endpoint)
    body = s3.get_object(Bucket=s3_bucket, Key="zk/master-1.tar.gz")["Body"].read()
    digest = hashlib.sha256(body).hexdigest()
    assert f"sha256 {digest}" in out and url in out
    assert s3.get_object(Bucket=s3_bucket, Key="zk/master-1.tar.gz.sha256")["Body"].read().decode().startswith(digest)
    again = run_tool("dcos-zk", "backup", "--online", url, "--exhibitor-dir", exhibitor_dir, env=env)
    assert again.returncode == 2 and again.stderr.strip().endswith("already exists; choose a new key")

    repo = f"s3://{s3_bucket}/repo"
    key = tmp_path / "repo.key"  # this cluster's repository key
    key.write_bytes(os.urandom(32))
    key.chmod(0o600)
    env["DCOS_ZK_REPO_KEY_FILE"] = str(key)
    with open(tmp_path / "archive.log", "wb") as log:
        archiver = subprocess.Popen(
            [tool("dcos-zk"), "archive", "--repo", repo, "--exhibitor-dir", exhibitor_dir],
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        def archived() -> list:
            status = run_tool("dcos-zk", "archive", "status", "--repo", repo, "--json", env=env)
            docs = json.loads(status.stdout) if status.returncode == 0 else []
            return [d for d in docs if d["snapshots"] and d["restorable"]]

        wait_for(archived, timeout=120, what="a restorable generation in the S3 repository")
    finally:
        archiver.terminate()
        archiver.wait(timeout=60)
    ok(run_tool("dcos-zk", "archive", "verify", "--repo", repo, env=env))
    assert bucket_state(s3_endpoint, s3_bucket)[1] == []
    restore_from_s3(cluster, url, env)


def restore_from_s3(cluster, url: str, env: dict[str, str]) -> None:
    """``dcos-zk verify|restore s3://...`` download the archive with its .sha256 and check both: a .sha256
    that does not match refuses the restore before anything changes; the right one restores."""
    exhibitor_dir = str(cluster.masters[0].layout.exhibitor_dir)
    checked = json.loads(ok(run_tool("dcos-zk", "verify", url, "--json", env=env)).stdout)
    assert checked["archive"] == url and checked["nodes"] > 0
    local_cluster.stop_master(cluster, 1)
    bucket, key = url.removeprefix("s3://").split("/", 1)
    s3 = client(env["AWS_ENDPOINT_URL"])
    good = s3.get_object(Bucket=bucket, Key=key + ".sha256")["Body"].read()
    s3.put_object(Bucket=bucket, Key=key + ".sha256", Body=b"0" * 64 + b"  master-1.tar.gz\n")
    data_before = sorted(p.name for p in (cluster.masters[0].layout.exhibitor_dir / "zookeeper").rglob("*"))
    refused = run_tool("dcos-zk", "restore", url, "--exhibitor-dir", exhibitor_dir, env=env)
    assert refused.returncode != 0 and "sha256" in refused.stderr, refused.stderr
    assert sorted(p.name for p in (cluster.masters[0].layout.exhibitor_dir / "zookeeper").rglob("*")) == data_before
    s3.put_object(Bucket=bucket, Key=key + ".sha256", Body=good)
    done = json.loads(
        ok(run_tool("dcos-zk", "restore", url, "--exhibitor-dir", exhibitor_dir, "--json", env=env)).stdout
    )
    assert done["archive"] == url and done["verified"]["nodes"] == checked["nodes"]
    local_cluster.start_master(cluster, 1)
    local_cluster.wait_serving(cluster, 120)


def test_show_reads_one_record_and_list_only_the_catalogs_folders(chroot, faulty, s3_endpoint, s3_bucket):
    """Issue 29 item 1, counted at the S3 server: with an archive repository's objects sharing the
    catalog's prefix (and keys planted beside the backups), a show is one GET of its record and no
    listing; a list is one delimited listing (the archive one entry in it) and one GET per backup, and
    answers exactly the backups, oldest first; a prefix lists only its ids."""
    hosts, _ = chroot
    storage = open_storage(f"s3://{s3_bucket}/b", faulty.url)
    ages = {"third": 1, "second": 2, "first": 3, "fourth": 0}  # hours; written in this order, listed by age
    backups = [
        BackupRecord(
            dcos_version="2.2.0",
            id=new_backup_id(label),
            label=label,
            status=Status.READY,
            timestamp=now() - timedelta(hours=hours),
        )
        for label, hours in ages.items()
    ]
    for r in backups:
        storage.write(r)
    direct = open_store(f"s3://{s3_bucket}/b", endpoint_url=s3_endpoint)  # seeding, not counted
    with ThreadPoolExecutor(8) as pool:  # more than one page of a listing that is not delimited
        list(pool.map(lambda i: direct.put(f"zk-archive/master-1/segment-{i:05d}", b"s"), range(1001)))
    planted_keys = ("stray", "not-an-id/backup.json", "not-an-id.json", "zk-archive/backup.json", "zk-archive.json")
    for planted in (*planted_keys, f"{new_backup_id('eee')}/x"):
        direct.put(planted, backups[0].model_dump_json().encode())
    oldest_first = sorted(backups, key=lambda r: r.timestamp)
    seen: list[tuple[str, str]] = []
    faulty.fails = lambda method, path: seen.append((method, path)) or False
    with service_api(storage, hosts) as api:
        seen.clear()
        doc = backup_doc(api.http, backups[1].id)
        assert doc["id"] == backups[1].id and doc["label"] == "second"
        assert seen == [("GET", f"/{s3_bucket}/b/{backups[1].id}.json")], seen
        seen.clear()
        assert api.http.get(LIST, params={"prefix": new_backup_id("absent")}).json() == {}
        assert len(seen) == 2 and not any("list-type" in path for _, path in seen)  # <id>.json, <id>/backup.json
        seen.clear()
        listed = api.http.get(LIST).json()["backup_info"]
        assert [d["id"] for d in listed] == [r.id for r in oldest_first]
        listings = [path for _, path in seen if "list-type=2" in path]
        assert len(listings) == 1 and "delimiter=%2F" in listings[0], listings
        # the listing, each record not read before (the one shown was), the "eee-" folder's in both layouts
        assert len(seen) == 1 + len(backups) - 1 + 2
        seen.clear()
        assert [d["id"] for d in api.http.get(LIST, params={"prefix": "f"}).json()["backup_info"]] == [
            backups[2].id,
            backups[3].id,
        ]
        assert len(seen) == 1 and "list-type=2" in seen[0][1]  # both read before, at the versions listed
        seen.clear()
        assert [d["id"] for d in api.http.get(LIST).json()["backup_info"]] == [r.id for r in oldest_first]
        assert len(seen) == 1 + 2, seen  # the listing, and the "eee-" folder that holds no record
