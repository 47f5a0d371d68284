"""What every benchmark shares: a private local cluster, timing, peak RSS, the result table and JSON."""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dcos_backup.local import cluster as local_cluster
from dcos_backup.local.spec import ClusterSpec

# Where results go: bench/results/, or elsewhere for a run whose figures are not for keeping (the suite's smoke run).
RESULTS = Path(os.environ.get("DCOS_BENCH_RESULTS") or Path(__file__).parent / "results")
BIN = Path(sys.executable).parent


@contextmanager
def bench_cluster(masters: int = 3, subnet: str = "127.30.0", **kwargs: object) -> Iterator[ClusterSpec]:
    directory = Path(tempfile.mkdtemp(prefix="dcos-bench-"))
    cluster = local_cluster.up(directory, masters=masters, subnet=subnet, **kwargs)
    try:
        yield cluster
    except BaseException:
        print_master_logs(cluster)  # the cluster's directory is purged below: what happened to it goes with it
        raise
    finally:
        local_cluster.down(cluster, purge=True)


def dcos_env(cluster_dir: Path) -> dict[str, str]:
    """The environment after ``eval "$(dcos-local env 1)"``."""
    exports = subprocess.run(
        [str(BIN / "dcos-local"), "env", "1", "--dir", str(cluster_dir)], capture_output=True, text=True, check=True
    ).stdout
    variables = dict(shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in exports.splitlines())
    return {**os.environ, **variables}


def print_master_logs(cluster: ClusterSpec, lines: int = 15) -> None:
    """The tail of every master's status log and supervisor output, on stderr (a bench that failed)."""
    for master in cluster.masters:
        for log_file in (master.layout.activity_log, master.layout.exhibitor_log):
            if log_file.exists():
                tail = log_file.read_text(errors="replace").splitlines()[-lines:]
                print(f"--- master {master.member.id}: {log_file.name}", *tail, sep="\n", file=sys.stderr)


def timed_command(command: list[str], **kwargs: object) -> tuple[float, int]:
    """Run a command; returns (seconds, peak RSS in MB of that process, from wait4's rusage)."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, **kwargs)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, command)
    return seconds, usage.ru_maxrss // 1024


def measured_command(command: list[str]) -> tuple[float, dict]:
    """Run one of the bench's helper scripts (``_read_once.py``, ...); returns (seconds, the JSON it prints,
    with its own ``peak_rss_mb``)."""
    started = time.perf_counter()
    out = subprocess.run(command, check=True, stdout=subprocess.PIPE).stdout
    return time.perf_counter() - started, json.loads(out)


def peak_rss_mb() -> int:
    """This process's peak resident set size, from VmHWM, which exec starts afresh (wait4's ru_maxrss of a
    child also counts memory from before its exec: 19 MB for a child whose own peak was 9 MB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    return 0


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def print_table(title: str, rows: list[dict], columns: list[str]) -> None:
    print(f"\n{title}")
    widths = [max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for r in rows:
        print("  ".join(_fmt(r.get(c)).ljust(w) for c, w in zip(columns, widths, strict=True)))


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "-" if value is None else str(value)


def write_result(name: str, result: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    result = {
        "benchmark": name,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        **result,
    }
    path = RESULTS / f"{name}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nJSON result: {path}")
    return path
