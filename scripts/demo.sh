#!/usr/bin/env bash
# Quick start, command 1: install everything, then run the demo on a real 3-master local cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/dcos-local demo "$@"
