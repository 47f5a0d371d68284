"""dcos-zk backup/restore against tar czf / tar xzf on the same ZooKeeper data directory, one run.

    python bench/zk_physical_bench.py [--apps 40000]

Starts a private 3-master cluster, seeds Marathon state (40,000 apps is over 200 MB of ZooKeeper data:
snapshots plus transaction logs), stops master 2 as the seed's procedure says, then times each tool
on master 2's data directory, and ``dcos-zk backup --online`` of master 1 (serving, same data). The
tools run in turn, round after round (--repeat), so that a busy moment of a shared machine hits all of
them alike; the table shows medians. Targets: the verified backup <= 1.2 x ``tar czf``, ``--online``
<= 1.5 x the offline backup.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import statistics

from _common import BIN, bench_cluster, dir_size, print_table, timed_command, write_result
from dcos_backup.local import cluster as local_cluster
from dcos_backup.logical import connect
from dcos_backup.testing.seed import seed_marathon


def median_of(results: list[tuple[float, int]]) -> tuple[float, int]:
    return statistics.median(r[0] for r in results), max(r[1] for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apps", type=int, default=40000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--subnet", default="127.30.0", help="loopback subnet of the cluster")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="zk-physical-bench-"))
    with bench_cluster(3, args.subnet, heap="2g") as cluster:
        client = connect(cluster.zk_hosts, timeout=60)  # big multis during log rolls can stall a while
        print(f"seeding {args.apps} apps ...", flush=True)
        stats = seed_marathon(client, apps=args.apps, seed=1)
        client.sync("/marathon")
        client.stop()
        local_cluster.stop_master(cluster, 2)
        layout = cluster.master(2).layout
        ex, zk_dir = layout.exhibitor_dir, layout.zk_dir
        live = cluster.master(1).layout.exhibitor_dir
        data = dir_size(zk_dir)
        print(f"{stats.nodes:,} znodes; master 2 data directory: {data / 1e6:,.0f} MB")
        zk = str(BIN / "dcos-zk")
        excludes = ["--exclude=myid", "--exclude=zookeeper.out"]
        commands = {
            "tar_c": lambda i: ["tar", "czf", str(work / f"tar-{i}.tgz"), "-C", str(ex), *excludes, "zookeeper"],
            # Like for like with tar (which checks nothing), then the default, which checks while it writes.
            "ours_c": lambda i: [zk, "backup", str(work / f"ours-{i}.tgz"), "--no-verify", f"--exhibitor-dir={ex}"],
            "ours_cv": lambda i: [zk, "backup", str(work / f"verified-{i}.tgz"), f"--exhibitor-dir={ex}"],
            "online": lambda i: [zk, "backup", str(work / f"online-{i}.tgz"), "--online", f"--exhibitor-dir={live}"],
        }
        runs: dict[str, list[tuple[float, int]]] = {name: [] for name in commands}
        for i in range(args.repeat):
            for name, command in commands.items():
                runs[name].append(timed_command(command(i)))
            print(f"round {i + 1}: " + ", ".join(f"{n} {r[-1][0]:.2f}s" for n, r in runs.items()), flush=True)
        verify = median_of([timed_command([zk, "verify", str(work / "verified-0.tgz")])])

        def fresh_target(i: int) -> Path:
            target = work / f"x-{i}"
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()
            return target

        restores: dict[str, list[tuple[float, int]]] = {"tar_x": [], "ours_x": []}
        for i in range(args.repeat):
            restores["tar_x"].append(timed_command(["tar", "xzf", str(work / "tar-0.tgz"), "-C", str(fresh_target(i))]))
            restores["ours_x"].append(
                timed_command([zk, "restore", str(work / "ours-0.tgz"), "--exhibitor-dir", str(ex)])
            )
        sizes = {"tar": (work / "tar-0.tgz").stat().st_size, "ours": (work / "ours-0.tgz").stat().st_size}
    shutil.rmtree(work, ignore_errors=True)
    times = {name: median_of(r) for name, r in {**runs, **restores}.items()}
    times["verify"] = verify
    report(args.repeat, stats.nodes, data, times, sizes, runs)


def report(
    repeat: int,
    znodes: int,
    data: int,
    times: dict[str, tuple[float, int]],
    sizes: dict[str, int],
    runs: dict[str, list[tuple[float, int]]],
) -> None:
    """The table, the ratios against tar, and the JSON result."""
    tar_c, ours_c, ours_cv, verify = times["tar_c"], times["ours_c"], times["ours_cv"], times["verify"]
    tar_x, ours_x, online = times["tar_x"], times["ours_x"], times["online"]

    def row(operation: str, tool: str, t: tuple[float, int], archive: int | None = None) -> dict:
        return {"operation": operation, "tool": tool, "seconds": t[0], "MB/s": data / 1e6 / t[0], "archive MB": archive}

    rows = [
        row("backup", "tar czf", tar_c, sizes["tar"] // 1_000_000),
        row("backup", "dcos-zk backup --no-verify", ours_c, sizes["ours"] // 1_000_000),
        row("backup", "dcos-zk backup (verified while written)", ours_cv),
        row("backup", "dcos-zk backup --online (master 1, serving)", online),
        row("verify", "dcos-zk verify", verify),
        row("restore", "tar xzf", tar_x),
        row("restore", "dcos-zk restore", ours_x),
    ]
    print_table(
        f"dcos-zk vs tar (medians of {repeat} alternating rounds)",
        rows,
        ["operation", "tool", "seconds", "MB/s", "archive MB"],
    )
    ratios = {
        "backup_time_vs_tar": ours_c[0] / tar_c[0],
        "verified_backup_time_vs_tar": ours_cv[0] / tar_c[0],
        "online_vs_offline_backup": online[0] / ours_cv[0],
        "restore_time_vs_tar": ours_x[0] / tar_x[0],
    }
    print(f"\nbackup:  dcos-zk takes {ratios['backup_time_vs_tar']:.2f} x the time of tar czf (target <= 1.2)")
    print(f"         {ratios['verified_backup_time_vs_tar']:.2f} x verified while written (the default; <= 1.2)")
    print(f"         --online takes {ratios['online_vs_offline_backup']:.2f} x the offline backup (target <= 1.5)")
    print(
        f"restore: dcos-zk takes {ratios['restore_time_vs_tar']:.2f} x the time of tar xzf (target <= 1.2)"
        " - it also validates the whole archive as it extracts, and fsyncs"
    )
    write_result(
        "zk_physical",
        {
            "znodes": znodes,
            "data_dir_bytes": data,
            "rows": rows,
            "ratios": ratios,
            "runs": {k: [r[0] for r in v] for k, v in runs.items()},
        },
    )


if __name__ == "__main__":
    main()
