"""An app deleted a minute ago, restored online at a point before the deletion (issue 26 item 3).

    python bench/point_restore_bench.py [--apps 20000] [--rounds 1] [--snap-count N] [--subnet 127.53.0]

Starts a private 3-master cluster archiving continuously (``--zk-archive``), seeds Marathon-like state
(``--apps 20000``: about 110,000 znodes), then per round: notes a time T, deletes one app, writes
elsewhere, waits until every stream archived that, and restores the app at T through the service's core
in this process (``BackupService.restore_point``, what ``POST /restore`` with a ``point`` calls): its point
backup rebuilt from the archive (snapshot + segments replayed with the digest checks), then the usual
restore job (safety backup, difference, apply, verify). Timed: the whole (request to STATUS_READY; goal
<= 10 s), the point backup, the job's phases, and in a separate run of the rebuild alone its fetch and
replay (wall and this process's CPU seconds: on a shared machine the wall time says more about the
neighbours). ``--snap-count N`` sets ZooKeeper's snapCount: small, a snapshot is archived right after the
seeding and the rebuild loads it (the common case, and the one compacted snapshots give); by default
(ZooKeeper's 100,000) the seeding's transactions are all replayed from the first snapshot. Checks the app
is back byte for byte and the later write elsewhere stays. Prints a table and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import bench_cluster, print_table, write_result
from dcos_backup.catalog.models import Status
from dcos_backup.catalog.storage import LocalStorage
from dcos_backup.jobs.engine import ZkEngine
from dcos_backup.jobs.point import Point
from dcos_backup.jobs.service import BackupService
from dcos_backup.logical import connect
from dcos_backup.physical.continuous.index import RepoIndex
from dcos_backup.physical.continuous.repository import KEY_ENV
from dcos_backup.physical.continuous.state import state_at
from dcos_backup.testing.archiving import cluster_repository
from dcos_backup.testing.seed import seed_marathon
from dcos_backup.testing.trees import snapshot
from restore_bench import timed_phases


def archived_up_to(repo: Path, zxid: int) -> bool:
    index = RepoIndex(cluster_repository(repo))
    return len({r.stream for r in index.ranges() if r.last >= zxid}) >= 3


def wait_archived(repo: Path, zxid: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not archived_up_to(repo, zxid):
        if time.monotonic() > deadline:
            raise SystemExit(f"the archive did not reach {zxid:#x} in {timeout:g}s")
        time.sleep(0.1)


def one_round(service: BackupService, zk, repo: Path, app: str, round_no: int) -> dict[str, float]:
    before = snapshot(zk, app)
    moment = datetime.now(UTC)
    time.sleep(0.01)  # the deletion strictly after the point (transaction times are ms)
    zk.delete(app, recursive=True)
    zk.create(f"/bench-elsewhere/round-{round_no}", b"after the deletion", makepath=True)
    wait_archived(repo, zk.exists(f"/bench-elsewhere/round-{round_no}").czxid)
    point = Point(time=moment.isoformat())

    started = time.perf_counter()
    record, restore = service.restore_point(point, [app])
    built = time.perf_counter() - started

    def ended() -> bool:
        latest = service.get(record.id).latest_restore
        return latest is not None and latest.id == restore.id and latest.status != Status.RESTORING

    phases = timed_phases(service, record.id, ended)
    total = time.perf_counter() - started
    latest = service.get(record.id).latest_restore
    if latest is None or latest.status != Status.READY:
        raise SystemExit(f"restore failed: {latest.reason if latest else 'no restore'}")
    if snapshot(zk, app) != before or zk.get(f"/bench-elsewhere/round-{round_no}")[0] != b"after the deletion":
        raise SystemExit("the app did not come back as it was, or the later write is gone")

    cpu = time.process_time()
    with state_at(cluster_repository(repo), point.target()) as state:  # the rebuild alone, for its split
        info = state.info
    cpu = time.process_time() - cpu
    return {
        "point backup (rebuild + archive)": built,
        **{f"job: {name}": seconds for name, seconds in phases.items()},
        "total": total,
        "rebuild: fetch": info.fetch_seconds,
        "rebuild: replay": info.replay_seconds,
        "rebuild: CPU seconds (this process)": cpu,
        "load average (1 min) after": os.getloadavg()[0],
        "transactions replayed": float(info.transactions),
        "znodes at the point": float(info.nodes),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--snap-count", type=int, default=None, help="ZooKeeper's snapCount (default its own)")
    parser.add_argument("--subnet", default="127.53.0")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        zk_config = [("snapCount", str(args.snap_count))] if args.snap_count else []
        with bench_cluster(
            3, subnet=args.subnet, heap="2g", with_service=False, zk_archive=str(repo), zk_config=zk_config
        ) as cluster:
            os.environ[KEY_ENV] = str(cluster.files.repo_key)  # as dcos-local env exports it
            zk = connect(cluster.zk_hosts, timeout=60)
            print(f"seeding {args.apps} apps ...", flush=True)
            seeded = seed_marathon(zk, apps=args.apps, seed=1)
            apps = sorted(zk.get_children("/marathon/state/app"))
            engine = ZkEngine(cluster.zk_hosts)
            service = BackupService(
                LocalStorage(Path(tmp) / "catalog"),
                engine,
                keep_safety=1,
                zk_archive=lambda: cluster_repository(repo),
                scratch_dir=Path(tmp),
            )
            runs = []
            for round_no in range(args.rounds):
                app = f"/marathon/state/app/{apps[round_no * 7 % len(apps)]}"
                print(f"round {round_no + 1}: {app} ...", flush=True)
                runs.append(one_round(service, zk, repo, app, round_no))
            service.close()
            engine.close()
            zk.stop()
    keys = list(dict.fromkeys(k for r in runs for k in r))
    rows = [{"what": k, "median": statistics.median(r.get(k, 0.0) for r in runs)} for k in keys]
    total = statistics.median(r["total"] for r in runs)
    print_table(
        f"an app restored online at a point before its deletion, {seeded.nodes:,} znodes seeded (median)",
        rows,
        ["what", "median"],
    )
    print(f"\nrequest to STATUS_READY: {total:.2f} s (goal <= 10 s)")
    result = {"apps": args.apps, "snap_count": args.snap_count, "znodes": seeded.nodes, "rows": rows, "runs": runs}
    write_result("point_restore", result)


if __name__ == "__main__":
    main()
