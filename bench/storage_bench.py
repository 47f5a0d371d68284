"""Backup and restore to S3 against the local directory, and with encryption against without, side by side.

    python bench/storage_bench.py [--znodes 100000] [--rounds 3] [--rss-znodes 50000,200000] [--subnet 127.54.0]

Seeds a private 1-master cluster with --znodes znodes of 1 KiB (half random bytes, so archives stay big)
and starts moto's S3 server on its loopback, then backs the tree up and restores it (the archive verified
by sha256, read back, applied onto the unchanged tree) per storage, each in a process of its own: the
local directory, the local directory encrypted (AES-256-GCM), S3, S3 encrypted; --rounds times, the
order rotating each round. Each figure is the median of its rounds (a shared machine makes single runs
swing both ways). Ratios: S3 / local throughput (goal >= 0.8 on loopback) and the encryption's share of
backup time (goal <= 10 %; also as the backup process's CPU time, which load inflates less). Then the
peak RSS of a backup uploading to S3 at each size of --rss-znodes (goal < 300 MB, flat in tree size).
Prints a table and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from kazoo.security import OPEN_ACL_UNSAFE

from _common import bench_cluster, measured_command, print_table, write_result
from dcos_backup.local import s3
from dcos_backup.logical import ZNode, apply_tree
from dcos_backup.storage.crypto import create_key_file

ONCE = str(Path(__file__).parent / "_storage_once.py")
S3_GOAL, ENCRYPTION_GOAL, RSS_GOAL = 0.8, 0.10, 300


def seed(hosts: str, root: str, znodes: int) -> None:
    acl = tuple(OPEN_ACL_UNSAFE)
    nodes = [ZNode(root, b"", acl)]
    nodes += [ZNode(f"{root}/n{i:07d}", os.urandom(512) + b"x" * 512, acl) for i in range(znodes)]
    apply_tree(hosts, root, nodes)


def run_once(mode: str, hosts: str, root: str, location: str, endpoint: str, key: str, backup_id: str, *rest: str):
    return measured_command([sys.executable, ONCE, mode, hosts, root, location, endpoint, key, backup_id, *rest])


def backup_and_restore(hosts: str, name: str, location: str, endpoint: str, key: str, round_: int) -> dict:
    backup_id = f"bench-{uuid.uuid4()}"
    secs, out = run_once("backup", hosts, "/bench", location, endpoint, key, backup_id)
    rsecs, rout = run_once("restore", hosts, "/bench", location, endpoint, key, backup_id, out["sha256"])
    print(f"round {round_} {name}: backup {secs:.2f}s, restore {rsecs:.2f}s", flush=True)
    return {
        "round": round_,
        "storage": name,
        "znodes": out["nodes"],
        "archive MB": out["archive_bytes"] / 1e6,
        "backup s": secs,
        "restore s": rsecs,
        "backup CPU s": out["cpu_s"],
        "restore CPU s": rout["cpu_s"],
        "backup RSS MB": out["peak_rss_mb"],
        "restore RSS MB": rout["peak_rss_mb"],
    }


def medians(rows: list[dict]) -> list[dict]:
    """One row per storage: the median of each figure over the rounds."""
    names = list(dict.fromkeys(r["storage"] for r in rows))
    figures = ["znodes", "archive MB", "backup s", "restore s", "backup CPU s", "restore CPU s"]
    figures += ["backup RSS MB", "restore RSS MB"]
    return [
        {"storage": n, **{f: statistics.median(r[f] for r in rows if r["storage"] == n) for f in figures}}
        for n in names
    ]


def measure(args: argparse.Namespace, work: Path) -> tuple[list[dict], list[dict]]:
    key_file = work / "bench.key"
    create_key_file(key_file)
    rows, rss_rows = [], []
    with bench_cluster(1, subnet=args.subnet, heap="2g") as cluster:
        host = cluster.masters[0].member.host
        endpoint = s3.endpoint_url(host)
        moto = subprocess.Popen(s3.moto_command(host), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.environ.update(s3.CREDENTIALS)
        try:
            while moto.poll() is None and not s3.create_bucket(endpoint, "bench"):
                time.sleep(0.2)
            seed(cluster.zk_hosts, "/bench", args.znodes)
            stores = {
                "local": (str(work / "catalog"), "-", "-"),
                "local encrypted": (str(work / "catalog"), "-", str(key_file)),
                "s3": ("s3://bench/catalog", endpoint, "-"),
                "s3 encrypted": ("s3://bench/catalog", endpoint, str(key_file)),
            }
            names = list(stores)
            for i in range(args.rounds):
                for name in names[i % len(names) :] + names[: i % len(names)]:
                    rows.append(backup_and_restore(cluster.zk_hosts, name, *stores[name], i + 1))
            for size in args.rss_znodes:
                root = f"/rss{size}"
                seed(cluster.zk_hosts, root, size)
                secs, out = run_once(
                    "backup", cluster.zk_hosts, root, "s3://bench/rss", endpoint, "-", f"rss-{uuid.uuid4()}"
                )
                rss_rows.append({"znodes": out["nodes"], "backup s": secs, "peak RSS MB": out["peak_rss_mb"]})
                print(f"rss at {size}: {out['peak_rss_mb']} MB", flush=True)
        finally:
            moto.terminate()
            moto.wait(timeout=30)
    return rows, rss_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--znodes", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rss-znodes", default="50000,200000")
    parser.add_argument("--subnet", default="127.54.0", help="loopback /24 of the private cluster")
    args = parser.parse_args()
    args.rss_znodes = [int(n) for n in args.rss_znodes.split(",") if n]
    work = Path(tempfile.mkdtemp(prefix="storage-bench-"))
    try:
        rows, rss_rows = measure(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = medians(rows)
    by = {r["storage"]: r for r in summary}
    ratios = {
        "s3_vs_local_backup_throughput": by["local"]["backup s"] / by["s3"]["backup s"],
        "s3_vs_local_restore_throughput": by["local"]["restore s"] / by["s3"]["restore s"],
        "encryption_overhead_local": by["local encrypted"]["backup s"] / by["local"]["backup s"] - 1,
        "encryption_overhead_s3": by["s3 encrypted"]["backup s"] / by["s3"]["backup s"] - 1,
        "encryption_cpu_overhead_local": by["local encrypted"]["backup CPU s"] / by["local"]["backup CPU s"] - 1,
        "encryption_cpu_overhead_s3": by["s3 encrypted"]["backup CPU s"] / by["s3"]["backup CPU s"] - 1,
    }
    columns = ["storage", "znodes", "archive MB", "backup s", "restore s", "backup CPU s", "restore CPU s"]
    columns += ["backup RSS MB", "restore RSS MB"]
    print_table("backup and restore per storage (each one round)", rows, ["round", *columns])
    print_table(f"medians of {args.rounds} rounds", summary, columns)
    if rss_rows:
        print_table("peak RSS of a backup uploading to S3", rss_rows, ["znodes", "backup s", "peak RSS MB"])
    print()
    for name, value in ratios.items():
        print(f"{name}: {value:.2f}")
    print(f"goals: S3 >= {S3_GOAL} x local, encryption <= {ENCRYPTION_GOAL:.0%} of backup time, RSS < {RSS_GOAL} MB")
    print(f"load average during the run: {os.getloadavg()[1]:.1f} (5 min) on {os.cpu_count()} cores")
    write_result("storage", {"args": vars(args), "rows": rows, "medians": summary, "rss": rss_rows, "ratios": ratios})


if __name__ == "__main__":
    main()
