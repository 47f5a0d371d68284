"""A backup through the front door against the engine's read of the same tree alone, side by side, one run.

    python bench/front_door_bench.py [--children 50000] [--rounds 5] [--subnet 127.32.0]

Seeds a private 3-master cluster with one wide directory (``/marathon/wide``: --children znodes of 200
bytes each), then, --rounds times, one after the other on the same tree:

- the engine's read alone: ``iter_tree`` over /marathon in this process, nothing else (the floor), once
  before and once after the two below: the round's figure is the mean of the two, so that the machine's
  load drifting during a round weighs on both sides alike;
- the engine's backup in a process of its own: read + archive, what the service does with the tree;
- ``dcos backup create --wait`` as an operator runs it after ``eval "$(dcos-local env 1)"``: a new
  process, HTTPS through master 1's Admin Router to the service's socket, polling until STATUS_READY.

Prints a table, the ratio of the front door to the engine's read (the median of the rounds' ratios is the
figure: each round pairs the two on the same moment's machine; best against best is shown too; target
<= 1.25) and the machine's load average (a shared machine makes single rounds swing both ways), and
writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from kazoo.security import OPEN_ACL_UNSAFE

from _common import BIN, bench_cluster, dcos_env, print_table, timed_command, write_result
from dcos_backup.logical import ZkSpec, ZNode, apply_tree, iter_tree

TARGET = 1.25


def seed_wide(hosts: str, children: int) -> None:
    acl = tuple(OPEN_ACL_UNSAFE)
    nodes = [ZNode("/marathon", b"", acl), ZNode("/marathon/wide", b"", acl)]
    nodes += [ZNode(f"/marathon/wide/n{i:06d}", b"x" * 200, acl) for i in range(children)]
    apply_tree(hosts, "/marathon", nodes)


def engine_read(spec: ZkSpec) -> tuple[float, int]:
    started = time.perf_counter()
    nodes = sum(1 for _ in iter_tree(spec, "/marathon"))
    return time.perf_counter() - started, nodes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--children", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--subnet", default="127.32.0", help="loopback /24 of the private cluster")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="front-door-bench-"))
    try:
        rounds = measure(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(args, rounds)


def measure(args: argparse.Namespace, work: Path) -> list[dict]:
    """The rounds: engine read, engine backup, the front door, engine read again, on one cluster."""
    rounds = []
    with bench_cluster(3, subnet=args.subnet, heap="2g") as cluster:
        seed_wide(cluster.zk_hosts, args.children)
        spec = ZkSpec.parse(cluster.zk_hosts, session_timeout=60)
        env = dcos_env(cluster.dir)
        engine_read(spec)  # warm the servers' caches once, for every contender alike
        for i in range(args.rounds):
            read_before, nodes = engine_read(spec)
            archived, rss = timed_command(
                [
                    sys.executable,
                    str(Path(__file__).parent / "_read_once.py"),
                    cluster.zk_hosts,
                    "/marathon",
                    str(work / f"engine-{i}.dcosbkp"),
                ]
            )
            front, _ = timed_command([str(BIN / "dcos"), "backup", "create", f"--label=bench-{i}", "--wait"], env=env)
            read = (read_before + engine_read(spec)[0]) / 2
            rounds.append(
                {
                    "round": i + 1,
                    "znodes": nodes,
                    "engine read s": read,
                    "engine backup s": archived,
                    "front door s": front,
                    "ratio": front / read,
                    "engine backup peak RSS MB": rss,
                }
            )
            print(
                f"round {i + 1}: read {read:.2f}s, engine backup {archived:.2f}s, front door {front:.2f}s, "
                f"ratio {front / read:.2f}",
                flush=True,
            )
    return rounds


def report(args: argparse.Namespace, rounds: list[dict]) -> None:
    columns = ["round", "znodes", "engine read s", "engine backup s", "front door s", "ratio"]
    print_table("dcos backup create --wait (front door) vs the engine's read alone", rounds, columns)
    median_ratio = statistics.median(r["ratio"] for r in rounds)
    best_ratio = min(r["front door s"] for r in rounds) / min(r["engine read s"] for r in rounds)
    znodes = rounds[0]["znodes"]
    load = os.getloadavg()
    print(f"\nfront door / engine read: median {median_ratio:.2f}, best vs best {best_ratio:.2f} (target <= {TARGET})")
    print(f"load average during the run: {load[1]:.1f} (5 min) on {os.cpu_count()} cores")
    print(
        f"front door: {znodes / min(r['front door s'] for r in rounds):,.0f} znodes/s at best, "
        f"engine read {znodes / min(r['engine read s'] for r in rounds):,.0f} znodes/s"
    )
    write_result(
        "front_door",
        {
            "children": args.children,
            "rounds": rounds,
            "ratio_median": median_ratio,
            "ratio_best": best_ratio,
            "target": TARGET,
            "load_average_5min": load[1],
        },
    )


if __name__ == "__main__":
    main()
