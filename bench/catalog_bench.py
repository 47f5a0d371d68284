"""Catalog lookups on S3 with a big bucket: ``show`` and ``list`` through the Admin Router (issue 29 item 1).

    python bench/catalog_bench.py [--backups 10000] [--archive-objects 100000] [--shows 200] [--lists 3]
                                  [--subnet 127.33.0]

Starts a private 1-master cluster with ``--storage s3`` (moto's S3 server beside the master; the service keeps
its catalog under ``s3://dcos-backup/backups/``), takes one real backup through the front door, then:

- ``show`` of that backup, --shows times, as ``dcos backup show`` asks it (``GET /list?prefix=<id>``,
  HTTPS through the Admin Router with a token, one kept-alive connection): median and p95 with the
  bucket holding only that backup ("empty");
- fills the bucket: --backups records (copies of the real one under new ids and ages, signed with the
  cluster's record key, written through ``catalog.storage.Storage`` as the service writes them, each with a
  small archive object in its folder, as a real backup has) and
  --archive-objects small objects under ``backups/zk-archive/`` (a continuous archive repository
  sharing the catalog's prefix), both from parallel threads; how long that took;
- ``show`` again (the ratio full/empty is the figure: target <= 1.2, and <= 50 ms median);
- the catalog's own part of that show (``Storage.iter_records(id)`` in this process), alternating between
  the full bucket and a second bucket holding only that backup, so that the machine's load weighs on both;
- ``GET /list`` of everything, --lists times (target <= 2 s for 10,000), with the service process's RSS
  (VmRSS, and its peak VmHWM) before and after: the first list reads every record the service has not read
  before (one GET each), the next ones only the listing (the records are unchanged, so their ETags are);
- ``dcos backup list`` (the table) and ``dcos backup list --json``, as an operator runs them, best of 2;
- for reference, what one lookup cost before this change: a show and a list listed every object in the
  prefix (a non-delimited listing of the whole bucket, timed here in this process).

Prints a table and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import BIN, bench_cluster, dcos_env, print_table, timed_command, write_result
from dcos_backup.catalog.ids import new_backup_id
from dcos_backup.catalog.models import BackupRecord
from dcos_backup.catalog.storage import Storage
from dcos_backup.cli.client import BackupClient, backup_finished
from dcos_backup.cli.endpoint import resolve_endpoint
from dcos_backup.errors import DcosBackupError
from dcos_backup.local import s3
from dcos_backup.local.files import ClusterFiles
from dcos_backup.local.spec import ClusterSpec
from dcos_backup.storage.crypto import load_key
from dcos_backup.storage.s3 import S3Store

SHOW_TARGET_MS = 50.0
RATIO_TARGET = 1.2
LIST_TARGET_S = 2.0
ARCHIVE = "zk-archive"
EMPTY_BUCKET = "catalog-bench-empty"
WRITERS = 16  # threads filling the bucket (moto answers each PUT in a few ms, mostly waiting)


def service_memory(cluster_dir: Path) -> dict[str, int]:
    """The service process's VmRSS and VmHWM (MB), from /proc (the supervisor's child runs the service)."""
    pid = int((ClusterFiles(cluster_dir).pid_file("service-1-child")).read_text().split()[0])
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {key: int(status[key].split()[0]) // 1024 for key in ("VmRSS", "VmHWM")}


def timed_shows(client: BackupClient, backup_id: str, count: int) -> list[float]:
    client.show(backup_id)  # the connection made, the service's first request served
    times = []
    for _ in range(count):
        started = time.perf_counter()
        client.show(backup_id)
        times.append((time.perf_counter() - started) * 1000)
    return times


def interleaved_shows(full: Storage, record: BackupRecord, endpoint: str, count: int) -> dict[str, list[float]]:
    """The catalog's own part of a show (``Storage.iter_records(id)``, in this process), alternating between
    the full bucket and a second bucket holding only ``record``: the machine's load weighs on both alike."""
    s3.create_bucket(endpoint, EMPTY_BUCKET)
    empty = Storage(S3Store(f"s3://{EMPTY_BUCKET}/{s3.PREFIX}", endpoint_url=endpoint), record_key=full.record_key)
    empty.write(record.model_copy())
    times: dict[str, list[float]] = {"empty": [], "full": []}
    for _ in range(count):
        for name, storage in (("empty", empty), ("full", full)):
            started = time.perf_counter()
            assert [r.id for r in storage.iter_records(record.id)] == [record.id]
            times[name].append((time.perf_counter() - started) * 1000)
    return times


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


def fill(storage: Storage, template: BackupRecord, backups: int, archive_objects: int) -> dict[str, float]:
    """The records (each a copy of ``template`` under a new id, one minute older than the one before) and
    the archive's objects, written from :data:`WRITERS` threads; seconds each took."""

    def write_record(i: int) -> None:
        label = f"bench{i % 100:02d}"
        record = template.model_copy(
            update={
                "id": new_backup_id(label),
                "label": label,
                "timestamp": template.timestamp - timedelta(minutes=i + 1),
                "signature": None,
            }
        )
        storage.write(record)
        storage.objects.put(f"{record.id}/marathon.dcosbkp", b"a")  # its folder: a listing names it too

    def write_archive_object(i: int) -> None:
        storage.objects.put(f"{ARCHIVE}/master-{i % 3 + 1}/g{i // 10000:04d}/segment-{i:07d}", b"s" * 64)

    took = {}
    with ThreadPoolExecutor(WRITERS) as pool:
        jobs = (("records", write_record, backups), ("archive", write_archive_object, archive_objects))
        for name, work, count in jobs:
            started = time.perf_counter()
            for _ in pool.map(work, range(count)):
                pass
            took[name] = time.perf_counter() - started
            print(f"wrote {count:,} {name} objects in {took[name]:.1f}s", flush=True)
    return took


def old_listing_seconds(store: S3Store) -> tuple[float, int]:
    """What every show and list did before: list every object under the catalog's prefix."""
    started = time.perf_counter()
    objects = sum(1 for _ in store.list())
    return time.perf_counter() - started, objects


def measure(args: argparse.Namespace) -> dict:
    with bench_cluster(1, subnet=args.subnet, storage="s3") as cluster:
        os.environ.update(s3.CREDENTIALS)
        endpoint = resolve_endpoint(None, None, dcos_env(cluster.dir))
        client = BackupClient(endpoint, timeout=300)
        first = client.create("bench-real")
        client.wait(first["id"], backup_finished, timeout=300)
        store = S3Store(f"s3://{s3.BUCKET}/{s3.PREFIX}", endpoint_url=ClusterSpec.load(cluster.dir).s3_endpoint())
        storage = Storage(store, record_key=load_key(ClusterFiles(cluster.dir).record_key))
        template = storage.read(first["id"])
        empty = timed_shows(client, first["id"], args.shows)
        print(f"show, empty bucket: median {statistics.median(empty):.1f} ms", flush=True)
        took = fill(storage, template, args.backups, args.archive_objects)
        full = timed_shows(client, first["id"], args.shows)
        print(f"show, full bucket: median {statistics.median(full):.1f} ms", flush=True)
        interleaved = interleaved_shows(storage, template, store.client.meta.endpoint_url, args.shows)
        lists = []
        for i in range(args.lists):
            before = service_memory(cluster.dir)
            started = time.perf_counter()
            try:
                listed: int | str = len(client.list())
            except DcosBackupError as exc:  # the Admin Router gives up after 60 s: a figure too
                listed = f"failed: {str(exc)[:60]}"
            seconds = time.perf_counter() - started
            after = service_memory(cluster.dir)
            lists.append(
                {
                    "round": i + 1,
                    "records read before": "none" if i == 0 else "all",
                    "backups listed": listed,
                    "list s": seconds,
                    "RSS before MB": before["VmRSS"],
                    "RSS after MB": after["VmRSS"],
                    "peak RSS MB": after["VmHWM"],
                }
            )
            print(f"list {i + 1}: {listed} backups in {seconds:.1f}s, RSS {before} -> {after}", flush=True)
        env = dcos_env(cluster.dir)
        cli = {
            name: min(timed_command([str(BIN / "dcos"), "backup", "list", *flags], env=env)[0] for _ in range(2))
            for name, flags in (("table", []), ("--json", ["--json"]))
        }
        print(f"dcos backup list: {cli}", flush=True)
        started = time.perf_counter()
        in_process = (len(storage.list_records()), time.perf_counter() - started)
        old_seconds, objects = old_listing_seconds(store)
        client.close()
    return {
        "empty_ms": empty,
        "full_ms": full,
        "interleaved": interleaved,
        "fill_s": took,
        "lists": lists,
        "cli": cli,
        "in_process": in_process,
        "old": (old_seconds, objects),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backups", type=int, default=10_000)
    parser.add_argument("--archive-objects", type=int, default=100_000)
    parser.add_argument("--shows", type=int, default=200)
    parser.add_argument("--lists", type=int, default=3)
    parser.add_argument("--subnet", default="127.33.0", help="loopback /24 of the private cluster")
    args = parser.parse_args()
    report(args, measure(args))


def report(args: argparse.Namespace, m: dict) -> None:
    empty_median, full_median = statistics.median(m["empty_ms"]), statistics.median(m["full_ms"])
    rows = [
        {
            "bucket": name,
            "backups": count,
            "archive objects": archive,
            "show median ms": statistics.median(times),
            "show p95 ms": percentile(times, 0.95),
        }
        for name, count, archive, times in (
            ("empty", 1, 0, m["empty_ms"]),
            ("full", args.backups + 1, args.archive_objects, m["full_ms"]),
        )
    ]
    print_table("dcos backup show through the Admin Router (HTTPS, token), S3 (moto)", rows, list(rows[0]))
    inner = m["interleaved"]
    inner_rows = [
        {"bucket": name, "median ms": statistics.median(inner[name]), "p95 ms": percentile(inner[name], 0.95)}
        for name in ("empty", "full")
    ]
    print_table(
        "the catalog's part of a show (Storage.iter_records(id)), buckets alternating",
        inner_rows,
        ["bucket", "median ms", "p95 ms"],
    )
    print_table(f"GET /list of {args.backups + 1:,} backups", m["lists"], list(m["lists"][0]))
    ratio = full_median / empty_median
    answered = [r["list s"] for r in m["lists"] if isinstance(r["backups listed"], int)]
    best_list = min(answered) if answered else float("nan")
    old_seconds, objects = m["old"]
    print(f"\nshow full/empty: {ratio:.2f} (target <= {RATIO_TARGET})")
    print(f"show median, full bucket: {full_median:.1f} ms (target <= {SHOW_TARGET_MS} ms)")
    inner_ratio = inner_rows[1]["median ms"] / inner_rows[0]["median ms"]
    print(f"the catalog's part, full/empty, alternating: {inner_ratio:.2f}")
    print(f"list: {best_list:.1f}s at best (target <= {LIST_TARGET_S}s)")
    print(f"dcos backup list: {m['cli']['table']:.1f}s as a table, {m['cli']['--json']:.1f}s with --json")
    print(
        f"the same list read in the bench's process, none read before (Storage.list_records): {m['in_process'][1]:.1f}s"
    )
    print(f"before this change every show and list first listed all {objects:,} objects: {old_seconds:.1f}s here")
    print(f"filling the bucket: {m['fill_s']['records']:.0f}s records, {m['fill_s']['archive']:.0f}s archive objects")
    print(f"load average: {os.getloadavg()[1]:.1f} (5 min) on {os.cpu_count()} cores")
    write_result(
        "catalog",
        {
            "args": vars(args),
            "show": rows,
            "show_ratio": ratio,
            "catalog_show": inner_rows,
            "catalog_show_ratio": inner_rows[1]["median ms"] / inner_rows[0]["median ms"],
            "lists": m["lists"],
            "list_best_s": best_list,
            "cli_list_s": m["cli"],
            "list_in_process_s": m["in_process"][1],
            "old_full_listing": {"seconds": old_seconds, "objects": objects},
            "fill_s": m["fill_s"],
            "targets": {"show_ms": SHOW_TARGET_MS, "ratio": RATIO_TARGET, "list_s": LIST_TARGET_S},
            "load_average_5min": os.getloadavg()[1],
        },
    )


if __name__ == "__main__":
    main()
