"""Every script in bench/ runs end to end at a tiny size, so a change that breaks a benchmark is caught the day
it lands (issue 29). The figures are not judged here: a smoke run finishes (exit 0) and prints its table.
Results go to a temporary directory (``DCOS_BENCH_RESULTS``), never to bench/results/; each script gets a
loopback subnet of its own and a temporary directory of its own (``TMPDIR``), in which it leaves no scratch
directory behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from tests.helpers import AMBIENT_SETTINGS, free_subnet

pytestmark = pytest.mark.e2e

BENCH = Path(__file__).resolve().parents[2] / "bench"
RELIABILITY_TABLE = "| fault | trials | data intact |"

# script: its arguments for a smoke run (tiny sizes, one round)
SMOKE = {
    "catalog_bench.py": ["--backups", "30", "--archive-objects", "50", "--shows", "5", "--lists", "1"],
    "front_door_bench.py": ["--children", "200", "--rounds", "1"],
    "huge_dir_bench.py": ["--children", "400", "--data", "16"],
    "point_restore_bench.py": ["--apps", "20", "--rounds", "1"],
    "restore_bench.py": ["--apps", "20", "--rounds", "1"],
    "storage_bench.py": ["--znodes", "200", "--rounds", "1", "--rss-znodes", "200"],
    "tree_bench.py": ["--nodes", "500", "--sample", "100"],
    "zk_archive_bench.py": ["--apps", "20", "--rate", "50", "--seconds", "0.5", "--rounds", "1", "--restores", "1"],
    "zk_compact_bench.py": ["--apps", "20", "--writes", "3000", "--every", "1000", "--restores", "1"],
    "zk_online_bench.py": ["--apps", "20", "--rate", "50"],
    "zk_physical_bench.py": ["--apps", "20", "--repeat", "1"],
    "rewind_bench.py": ["--apps", "20", "--rounds", "1"],
    "reliability_report.py": ["--trials", "1", "--only", "SIGKILL backup service mid-backup", "--apps", "300"],
}


def test_every_bench_script_has_a_smoke_run():
    scripts = {p.name for p in BENCH.glob("*.py") if not p.name.startswith("_")}
    assert scripts == set(SMOKE), "add the new script to SMOKE with arguments for a tiny run"


@pytest.mark.parametrize("script", sorted(SMOKE))
def test_bench_script_runs_and_prints_its_table(script, tmp_path):
    # The script's own, and short (a cluster's unix sockets live under it): another test's scratch never
    # looks like this one's.
    temporary = Path(tempfile.mkdtemp(prefix="smoke-"))
    args = [*SMOKE[script], "--subnet", free_subnet()]
    if script == "reliability_report.py":
        args += ["--out", str(tmp_path / "trials.jsonl")]
    env = {k: v for k, v in os.environ.items() if k not in AMBIENT_SETTINGS}
    env["DCOS_BENCH_RESULTS"] = str(tmp_path)
    env["TMPDIR"] = str(temporary)
    try:
        result = subprocess.run(
            [sys.executable, str(BENCH / script), *args], capture_output=True, text=True, env=env, timeout=600
        )
        left = sorted(p.name for p in temporary.glob("*bench*"))  # the benches name their scratch directories so
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert not left, f"{script} left {left} behind"
    if script == "reliability_report.py":
        assert RELIABILITY_TABLE in result.stdout and "SIGKILL backup service mid-backup" in result.stdout
    else:
        written = list(tmp_path.glob("*.json"))
        assert len(written) == 1 and f"JSON result: {written[0]}" in result.stdout, result.stdout[-3000:]
