"""Point-in-time restore long after ZooKeeper's last snapshot, with and without ``dcos-zk archive compact``.

    python bench/zk_compact_bench.py [--apps 10000] [--writes 540000] [--every 50000] [--restores 3]

Starts a private 1-master cluster with ``--zk-archive`` and ``snapCount`` far above ``--writes`` (so
ZooKeeper takes no snapshot of its own during the run), seeds Marathon state, then writes ``--writes``
transactions as fast as the server takes them (``setData`` on 1,000 nodes of 200 bytes: 540,000 is an
hour of steady writes at 150/s, generated in minutes), waits for the archive to hold them, stops the
master and times, alternated and repeated:

1. **plain, as ZooKeeper left it**: ``dcos-zk restore`` of an archive of the latest point exported before
   compaction (ZooKeeper's snapshot and every write after it: what a ``dcos-zk backup`` holds; its
   restore replays the writes too, to check them);
2. **pitr**: ``dcos-zk restore --repo --latest`` (the newest snapshot is ZooKeeper's: every write replayed);
3. ``dcos-zk archive compact --every N`` (timed once), then **pitr, compacted**: the same restore, now from
   a compacted snapshot at most N transactions before the point, alternated with **plain, compacted**:
   an archive of the same point exported after compaction (a snapshot and at most N transactions: the
   plain restore of the same tree at its cheapest).

Goal (issue 29 item 3): pitr, compacted <= 1.5 x plain. Prints a table and the ratios, writes JSON to
bench/results/.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import BIN, bench_cluster, print_table, timed_command, write_result
from dcos_backup.local import cluster as local_cluster
from dcos_backup.logical import connect
from dcos_backup.physical.continuous.index import RepoIndex
from dcos_backup.physical.continuous.repository import KEY_ENV, Repository
from dcos_backup.storage.crypto import load_key
from dcos_backup.storage.locations import open_store
from dcos_backup.testing.seed import seed_marathon

WINDOW = 2000  # requests in flight


def write_backlog(cluster, writes: int) -> int:
    """``writes`` setData transactions as fast as the server acknowledges them; the last one's zxid."""
    client = connect(cluster.zk_hosts, timeout=60)
    try:
        client.ensure_path("/backlog")
        paths = [f"/backlog/n{i:04d}" for i in range(min(1000, writes))]
        for path in paths:
            client.create(path, b"x" * 200)
        done, last = len(paths), 0
        payload = os.urandom(100).hex().encode()
        while done < writes:
            batch = [
                client.set_async(paths[(done + i) % len(paths)], payload) for i in range(min(WINDOW, writes - done))
            ]
            last = max(last, *(r.get(timeout=120).mzxid for r in batch))
            done += len(batch)
        return last
    finally:
        client.stop()
        client.close()


def archived_to(repo: Repository, zxid: int) -> bool:
    return any(r.last >= zxid for r in RepoIndex(repo, "master-1").ranges())


def replayed(repo: Path, key: Path) -> int:
    """Transactions a restore of the latest point replays now (from the plan, as the restore makes it)."""
    from dcos_backup.physical.continuous import pitr
    from dcos_backup.physical.continuous.compact import transactions_between

    chosen = pitr.plan(Repository(open_store(str(repo)), load_key(key)), pitr.Target(latest=True), "master-1")
    return transactions_between(chosen.snapshot.zxid, chosen.zxid, chosen.segments)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apps", type=int, default=10000)
    parser.add_argument("--writes", type=int, default=540_000, help="transactions after ZooKeeper's last snapshot")
    parser.add_argument("--every", type=int, default=50_000, help="dcos-zk archive compact --every")
    parser.add_argument("--restores", type=int, default=3)
    parser.add_argument("--subnet", default="127.31.0", help="loopback subnet of the cluster")
    args = parser.parse_args()
    # The repository and archives go with the bench, however it ends (at 1M znodes they are gigabytes).
    with tempfile.TemporaryDirectory(prefix="zk-compact-bench-") as tmp:
        work = Path(tmp)
        repo_dir = work / "repo"
        snap_count = str(max(10 * args.writes, 1_000_000))
        with bench_cluster(
            1, args.subnet, heap="2g", zk_archive=str(repo_dir), zk_config=[("snapCount", snap_count)]
        ) as cluster:
            key = Path(cluster.files.repo_key)
            os.environ[KEY_ENV] = str(key)  # for the dcos-zk commands, as dcos-local env exports it
            client = connect(cluster.zk_hosts, timeout=60)
            print(f"seeding {args.apps} apps ...", flush=True)
            stats = seed_marathon(client, apps=args.apps, seed=1)
            client.stop()
            client.close()
            print(f"writing {args.writes:,} transactions ...", flush=True)
            started = time.monotonic()
            last = write_backlog(cluster, args.writes)
            write_s = time.monotonic() - started
            repo = Repository(open_store(str(repo_dir)), load_key(key))
            while not archived_to(repo, last):
                time.sleep(0.5)
            ex = str(cluster.master(1).layout.exhibitor_dir)
            local_cluster.stop_master(cluster, 1)
            exported = work / "latest.tar.gz"
            timed_command([str(BIN / "dcos-zk"), "export", "--repo", str(repo_dir), "--latest", str(exported)])
            plain = [str(BIN / "dcos-zk"), "restore", str(exported), "--exhibitor-dir", ex]
            pitr = [str(BIN / "dcos-zk"), "restore", "--repo", str(repo_dir), "--stream", "master-1", "--latest"]
            pitr += ["--exhibitor-dir", ex]
            times: dict[str, list[float]] = {"plain": [], "pitr": [], "pitr_compacted": []}
            before = replayed(repo_dir, key)
            for _ in range(args.restores):
                times["plain"].append(timed_command(plain)[0])
                times["pitr"].append(timed_command(pitr)[0])
            compact_s, compact_rss = timed_command(
                [str(BIN / "dcos-zk"), "archive", "compact", "--repo", str(repo_dir), "--every", str(args.every)]
            )
            after = replayed(repo_dir, key)
            small = work / "latest-compacted.tar.gz"
            timed_command([str(BIN / "dcos-zk"), "export", "--repo", str(repo_dir), "--latest", str(small)])
            times["plain_compacted"] = []
            for _ in range(args.restores):
                times["plain"].append(timed_command(plain)[0])
                times["plain_compacted"].append(timed_command([*plain[:2], str(small), *plain[3:]])[0])
                times["pitr_compacted"].append(timed_command(pitr)[0])
            # The restored master rejoins as the cluster's only member (nothing newer elsewhere).
            local_cluster.start_master(cluster, 1, wait=True, force=True)
        result = {
            "znodes": stats.nodes,
            "writes": args.writes,
            "write_s": write_s,
            "every": args.every,
            "replayed_before": before,
            "replayed_after": after,
            "compact_s": compact_s,
            "compact_peak_rss_mb": compact_rss,
            "archive_bytes": exported.stat().st_size,
            "compacted_archive_bytes": small.stat().st_size,
            "runs": times,
            **{f"{k}_s": statistics.median(v) for k, v in times.items()},
        }
        report(result)


def report(result: dict) -> None:
    plain = result["plain_s"]
    rows = [
        {"what": "dcos-zk restore (archive of the point)", "s": plain, "replayed": None, "x plain": 1.0},
        {
            "what": "dcos-zk restore --repo --latest",
            "s": result["pitr_s"],
            "replayed": result["replayed_before"],
            "x plain": result["pitr_s"] / plain,
        },
        {"what": f"dcos-zk archive compact --every {result['every']}", "s": result["compact_s"]},
        {
            "what": "dcos-zk restore (archive of the point, compacted)",
            "s": result["plain_compacted_s"],
            "x plain": result["plain_compacted_s"] / plain,
        },
        {
            "what": "dcos-zk restore --repo --latest, compacted",
            "s": result["pitr_compacted_s"],
            "replayed": result["replayed_after"],
            "x plain": result["pitr_compacted_s"] / plain,
        },
    ]
    print_table(
        f"point-in-time restore {result['writes']:,} transactions after ZooKeeper's last snapshot "
        f"({result['znodes']:,} znodes seeded)",
        rows,
        ["what", "s", "replayed", "x plain"],
    )
    ratio, small = result["pitr_compacted_s"] / plain, result["pitr_compacted_s"] / result["plain_compacted_s"]
    print(f"\npoint-in-time restore, compacted: {ratio:.2f} x a plain restore of ZooKeeper's files (goal <= 1.5)")
    print(f"point-in-time restore, compacted: {small:.2f} x a plain restore of the compacted point's archive")
    write_result("zk_compact", result)


if __name__ == "__main__":
    main()
