"""dcos-zk backup/restore against tar czf / tar xzf on the same ZooKeeper data directory, one run.

    python bench/zk_physical_bench.py [--apps 40000]

Starts a private 3-master cluster, seeds Marathon state (40,000 apps is over 200 MB of ZooKeeper data:
snapshots plus transaction logs), stops master 2 as the seed's procedure says, then times each tool
on master 2's data directory (best of --repeat runs) and prints the ratios (target: ours <= 1.2 x tar).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import BIN, bench_cluster, dir_size, print_table, timed_command, write_result
from dcos_backup.testing.seed import seed_marathon
from dcos_backup.zk import connect


def best(runs: int, make_command) -> tuple[float, int]:
    results = [timed_command(*make_command(i)) for i in range(runs)]
    return min(r[0] for r in results), max(r[1] for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apps", type=int, default=40000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="zk-physical-bench-"))
    with bench_cluster(3, heap="2g") as cluster:
        client = connect(cluster.zk_hosts, timeout=60)  # big multis during log rolls can stall a while
        print(f"seeding {args.apps} apps ...", flush=True)
        stats = seed_marathon(client, apps=args.apps, seed=1)
        client.sync("/marathon")
        client.stop()
        cluster.stop_master(2)
        layout = cluster.master(2).layout
        ex, zk_dir = layout.exhibitor_dir, layout.zk_dir
        data = dir_size(zk_dir)
        print(f"{stats.nodes:,} znodes; master 2 data directory: {data / 1e6:,.0f} MB")

        tar_c = best(
            args.repeat,
            lambda i: (
                [
                    "tar",
                    "czf",
                    str(work / f"tar-{i}.tgz"),
                    "-C",
                    str(ex),
                    "--exclude=myid",
                    "--exclude=zookeeper.out",
                    "zookeeper",
                ],
            ),
        )
        # Like for like with tar (which checks nothing): --no-verify; then the default, which also replays
        # the whole archive (checksums, zxid sequence, tree digests) before naming it.
        ours_c = best(
            args.repeat,
            lambda i: (
                [str(BIN / "dcos-zk"), "backup", str(work / f"ours-{i}.tgz"), "--no-verify", f"--exhibitor-dir={ex}"],
            ),
        )
        ours_cv = best(
            1, lambda i: ([str(BIN / "dcos-zk"), "backup", str(work / f"verified-{i}.tgz"), f"--exhibitor-dir={ex}"],)
        )
        verify = best(1, lambda i: ([str(BIN / "dcos-zk"), "verify", str(work / "verified-0.tgz")],))

        def fresh_target(i: int) -> Path:
            target = work / f"x-{i}"
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()
            return target

        tar_x = best(args.repeat, lambda i: (["tar", "xzf", str(work / "tar-0.tgz"), "-C", str(fresh_target(i))],))
        ours_x = best(
            args.repeat,
            lambda i: ([str(BIN / "dcos-zk"), "restore", str(work / "ours-0.tgz"), "--exhibitor-dir", str(ex)],),
        )
        sizes = {"tar": (work / "tar-0.tgz").stat().st_size, "ours": (work / "ours-0.tgz").stat().st_size}
    shutil.rmtree(work, ignore_errors=True)
    times = {"tar_c": tar_c, "ours_c": ours_c, "ours_cv": ours_cv, "verify": verify, "tar_x": tar_x, "ours_x": ours_x}
    report(args.repeat, stats.nodes, data, times, sizes)


def report(repeat: int, znodes: int, data: int, times: dict[str, tuple[float, int]], sizes: dict[str, int]) -> None:
    """The table, the ratios against tar, and the JSON result."""
    tar_c, ours_c, ours_cv, verify = times["tar_c"], times["ours_c"], times["ours_cv"], times["verify"]
    tar_x, ours_x = times["tar_x"], times["ours_x"]

    rows = [
        {
            "operation": "backup",
            "tool": "tar czf",
            "seconds": tar_c[0],
            "MB/s": data / 1e6 / tar_c[0],
            "archive MB": sizes["tar"] / 1e6,
        },
        {
            "operation": "backup",
            "tool": "dcos-zk backup --no-verify",
            "seconds": ours_c[0],
            "MB/s": data / 1e6 / ours_c[0],
            "archive MB": sizes["ours"] / 1e6,
        },
        {
            "operation": "backup",
            "tool": "dcos-zk backup (verified)",
            "seconds": ours_cv[0],
            "MB/s": data / 1e6 / ours_cv[0],
        },
        {"operation": "verify", "tool": "dcos-zk verify", "seconds": verify[0], "MB/s": data / 1e6 / verify[0]},
        {"operation": "restore", "tool": "tar xzf", "seconds": tar_x[0], "MB/s": data / 1e6 / tar_x[0]},
        {"operation": "restore", "tool": "dcos-zk restore", "seconds": ours_x[0], "MB/s": data / 1e6 / ours_x[0]},
    ]
    print_table(
        f"dcos-zk vs tar (best of {repeat})",
        rows,
        ["operation", "tool", "seconds", "MB/s", "archive MB"],
    )
    ratios = {
        "backup_time_vs_tar": ours_c[0] / tar_c[0],
        "verified_backup_time_vs_tar": ours_cv[0] / tar_c[0],
        "restore_time_vs_tar": ours_x[0] / tar_x[0],
    }
    print(f"\nbackup:  dcos-zk takes {ratios['backup_time_vs_tar']:.2f} x the time of tar czf (target <= 1.2)")
    print(f"         {ratios['verified_backup_time_vs_tar']:.2f} x with the full verification (the default)")
    print(
        f"restore: dcos-zk takes {ratios['restore_time_vs_tar']:.2f} x the time of tar xzf (target <= 1.2)"
        " - it also validates the whole archive first and fsyncs"
    )
    write_result("zk_physical", {"znodes": znodes, "data_dir_bytes": data, "rows": rows, "ratios": ratios})


if __name__ == "__main__":
    main()
