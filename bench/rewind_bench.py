"""Clients after a rewind: seconds from "every member serves" to "a client that had seen the newest zxid reads".

    python bench/rewind_bench.py [--apps 1000] [--rounds 3] [--no-zkcli]

Starts a private 3-master cluster archiving continuously (``--zk-archive``) with its backup service, seeds
Marathon state, notes a point (a write) and takes a plain archive of it (``dcos-zk backup --online``). Then,
for each round and each restore path (issue 25 item 3, issue 26 item 2):

- **archive restore**: every master stopped, ``dcos-zk restore ARCHIVE`` on each, started;
- **point-in-time restore**: the same with ``dcos-zk restore --repo REPO --to-zxid POINT``;
- **empty rebuild**: every master's snapshots and logs deleted (myid kept), started;

every client has first seen a write made after the point, then each is timed from "every member serves"
(``wait_serving``) to its first successful read: the project's client (``connect()``, with its RewindGuard),
a plain kazoo client (no guard), ZooKeeper's Java client (one ``zkCli.sh`` kept running across the rewind; a
session the restored ensemble does not know is reported expired, and it then connects afresh as a Java
application does) and the backup service's API (a request that needs its ZooKeeper session; after an empty
rebuild, whose user store is empty too, a 401 is that answer). Goal: <= 5 s.

Prints a table (the medians and the worst of the rounds) and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import bench_cluster, print_table, write_result
from dcos_backup.local.spec import Master
from dcos_backup.logical import connect
from dcos_backup.physical.continuous.repository import KEY_ENV
from dcos_backup.testing import fault_scenarios, rewind
from dcos_backup.testing.archiving import archived_to
from dcos_backup.testing.seed import seed_marathon
from dcos_backup.testing.tools import ok, run_tool, wait_for

dcos_zk = functools.partial(run_tool, "dcos-zk")
CLIENTS = ["connect()", "kazoo", "zkCli.sh", "service API"]


def restore_paths(repo: Path, archive: Path, point: int) -> dict[str, object]:
    def archive_restore(m: Master) -> None:
        ok(dcos_zk("restore", str(archive), "--exhibitor-dir", str(m.layout.exhibitor_dir)))

    def pitr(m: Master) -> None:
        ok(
            dcos_zk(
                "restore", "--repo", str(repo), "--to-zxid", hex(point), "--exhibitor-dir", str(m.layout.exhibitor_dir)
            )
        )

    return {"archive restore": archive_restore, "point-in-time restore": pitr, "empty rebuild": rewind.rebuild_empty}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-zkcli", action="store_true", help="leave ZooKeeper's Java client out")
    parser.add_argument("--subnet", default="127.31.0", help="loopback subnet of the cluster")
    args = parser.parse_args()
    logging.getLogger("kazoo").setLevel(logging.ERROR)  # not a line per refused reconnect while masters are down
    with_zkcli = not args.no_zkcli and rewind.zkcli_available()
    # The repository and archives go with the bench, however it ends (at 1M znodes they are gigabytes).
    with tempfile.TemporaryDirectory(prefix="rewind-bench-") as tmp:
        work = Path(tmp)
        repo = work / "repo"
        trials: list[dict] = []
        with bench_cluster(3, args.subnet, zk_archive=str(repo)) as cluster:
            os.environ[KEY_ENV] = str(cluster.files.repo_key)  # as dcos-local env exports it
            client = connect(cluster.zk_hosts, timeout=60)
            seed_marathon(client, apps=args.apps, seed=1)
            client.stop()
            client.close()
            point = rewind.create_probe(cluster)
            archive = work / "point.tar.gz"
            ok(
                dcos_zk(
                    "backup", str(archive), "--online", "--exhibitor-dir", str(cluster.master(1).layout.exhibitor_dir)
                )
            )
            for m in cluster.masters:
                wait_for(lambda m=m: archived_to(repo, f"master-{m.id}", point), timeout=120, what="the point archived")
            for round_ in range(args.rounds):
                paths = restore_paths(repo, archive, point)
                for path, restore_each in paths.items():
                    fault_scenarios.wait_service(cluster)
                    with rewind.watchers(cluster, with_zkcli, rewind.service_answers(cluster)) as w:
                        times = rewind.rewind(cluster, w, restore_each, path)  # type: ignore[arg-type]
                    trial = {
                        "round": round_ + 1,
                        "path": path,
                        "seen": hex(times.seen),
                        "first_write": hex(times.first_write),
                    }
                    trial.update(times.times, zkcli_expired=times.zkcli_expired)
                    print(trial, flush=True)
                    trials.append(trial)
                    if path == "empty rebuild" and round_ + 1 < args.rounds:
                        # The users went with the data: the archive back (untimed) before the next round logs in.
                        with rewind.watchers(cluster) as w:
                            rewind.rewind(cluster, w, paths["archive restore"], "reset")  # type: ignore[arg-type]
        rows = []
        for path in restore_paths(repo, archive, point):
            row: dict[str, object] = {"path": path}
            for name in CLIENTS:
                values = [t.get(name) for t in trials if t["path"] == path and name in t]
                if not values:
                    continue
                done = [v for v in values if v is not None]
                row[f"{name} median s"] = round(statistics.median(done), 2) if done else None
                row[f"{name} worst s"] = max(done) if len(done) == len(values) else "never"
            rows.append(row)
        columns = [
            "path",
            *(f"{n} {k} s" for n in CLIENTS for k in ("median", "worst") if any(f"{n} {k} s" in r for r in rows)),
        ]
        print_table(
            f"seconds from every member serving to the client reading again ({args.rounds} rounds)", rows, columns
        )
        write_result(
            "rewind_bench",
            {"apps": args.apps, "rounds": args.rounds, "zkcli": with_zkcli, "trials": trials, "rows": rows},
        )


if __name__ == "__main__":
    main()
