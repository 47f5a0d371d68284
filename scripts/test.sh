#!/usr/bin/env bash
# Quick start, command 2: install everything, then run lint, the type checker and the whole test suite
# (unit tests and end-to-end tests against real ZooKeeper ensembles on loopback).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
.venv/bin/mypy  # pyproject.toml's [tool.mypy]: strict on the core packages
# Two workers (the machine's two cores; `-n 0` runs in one process), each test module whole on one of them
# (a module's clusters are shared by its tests), every cluster on a loopback subnet of its own
# (tests/helpers.py free_subnet). A short base directory: a cluster's unix sockets live under a test's
# tmp_path, and a socket's path holds at most 107 bytes. It is removed after a green run, kept after a red one.
base=$(mktemp -d /tmp/dcos-tests.XXXXXX)
if .venv/bin/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile --basetemp "$base" --durations=15 "$@"; then
    rm -rf "$base"
else
    status=$?
    echo "the tests' files are kept in $base" >&2
    exit "$status"
fi
