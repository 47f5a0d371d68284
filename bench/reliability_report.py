"""Fault trials with real processes and signals, counted: how many ended with data intact.

    python bench/reliability_report.py [--trials 5]

Runs the scenarios of tests/e2e/fault_scenarios.py (the same code the test suite runs a few times)
against a private 3-master cluster seeded with ~16,000 znodes, each at a randomly chosen moment of the
stretch of the job it names, and prints one row per fault. "Intact" means every check of the scenario
held: no partial file left, no STATUS_READY with wrong data, a restore never leaves a mix, earlier backups
verify, the next job works.
"""

from __future__ import annotations

import argparse
import functools
import random
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

from tests.e2e import fault_scenarios  # noqa: E402

from _common import bench_cluster, print_table, write_result  # noqa: E402
from dcos_backup.testing.seed import seed_marathon  # noqa: E402
from dcos_backup.zk import connect  # noqa: E402

SCENARIOS = {
    "SIGKILL backup service mid-backup": fault_scenarios.service_killed_mid_backup,
    "SIGKILL backup service mid-restore, before any change": functools.partial(
        fault_scenarios.service_killed_mid_restore, branch="before any change"
    ),
    "SIGKILL backup service mid-restore, while applying": functools.partial(
        fault_scenarios.service_killed_mid_restore, branch="while applying"
    ),
    "SIGKILL ZooKeeper leader mid-backup": functools.partial(fault_scenarios.leader_killed_mid_job, kind="backup"),
    "SIGKILL ZooKeeper leader mid-restore": functools.partial(fault_scenarios.leader_killed_mid_job, kind="restore"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    rows = []
    with bench_cluster(3, subnet="127.32.0") as cluster:
        zk = connect(cluster.zk_hosts, timeout=60)
        seed_marathon(zk, apps=3000, seed=9)
        zk.stop()
        for name, scenario in SCENARIOS.items():
            outcomes: Counter[str] = Counter()
            intact = 0
            started = time.monotonic()
            for trial in range(args.trials):
                try:
                    outcomes[scenario(cluster, random.Random(trial))] += 1
                    intact += 1
                except Exception as exc:  # a failed check: data not intact (or the scenario broke)
                    outcomes[f"FAILED: {type(exc).__name__}"] += 1
                    traceback.print_exc()
            rows.append(
                {
                    "fault": name,
                    "trials": args.trials,
                    "data intact": intact,
                    "outcomes": ", ".join(f"{k} x{v}" for k, v in sorted(outcomes.items())),
                    "seconds": time.monotonic() - started,
                }
            )
            print(f"{name}: {intact}/{args.trials} intact ({dict(outcomes)})", flush=True)
    print_table(
        "fault trials (real processes, real signals)", rows, ["fault", "trials", "data intact", "outcomes", "seconds"]
    )
    write_result("reliability", {"rows": rows})


if __name__ == "__main__":
    main()
