"""Fault trials with real processes and signals, counted: how many ended with data intact, which accepted
outcome occurred how often, and how long recovery took.

    python bench/reliability_report.py [--trials 20] [--only NAME ...] [--apps 3000] [--subnet 127.32.0] [--out FILE]
    python bench/reliability_report.py --summarize FILE [FILE ...]

Runs the scenarios of dcos_backup.testing.fault_scenarios (the same code the test suite runs once or twice)
against a private 3-master cluster seeded with ~16,000 znodes (--apps 3000), each trial at a randomly chosen moment of
the stretch of the job it names. Every trial is appended as one JSON line to ``--out`` (by default a new
file in bench/results/) as soon as it ends, so a long run can be stopped and resumed: trials already in
``--out`` are skipped. ``--summarize`` builds the markdown table of docs/reliability.md from such files.
"Intact" means every check of the scenario held: no partial file left, no STATUS_READY with wrong data, a
restore never leaves a mix, earlier backups verify, the next job works.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import RESULTS, bench_cluster
from dcos_backup.local import s3 as local_s3
from dcos_backup.local.spec import ClusterSpec
from dcos_backup.logical import connect
from dcos_backup.testing import fault_scenarios
from dcos_backup.testing.seed import seed_marathon
from dcos_backup.testing.tools import wait_for


@dataclass(frozen=True)
class Scenario:
    name: str
    run: Callable[..., fault_scenarios.Outcome]
    accepted: tuple[str, ...]  # every outcome branch the scenario accepts (the table says when one never occurred)
    setting: str = "seeded"  # what the trials run against: a key of SETTINGS


RESTORE = fault_scenarios.RESTORE_BRANCHES
SCENARIOS = [
    Scenario(
        "SIGKILL backup service mid-backup",
        fault_scenarios.service_killed_mid_backup,
        ("interrupted, cleaned up",),
    ),
    Scenario(
        "SIGKILL backup service mid-restore, before any change",
        functools.partial(fault_scenarios.service_killed_mid_restore, branch="before any change"),
        (RESTORE["before any change"][2],),
    ),
    Scenario(
        "SIGKILL backup service mid-restore, while applying",
        functools.partial(fault_scenarios.service_killed_mid_restore, branch="while applying"),
        (RESTORE["while applying"][2],),
    ),
    Scenario(
        "SIGKILL ZooKeeper leader mid-backup",
        functools.partial(fault_scenarios.leader_killed_mid_job, kind="backup"),
        ("completed", "error with reason"),
    ),
    Scenario(
        "SIGKILL ZooKeeper leader mid-restore, while applying",
        functools.partial(fault_scenarios.leader_killed_mid_job, kind="restore"),
        ("completed", "rolled back"),
    ),
    *(
        Scenario(
            f"{fault} mid-{kind}{', while applying' if kind == 'restore' else ''}",
            functools.partial(fault_scenarios.zookeeper_fault_mid_job, kind=kind, fault=key),
            ("completed", "rolled back" if kind == "restore" else "error with reason"),
        )
        for fault, key in (
            ("SIGSTOP ZooKeeper leader for 10 s", "leader frozen"),
            ("SIGKILL the service's ZooKeeper member", "service's member killed"),
        )
        for kind in ("backup", "restore")
    ),
    *(
        Scenario(
            f"{fault} mid-restore, while applying (fencing)",
            functools.partial(fault_scenarios.leadership_lost_mid_restore, fault=fault),
            ("completed", "rolled back"),
        )
        for fault in fault_scenarios.FENCING_FAULTS
    ),
    Scenario(
        "SIGKILL the archiver mid-copy of an object (continuous archiving under load)",
        fault_scenarios.archiver_killed_mid_copy,
        ("resumed in the same generation, caught up",),
        setting="archiving",
    ),
    Scenario(
        "S3 failing mid-upload of a backup (from a random request of the upload on)",
        fault_scenarios.s3_failing_mid_upload,
        ("error, nothing left in the bucket",),
        setting="s3",
    ),
]


@contextmanager
def seeded(subnet: str, apps: int = 3000, **kwargs: object) -> Iterator[ClusterSpec]:
    """A private 3-master cluster with ``apps`` Marathon apps (3,000: ~16,000 znodes) under /marathon."""
    with bench_cluster(3, subnet=subnet, **kwargs) as cluster:
        zk = connect(cluster.zk_hosts, timeout=60)
        seed_marathon(zk, apps=apps, seed=9)
        zk.stop()
        yield cluster


@contextmanager
def archiving(subnet: str) -> Iterator[ClusterSpec]:
    """A 3-master cluster archiving continuously into a local repository, ZooKeeper rolling its log every
    400 writes, with 1,500 apps: snapshots of several MB, long enough to be caught copying."""
    snap_count = [("snapCount", "400")]
    with (
        tempfile.TemporaryDirectory(prefix="dcos-bench-repo-") as repo,
        bench_cluster(3, subnet=subnet, zk_archive=repo, zk_config=snap_count) as cluster,
    ):
        zk = connect(cluster.zk_hosts, timeout=60)
        seed_marathon(zk, apps=1500, seed=3)
        zk.stop()
        yield cluster


@contextmanager
def s3(subnet: str) -> Iterator[fault_scenarios.S3Rig]:
    """A moto S3 server on the cluster's loopback, behind the fault-injecting proxy (fault_scenarios.S3Rig)."""
    host = f"{subnet}.9"
    port = 9000
    with bench_cluster(3, subnet=subnet, with_service=False) as cluster, tempfile.TemporaryFile() as log:
        os.environ.update(local_s3.CREDENTIALS)
        moto = subprocess.Popen(local_s3.moto_command(host, port), stdout=log, stderr=subprocess.STDOUT)
        try:
            endpoint = local_s3.endpoint_url(host, port)
            wait_for(lambda: moto.poll() is None and local_s3.create_bucket(endpoint, "probe"), what="moto_server")
            with fault_scenarios.faulty_s3_rig(cluster, endpoint) as rig:
                yield rig
        finally:
            moto.terminate()
            moto.wait(timeout=30)


SETTINGS: dict[str, Callable[[str], AbstractContextManager[object]]] = {
    "seeded": seeded,
    "archiving": archiving,
    "s3": s3,
}


def selected(only: list[str] | None) -> list[Scenario]:
    if not only:
        return SCENARIOS
    chosen = [s for s in SCENARIOS if any(o.lower() in s.name.lower() for o in only)]
    if not chosen:
        raise SystemExit(f"no scenario matches {only}; there are: " + "; ".join(s.name for s in SCENARIOS))
    return chosen


# ------------------------------------------------------------------------------------------- running
def read_trials(paths: Iterable[Path]) -> list[dict]:
    trials = []
    for path in paths:
        if path.exists():
            trials.extend(json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return trials


def run_trial(scenario: Scenario, target: object, trial: int) -> dict:
    started = time.monotonic()
    record: dict = {"scenario": scenario.name, "trial": trial}
    try:
        outcome = scenario.run(target, random.Random(f"{scenario.name}/{trial}"))
        record.update(outcome=outcome.branch, intact=True, recover_seconds=outcome.recover_seconds)
    except Exception as exc:  # a failed check: data not intact (or the scenario broke): the trial's evidence
        record.update(outcome=f"FAILED: {type(exc).__name__}", intact=False, error=str(exc)[:2000])
        traceback.print_exc()
    record["seconds"] = round(time.monotonic() - started, 2)
    record["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return record


def run(scenarios: list[Scenario], trials: int, subnet: str, out: Path, apps: int = 3000) -> None:
    done = {(t["scenario"], t["trial"]) for t in read_trials([out])}
    # Trial by trial across the scenarios: a run cut short leaves every scenario with about as many trials.
    todo = [(s, n) for n in range(trials) for s in scenarios if (s.name, n) not in done]
    print(f"{len(todo)} trials to run, results in {out}", flush=True)
    for setting in dict.fromkeys(s.setting for s, _ in todo):  # one setting at a time: the machine is small
        opened = seeded(subnet, apps) if setting == "seeded" else SETTINGS[setting](subnet)
        with opened as target:
            for scenario, trial in todo:
                if scenario.setting != setting:
                    continue
                record = run_trial(scenario, target, trial)
                with out.open("a") as f:
                    f.write(json.dumps(record) + "\n")
                print(f"{scenario.name} #{trial}: {record['outcome']} ({record['seconds']} s)", flush=True)


# --------------------------------------------------------------------------------------------- table
def summarize(trials: list[dict]) -> str:
    """The markdown table of docs/reliability.md: one row per scenario, in the order of SCENARIOS."""
    known = {s.name: s for s in SCENARIOS}
    names = [s.name for s in SCENARIOS if any(t["scenario"] == s.name for t in trials)]
    names += sorted({t["scenario"] for t in trials} - set(names))
    lines = [
        "| fault | trials | data intact | outcomes | time to recover (median / max) |",
        "|---|---|---|---|---|",
    ]
    for name in names:
        mine = {t["trial"]: t for t in trials if t["scenario"] == name}.values()  # a re-run trial counts once
        counts = Counter(t["outcome"] for t in mine)
        accepted = known[name].accepted if name in known else ()
        outcomes = [f"{b} x{counts[b]}" if counts[b] else f"{b}: never occurred" for b in accepted]
        outcomes += [f"**{o} x{n}**" for o, n in sorted(counts.items()) if o not in accepted]
        recover = sorted(t["recover_seconds"] for t in mine if t.get("recover_seconds") is not None)
        timing = f"{statistics.median(recover):.1f} s / {recover[-1]:.1f} s" if recover else "-"
        intact = sum(1 for t in mine if t["intact"])
        intact_text = str(intact) if intact == len(mine) else f"**{intact}**"
        lines.append(f"| {name} | {len(mine)} | {intact_text} | {', '.join(outcomes)} | {timing} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20, help="trials per scenario (default 20)")
    parser.add_argument("--only", action="append", help="run the scenarios whose name contains this (repeatable)")
    parser.add_argument("--apps", type=int, default=3000, help="Marathon apps of the seeded setting's cluster")
    parser.add_argument("--subnet", default="127.32.0", help="loopback subnet of the private cluster")
    parser.add_argument("--out", type=Path, help="JSON-lines file the trials are appended to (resumes it)")
    parser.add_argument("--summarize", type=Path, nargs="+", metavar="FILE", help="print the table of these files")
    args = parser.parse_args()
    if args.summarize:
        print(summarize(read_trials(args.summarize)))
        return
    RESULTS.mkdir(exist_ok=True)
    out = args.out or RESULTS / f"reliability-{time.strftime('%Y%m%dT%H%M%S')}.jsonl"
    run(selected(args.only), args.trials, args.subnet, out, args.apps)
    print(summarize(read_trials([out])))


if __name__ == "__main__":
    main()
