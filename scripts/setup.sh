#!/usr/bin/env bash
# Installs what dcos-backup needs, idempotently: Java + the ZooKeeper server, nginx and curl (Debian packages;
# nginx is the Admin Router of dcos-local's masters, curl the seed's check) when missing, and a .venv with the
# package and its test tools. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v java >/dev/null 2>&1 || [ ! -f /usr/share/java/zookeeper.jar ] || [ ! -x /usr/sbin/nginx ] \
    || ! command -v curl >/dev/null 2>&1; then
    echo "==> installing Java, ZooKeeper, nginx and curl (apt-get install zookeeper nginx curl)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zookeeper nginx curl >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv"
    "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import dcos_backup, pytest" >/dev/null 2>&1 || [ pyproject.toml -nt .venv/.installed ]; then
    echo "==> installing dcos-backup into .venv"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[test,bench]'
    touch .venv/.installed
fi
