"""Where the time of a small restore goes: one changed app in a big tree, restored by the service's job runner.

    python bench/restore_bench.py [--apps 20000] [--rounds 3] [--subnet 127.52.0]

Seeds a private 3-master cluster with Marathon-like state (``--apps 20000``: about 110,000 znodes under
``/marathon``), backs it up through the service's job runner (in this process, on the real ensemble), then
``--rounds`` times: changes one app's data and restores the backup twice, whole and with ``paths`` (the
``--path`` of that app), timing each phase from the job's progress (polled every 5 ms: the phases' names as
the job reports them) and checking the tree equals the backup again. Prints a table (seconds per phase,
median of the rounds) and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import bench_cluster, print_table, write_result
from dcos_backup.catalog.archive import read_archive
from dcos_backup.catalog.models import Status
from dcos_backup.catalog.storage import LocalStorage
from dcos_backup.jobs.engine import ZkEngine
from dcos_backup.jobs.service import BackupService
from dcos_backup.logical import compare_tree, connect
from dcos_backup.testing.seed import seed_marathon

POLL = 0.005


def timed_phases(service: BackupService, backup_id: str, ended) -> dict[str, float]:
    """Seconds spent in each phase of the job running on ``backup_id`` (from its progress), until ``ended()``."""
    phases: dict[str, float] = {}
    current, since = "starting", time.perf_counter()
    while not ended():
        phase = str((service.progress(backup_id) or {}).get("phase") or current)
        if phase != current:
            now = time.perf_counter()
            phases[current] = phases.get(current, 0.0) + now - since
            current, since = phase, now
        time.sleep(POLL)
    phases[current] = phases.get(current, 0.0) + time.perf_counter() - since
    return phases


def restore_round(service: BackupService, backup_id: str, paths: list[str]) -> dict[str, float]:
    started = time.perf_counter()
    restore = service.restore(backup_id, paths)

    def ended() -> bool:
        latest = service.get(backup_id).latest_restore
        return latest is not None and latest.id == restore.id and latest.status != Status.RESTORING

    phases = timed_phases(service, backup_id, ended)
    total = time.perf_counter() - started
    latest = service.get(backup_id).latest_restore
    if latest.status != Status.READY:
        raise SystemExit(f"restore failed: {latest.reason}")
    return {**phases, "total": total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--subnet", default="127.52.0")
    args = parser.parse_args()
    with (
        bench_cluster(3, subnet=args.subnet, heap="2g", with_service=False) as cluster,
        tempfile.TemporaryDirectory() as tmp,
    ):
        zk = connect(cluster.zk_hosts, timeout=60)
        seed_marathon(zk, apps=args.apps, seed=1)
        app = "/marathon/state/app/" + sorted(zk.get_children("/marathon/state/app"))[0]
        engine = ZkEngine(cluster.zk_hosts)
        service = BackupService(LocalStorage(Path(tmp)), engine, keep_safety=1)
        record = service.create("bench")
        while service.running is not None:
            time.sleep(0.05)
        record = service.get(record.id)
        runs: dict[str, list[dict[str, float]]] = {"whole": [], "--path": []}
        for round_no in range(args.rounds):
            for kind, paths in (("whole", []), ("--path", [app])):
                zk.set(app, b'{"id": "changed in round %d"}' % round_no)
                runs[kind].append(restore_round(service, record.id, paths))
                with service.storage.archive_reader(record.id, "marathon.dcosbkp") as raw:
                    assert compare_tree(cluster.zk_hosts, "/marathon", read_archive(raw)) is None
        service.close()
        engine.close()
        zk.stop()
    rows = []
    for kind, rounds in runs.items():
        phases = list(dict.fromkeys(p for r in rounds for p in r))  # in the order they came; "total" last
        rows += [
            {"restore": kind, "phase": p, "seconds": statistics.median(r.get(p, 0.0) for r in rounds)} for p in phases
        ]
    print_table(
        f"1 changed app, {record.component_status['marathon'].nodes} znodes: seconds per phase (median)",
        rows,
        ["restore", "phase", "seconds"],
    )
    write_result("restore", {"apps": args.apps, "znodes": record.component_status["marathon"].nodes, "rows": rows})


if __name__ == "__main__":
    main()
