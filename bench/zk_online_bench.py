"""Online vs offline ZooKeeper backup, and what an online backup costs the clients, on the same data.

    python bench/zk_online_bench.py [--apps 10000] [--rate 300] [--subnet 127.30.0]

Starts a private 3-master cluster, seeds Marathon state, then on master 2:

1. client write latency (p50/p99) under a steady load with no backup running (baseline);
2. the same load while ``dcos-zk backup --online`` runs (latency over exactly the backup's duration);
3. ``dcos-zk backup`` offline (the seed's way: stop master 2, back up, start it), and ``tar czf`` of the
   same directory for reference.

Prints a table and the ratios, writes JSON to bench/results/. Failed client requests are counted: the
target is zero, and no member leaving ``serving``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import httpx

from _common import BIN, bench_cluster, dir_size, print_table, timed_command, write_result
from dcos_backup.local import cluster as local_cluster
from dcos_backup.logical import connect
from dcos_backup.testing.load import LoadGenerator, LoadReport
from dcos_backup.testing.seed import seed_marathon


def run_load(hosts: str, rate: float, seed: int, during: threading.Thread | None, seconds: float) -> LoadReport:
    """Load for ``seconds`` or, with ``during``, exactly while that thread runs (started after a warm-up)."""
    load = LoadGenerator(hosts, root=f"/bench-load-{seed}", rate=rate, seed=seed)
    load.start()
    time.sleep(1.0)  # warm-up: connection, first requests
    warm = len(load.acknowledged())
    if during is None:
        time.sleep(seconds)
    else:
        during.start()
        during.join()
    report = load.stop()
    report.ops = report.ops[warm:]
    return report


def watch_serving(cluster, stop: threading.Event, bad: list) -> None:
    urls = [f"{m.member.exhibitor_url}/exhibitor/v1/cluster/status" for m in cluster.masters]
    while not stop.is_set():
        for url in urls:
            try:
                bad += [s for s in httpx.get(url, timeout=2).json() if s["description"] != "serving"]
            except httpx.HTTPError as e:
                bad.append(repr(e))
        stop.wait(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apps", type=int, default=10000)
    parser.add_argument("--rate", type=float, default=300.0, help="client writes per second during the test")
    parser.add_argument("--subnet", default="127.30.0", help="loopback subnet of the cluster")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="zk-online-bench-"))
    with bench_cluster(3, args.subnet, heap="2g") as cluster:
        client = connect(cluster.zk_hosts, timeout=60)
        print(f"seeding {args.apps} apps ...", flush=True)
        stats = seed_marathon(client, apps=args.apps, seed=1)
        client.stop()
        layout = cluster.master(2).layout
        ex = layout.exhibitor_dir
        data = dir_size(layout.zk_dir)
        print(f"{stats.nodes:,} znodes; master 2 data directory: {data / 1e6:,.0f} MB", flush=True)

        timing: dict[str, float] = {}

        def online_backup() -> None:
            started = time.perf_counter()
            cmd = [str(BIN / "dcos-zk"), "backup", str(work / "online.tgz"), "--online", "--exhibitor-dir", str(ex)]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            timing["online"] = time.perf_counter() - started

        stop, bad = threading.Event(), []
        watcher = threading.Thread(target=watch_serving, args=(cluster, stop, bad), daemon=True)
        watcher.start()
        during = run_load(cluster.zk_hosts, args.rate, 2, threading.Thread(target=online_backup), 0)
        stop.set()
        watcher.join()
        baseline = run_load(cluster.zk_hosts, args.rate, 1, None, timing["online"])

        local_cluster.stop_master(cluster, 2)
        offline, _ = timed_command([str(BIN / "dcos-zk"), "backup", str(work / "offline.tgz"), f"--exhibitor-dir={ex}"])
        excludes = ["--exclude=myid", "--exclude=zookeeper.out"]
        tar, _ = timed_command(["tar", "czf", str(work / "tar.tgz"), "-C", str(ex), *excludes, "zookeeper"])
        local_cluster.start_master(cluster, 2, wait=True)
        sizes = {name: (work / f"{name}.tgz").stat().st_size for name in ("online", "offline", "tar")}
    shutil.rmtree(work, ignore_errors=True)

    def load_row(name: str, report: LoadReport, seconds: float) -> dict:
        return {
            "case": name,
            "seconds": seconds,
            "writes": len(report.ops),
            "failed": len(report.failures),
            "p50 ms": report.percentile(50) * 1000,
            "p99 ms": report.percentile(99) * 1000,
        }

    rows = [
        load_row("clients, no backup", baseline, timing["online"]),
        load_row("clients during --online", during, timing["online"]),
        {"case": "dcos-zk backup --online", "seconds": timing["online"], "archive MB": sizes["online"] / 1e6},
        {"case": "dcos-zk backup (stopped)", "seconds": offline, "archive MB": sizes["offline"] / 1e6},
        {"case": "tar czf (stopped)", "seconds": tar, "archive MB": sizes["tar"] / 1e6},
    ]
    print_table(
        f"online backup of master 2 under {args.rate:.0f} writes/s",
        rows,
        ["case", "seconds", "writes", "failed", "p50 ms", "p99 ms", "archive MB"],
    )
    ratios = {
        "online_vs_offline_time": timing["online"] / offline,
        "p50_during_vs_baseline": during.percentile(50) / baseline.percentile(50),
        "p99_during_vs_baseline": during.percentile(99) / baseline.percentile(99),
    }
    print(f"\nonline backup takes {ratios['online_vs_offline_time']:.2f} x the offline one (and no member stops)")
    print(
        f"client latency during it: p50 {ratios['p50_during_vs_baseline']:.2f} x, "
        f"p99 {ratios['p99_during_vs_baseline']:.2f} x the baseline; "
        f"{len(during.failures)} failed requests; {len(bad)} non-serving observations"
    )
    write_result(
        "zk_online",
        {"znodes": stats.nodes, "data_dir_bytes": data, "rows": rows, "ratios": ratios, "non_serving": len(bad)},
    )


if __name__ == "__main__":
    main()
