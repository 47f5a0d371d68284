#!/usr/bin/env bash
# Quick start, command 2: install everything, then run lint, the type checker and the whole test suite
# (unit tests and end-to-end tests against real ZooKeeper ensembles on loopback).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
.venv/bin/mypy  # pyproject.toml's [tool.mypy]: strict on the core packages
# DCOS_TEST_WORKERS=2: two pytest-xdist workers (16.8-17.9 min here instead of 31), each test module whole on
# one of them (a module's clusters are shared by its tests), every cluster on a loopback subnet of its own
# (tests/helpers.py free_subnet), then the modules marked `serial` (pyproject.toml) alone. Not the default
# yet: each of the first three two-worker runs found a new race that only shows under the heavier load
# (docs/performance.md, "The test suite"); one process is what CI has run green. A short base directory: a
# cluster's unix sockets live under a test's tmp_path, and a socket's path holds at most 107 bytes; it is
# removed after a green run, kept after a red one. Exit status 5 is "no test selected" (a `-k` that matches
# only one of the two runs).
workers=${DCOS_TEST_WORKERS:-1}
base=$(mktemp -d /tmp/dt.XXXXXX)
status=0
if [ "$workers" -le 1 ]; then
    .venv/bin/python -m pytest -q -p no:cacheprovider --basetemp "$base/s" --durations=15 "$@" || status=$?
else
    .venv/bin/python -m pytest -q -p no:cacheprovider -n "$workers" --dist loadfile -m "not serial" \
        --basetemp "$base/w" --durations=15 "$@" || status=$?
    serial=0
    .venv/bin/python -m pytest -q -p no:cacheprovider -m serial --basetemp "$base/s" --durations=5 "$@" || serial=$?
    if [ "$status" -eq 5 ] && [ "$serial" -ne 5 ]; then status=$serial; fi
    if [ "$status" -eq 0 ] && [ "$serial" -ne 5 ]; then status=$serial; fi
fi
if [ "$status" -eq 0 ]; then
    rm -rf "$base"
else
    echo "the tests' files are kept in $base" >&2
fi
exit "$status"
