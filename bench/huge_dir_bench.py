"""Huge directories: one directory of 200,000 children against a tree of the same znodes, read and restored.

    python bench/huge_dir_bench.py [--children 200000] [--data 64] [--subnet 127.32.0]

A directory's child list comes back in one reply (9 MB for 200,000 40-byte names, far past ZooKeeper's
1 MiB jute.maxbuffer, which the server applies only to what it reads). Both shapes hold the same znodes
(40-byte names, ``--data`` bytes each): ``/huge`` as one directory, ``/tree`` as about sqrt(N)
directories of about sqrt(N) children. For each: the engine backup (read + archive), the read alone (best
of 2) and the restore into the emptied subtree (then verified equal), each in its own process for its peak
RSS. Prints a table and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from kazoo.security import OPEN_ACL_UNSAFE

from _common import bench_cluster, measured_command, print_table, write_result
from dcos_backup.catalog.archive import read_archive
from dcos_backup.logical import ZkSpec, ZNode, apply_tree, compare_tree

HERE = Path(__file__).parent
OPEN = tuple(OPEN_ACL_UNSAFE)


def name(i: int) -> str:
    return f"{i:040d}"  # 40 bytes, as in issue 14's example


def one_directory(children: int, data: bytes) -> list[ZNode]:
    return [ZNode("/huge", b"", OPEN), *(ZNode(f"/huge/{name(i)}", data, OPEN) for i in range(children))]


def balanced_tree(children: int, data: bytes) -> list[ZNode]:
    """The same number of leaves with the same names and data, under about sqrt(N) directories."""
    per_dir = math.isqrt(children) or 1
    nodes = [ZNode("/tree", b"", OPEN)]
    for start in range(0, children, per_dir):
        directory = f"/tree/{name(start)}"
        nodes.append(ZNode(directory, b"", OPEN))
        nodes.extend(ZNode(f"{directory}/{name(i)}", data, OPEN) for i in range(start, min(start + per_dir, children)))
    return nodes


def measure(spec: ZkSpec, hosts: str, root: str, nodes: list[ZNode], work: Path) -> list[dict]:
    apply_tree(spec, root, nodes)
    del nodes  # what the readers and the restore hold is theirs alone
    archive = work / f"{root.strip('/')}.dcosbkp"
    secs, read = measured_command([sys.executable, str(HERE / "_read_once.py"), hosts, root, str(archive)])
    count = read["nodes"]
    alone = [measured_command([sys.executable, str(HERE / "_read_once.py"), hosts, root, "-"]) for _ in range(2)]
    apply_tree(spec, root, [])
    restore_secs, restore = measured_command(
        [sys.executable, str(HERE / "_restore_once.py"), hosts, root, str(archive)]
    )
    with open(archive, "rb") as raw:
        difference = compare_tree(spec, root, read_archive(raw))
    assert difference is None, difference
    apply_tree(spec, root, [])
    return [
        {"what": f"{root}: engine backup (read + archive)", "znodes": count, "seconds": secs,
         "znodes/s": count / secs, "peak RSS MB": read["peak_rss_mb"]},
        {"what": f"{root}: engine read alone (best of 2)", "znodes": count, "seconds": min(a[0] for a in alone),
         "znodes/s": count / min(a[0] for a in alone), "peak RSS MB": max(a[1]["peak_rss_mb"] for a in alone)},
        {"what": f"{root}: restore into the emptied subtree (verified)", "znodes": count, "seconds": restore_secs,
         "znodes/s": count / restore_secs, "peak RSS MB": restore["peak_rss_mb"]},
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--children", type=int, default=200_000)
    parser.add_argument("--data", type=int, default=64, help="bytes of data per znode")
    parser.add_argument("--subnet", default="127.32.0", help="loopback /24 of the private cluster")
    args = parser.parse_args()
    data = b"d" * args.data
    work = Path(tempfile.mkdtemp(prefix="huge-dir-bench-"))
    rows: list[dict] = []
    try:
        with bench_cluster(3, subnet=args.subnet, heap="2g") as cluster:
            spec = ZkSpec.parse(cluster.zk_hosts, session_timeout=60)
            for root, build in (("/tree", balanced_tree), ("/huge", one_directory)):
                print(f"{root}: {args.children:,} leaves ...", flush=True)
                rows += measure(spec, cluster.zk_hosts, root, build(args.children, data), work)
                for row in rows[-3:]:
                    print("  ".join(f"{k}={v:,.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_table(
        f"huge directory ({args.children:,} children, 40-byte names, {args.data}-byte data) vs a balanced tree",
        rows,
        ["what", "znodes", "seconds", "znodes/s", "peak RSS MB"],
    )
    ratios = {
        "read_huge_vs_tree": rows[4]["znodes/s"] / rows[1]["znodes/s"],
        "restore_huge_vs_tree": rows[5]["znodes/s"] / rows[2]["znodes/s"],
        "read_rss_huge_minus_tree_mb": rows[4]["peak RSS MB"] - rows[1]["peak RSS MB"],
    }
    for key, value in ratios.items():
        print(f"{key:32s} {value:8.2f}")
    write_result("huge_dir", {"children": args.children, "data_bytes": args.data, "rows": rows, "ratios": ratios})


if __name__ == "__main__":
    main()
