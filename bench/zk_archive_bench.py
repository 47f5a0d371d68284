"""Continuous archiving: how far behind it is, what it costs the clients, and point-in-time restore time.

    python bench/zk_archive_bench.py [--apps 10000] [--rate 150] [--seconds 30] [--rounds 2] [--restores 3]
                                     [--snap-count N] [--heap 2g]

Starts a private 3-master cluster with ``--zk-archive`` (every master's supervisor runs ``dcos-zk
archive``), seeds Marathon state, then:

1. **archive lag** under a steady load: for every acknowledged write, the seconds from its
   acknowledgement until its zxid is in the repository (a watcher lists the repository every 50 ms),
   in the first stream to have it and in all three (goal: p99 <= 2 s); with ``--snap-count N`` small
   enough, ZooKeeper writes snapshots of the whole tree during this run (counted), and the lag is measured
   while it does;
2. **client latency** with the archivers running vs frozen (SIGSTOP), in alternating rounds on the same
   cluster and data, medians of the rounds' p50/p99 (goal: p99 <= 1.2 x);
3. **point-in-time restore** of master 1 (``dcos-zk restore --repo --latest``) vs a plain ``dcos-zk
   restore`` of an archive of the same point (``dcos-zk export``), alternated, medians (goal <= 1.5 x).

Prints a table and the ratios, writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import bisect
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import BIN, bench_cluster, print_table, timed_command, write_result
from dcos_backup.local import cluster as local_cluster
from dcos_backup.logical import connect
from dcos_backup.master.processes import read_pid
from dcos_backup.physical.continuous.index import RepoIndex
from dcos_backup.physical.continuous.repository import KEY_ENV, Repository
from dcos_backup.physical.replay import snapshot_files
from dcos_backup.storage.crypto import load_key
from dcos_backup.storage.locations import open_store
from dcos_backup.testing.load import LoadGenerator, LoadReport
from dcos_backup.testing.seed import seed_marathon


class RepoWatcher:
    """Lists the repository every 50 ms and remembers when each stream first reached each zxid."""

    def __init__(self, repo: Path, key_file: Path) -> None:
        self.repo = Repository(open_store(str(repo)), load_key(key_file))
        self.seen: dict[str, list[tuple[int, float]]] = {}  # stream -> [(last zxid, when seen)], ascending
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            now = time.monotonic()
            index = RepoIndex(self.repo)
            for stream in index.streams():
                last = max((g.last_zxid or 0 for g in index.of_stream(stream)), default=0)
                marks = self.seen.setdefault(stream, [])
                if not marks or last > marks[-1][0]:
                    marks.append((last, now))

    def __enter__(self) -> RepoWatcher:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def when(self, stream: str, zxid: int) -> float | None:
        marks = self.seen.get(stream, [])
        i = bisect.bisect_left([z for z, _ in marks], zxid)
        return marks[i][1] if i < len(marks) else None


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    rank = (len(values) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (rank - low)


def newest_snapshots(cluster) -> dict[int, int]:
    """Each member's newest snapshot zxid (0 for none)."""
    return {m.id: max((zxid for zxid, _ in snapshot_files(m.layout)), default=0) for m in cluster.masters}


def snapshots_since(cluster, newest: dict[int, int]) -> int:
    """How many snapshots the members wrote after ``newest`` (by zxid: a purged older one does not count)."""
    return sum(zxid > newest[m.id] for m in cluster.masters for zxid, _ in snapshot_files(m.layout))


def measure_lag(cluster, repo: Path, rate: float, seconds: float) -> dict:
    snapshots_before = newest_snapshots(cluster)
    with RepoWatcher(repo, cluster.files.repo_key) as watcher:
        load = LoadGenerator(cluster.zk_hosts, root="/bench-lag", rate=rate, seed=1)
        acked: list[tuple[int, float]] = []
        load.start()
        deadline = time.monotonic() + seconds
        seen = 0
        while time.monotonic() < deadline:
            ops = load.acknowledged()
            now = time.monotonic()
            acked += [(op.zxid, now) for op in ops[seen:]]  # observed within 10 ms of the ack
            seen = len(ops)
            time.sleep(0.01)
        report = load.stop()
        time.sleep(3)  # let the archive catch up with the last writes
    streams = sorted(watcher.seen)
    first, everywhere = [], []
    for zxid, ack in acked:
        times = [watcher.when(s, zxid) for s in streams]
        if None in times or not times:
            continue
        first.append(max(0.0, min(times) - ack))  # type: ignore[type-var]
        everywhere.append(max(0.0, max(times) - ack))  # type: ignore[type-var]
    return {
        "zookeeper_snapshots_written": snapshots_since(cluster, snapshots_before),
        "writes": len(report.ops),
        "failed": len(report.failures),
        "measured": len(first),
        "first_stream_p50_s": percentile(first, 50),
        "first_stream_p99_s": percentile(first, 99),
        "all_streams_p50_s": percentile(everywhere, 50),
        "all_streams_p99_s": percentile(everywhere, 99),
    }


def archiver_pids(cluster) -> list[int]:
    return [pid for m in cluster.masters if (pid := read_pid(m.layout.archiver_pid_file))]


def measure_client_cost(cluster, rate: float, seconds: float, rounds: int) -> dict:
    runs: dict[str, list[LoadReport]] = {"archiving": [], "not archiving": []}
    for i in range(rounds):
        # ABBA order: neither case always runs first (right after the other's catch-up or warm-up).
        for case in ("archiving", "not archiving")[:: 1 if i % 2 == 0 else -1]:
            pids = archiver_pids(cluster)
            if case == "not archiving":
                for pid in pids:
                    os.kill(pid, signal.SIGSTOP)
            try:
                load = LoadGenerator(cluster.zk_hosts, root=f"/bench-cost-{i}-{case[0]}", rate=rate, seed=10 + i)
                load.start()
                time.sleep(1.0)  # warm-up
                warm = len(load.acknowledged())
                time.sleep(seconds)
                report = load.stop()
                report.ops = report.ops[warm:]
                runs[case].append(report)
            finally:
                for pid in pids:
                    os.kill(pid, signal.SIGCONT)
            time.sleep(3)  # thawed archivers catch up before the next round is measured
            p50, p99 = report.percentile(50) * 1e3, report.percentile(99) * 1e3
            print(f"round {i + 1} {case}: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    ratios = [
        a.percentile(99) / b.percentile(99) for a, b in zip(runs["archiving"], runs["not archiving"], strict=True)
    ]
    print(f"p99 ratio per round: {', '.join(f'{r:.2f}' for r in ratios)}")
    return {
        "p99_ratio_per_round": ratios,
        **{
            case: {
                "p50_ms": statistics.median(r.percentile(50) * 1000 for r in reports),
                "p99_ms": statistics.median(r.percentile(99) * 1000 for r in reports),
                "failed": sum(len(r.failures) for r in reports),
            }
            for case, reports in runs.items()
        },
    }


def measure_restores(cluster, repo: Path, work: Path, restores: int) -> dict:
    master = cluster.master(1)
    ex = str(master.layout.exhibitor_dir)
    local_cluster.stop_master(cluster, 1)
    exported = work / "latest.tar.gz"
    timed_command(
        [str(BIN / "dcos-zk"), "export", "--repo", str(repo), "--stream", "master-1", "--latest", str(exported)]
    )
    times: dict[str, list[float]] = {"plain": [], "pitr": []}
    for _ in range(restores):
        times["plain"].append(timed_command([str(BIN / "dcos-zk"), "restore", str(exported), "--exhibitor-dir", ex])[0])
        pitr = [str(BIN / "dcos-zk"), "restore", "--repo", str(repo), "--stream", "master-1", "--latest"]
        times["pitr"].append(timed_command([*pitr, "--exhibitor-dir", ex])[0])
    # Only the restores' times matter here: master 1 rejoins and takes the running members' data (their
    # zxids moved past the restored point), which the launcher refuses unless forced.
    local_cluster.start_master(cluster, 1, wait=True, force=True)
    return {
        "archive_bytes": exported.stat().st_size,
        "plain_s": statistics.median(times["plain"]),
        "pitr_s": statistics.median(times["pitr"]),
        "runs": times,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apps", type=int, default=10000)
    parser.add_argument("--rate", type=float, default=150.0)
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the lag run and of each round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--restores", type=int, default=3)
    parser.add_argument("--subnet", default="127.30.0", help="loopback subnet of the cluster")
    parser.add_argument("--snap-count", type=int, default=None, help="ZooKeeper's snapCount (default its own)")
    parser.add_argument("--heap", default="2g", help="each ZooKeeper member's heap (1M znodes need about 3g)")
    args = parser.parse_args()
    # The repository and archives go with the bench, however it ends (at 1M znodes they are gigabytes).
    with tempfile.TemporaryDirectory(prefix="zk-archive-bench-") as tmp:
        work = Path(tmp)
        repo = work / "repo"
        zk_config = [("snapCount", str(args.snap_count))] if args.snap_count else []
        with bench_cluster(3, args.subnet, heap=args.heap, zk_archive=str(repo), zk_config=zk_config) as cluster:
            os.environ[KEY_ENV] = str(cluster.files.repo_key)  # for the dcos-zk commands, as dcos-local env exports it
            client = connect(cluster.zk_hosts, timeout=60)
            print(f"seeding {args.apps} apps ...", flush=True)
            stats = seed_marathon(client, apps=args.apps, seed=1)
            client.stop()
            print("archive lag ...", flush=True)
            lag = measure_lag(cluster, repo, args.rate, args.seconds)
            print("client latency, archiving vs not ...", flush=True)
            cost = measure_client_cost(cluster, args.rate, args.seconds, args.rounds)
            print("restores ...", flush=True)
            restores = measure_restores(cluster, repo, work, args.restores)
        report(args, stats.nodes, lag, cost, restores)


def report(args: argparse.Namespace, znodes: int, lag: dict, cost: dict, restores: dict) -> None:
    rows = [
        {
            "what": "archive lag, first stream",
            "p50": lag["first_stream_p50_s"],
            "p99": lag["first_stream_p99_s"],
            "unit": "s",
        },
        {
            "what": "archive lag, all 3 streams",
            "p50": lag["all_streams_p50_s"],
            "p99": lag["all_streams_p99_s"],
            "unit": "s",
        },
        {
            "what": "client writes, archiving",
            "p50": cost["archiving"]["p50_ms"],
            "p99": cost["archiving"]["p99_ms"],
            "unit": "ms",
        },
        {
            "what": "client writes, not archiving",
            "p50": cost["not archiving"]["p50_ms"],
            "p99": cost["not archiving"]["p99_ms"],
            "unit": "ms",
        },
        {"what": "dcos-zk restore (archive of the point)", "p50": restores["plain_s"], "unit": "s"},
        {"what": "dcos-zk restore --repo --latest", "p50": restores["pitr_s"], "unit": "s"},
    ]
    print_table(
        f"continuous archiving under {args.rate:.0f} writes/s ({znodes:,} znodes seeded)",
        rows,
        ["what", "p50", "p99", "unit"],
    )
    ratios = {
        "lag_p99_s": lag["first_stream_p99_s"],
        "client_p99_archiving_vs_not": cost["archiving"]["p99_ms"] / cost["not archiving"]["p99_ms"],
        "pitr_restore_vs_plain": restores["pitr_s"] / restores["plain_s"],
    }
    print(
        f"\narchive lag p99 {ratios['lag_p99_s']:.2f} s (goal <= 2 s), while ZooKeeper wrote "
        f"{lag['zookeeper_snapshots_written']} snapshots (all members)"
    )
    print(f"client p99 with archiving {ratios['client_p99_archiving_vs_not']:.2f} x without (goal <= 1.2)")
    print(f"point-in-time restore {ratios['pitr_restore_vs_plain']:.2f} x a plain restore (goal <= 1.5)")
    write_result(
        "zk_archive",
        {
            "znodes": znodes,
            "rate": args.rate,
            "snap_count": args.snap_count,
            "lag": lag,
            "clients": cost,
            "restores": restores,
            "ratios": ratios,
        },
    )


if __name__ == "__main__":
    main()
