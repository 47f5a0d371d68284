#!/usr/bin/env bash
# Quick start, command 2: install everything, then run lint, the type checker and the whole test suite
# (unit tests and end-to-end tests against real ZooKeeper ensembles on loopback).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
.venv/bin/mypy  # pyproject.toml's [tool.mypy]: strict on the core packages
exec .venv/bin/python -m pytest -q -p no:cacheprovider --durations=15 "$@"
