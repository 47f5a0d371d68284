#!/usr/bin/env bash
# Installs what dcos-backup needs, idempotently: Java + the ZooKeeper server, nginx, curl, chromium and prometheus
# (Debian packages; nginx is the Admin Router of dcos-local's masters, curl the seed's check, chromium and
# chromium-driver the web console's tests, prometheus/promtool the monitoring and the alert rules' checks) when missing, and a .venv with the package and its test tools. Safe to
# run again.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

base=()
if ! command -v java >/dev/null 2>&1 || [ ! -f /usr/share/java/zookeeper.jar ]; then base+=(zookeeper); fi
if [ ! -x /usr/sbin/nginx ]; then base+=(nginx); fi
if ! command -v curl >/dev/null 2>&1; then base+=(curl); fi
# The web console's tests drive Debian's chromium through its chromedriver (selenium, a test extra).
if ! command -v chromium >/dev/null 2>&1; then base+=(chromium); fi
if ! command -v chromedriver >/dev/null 2>&1; then base+=(chromium-driver); fi
need_prometheus=false
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then need_prometheus=true; fi
if [ ${#base[@]} -gt 0 ] || $need_prometheus; then
    as_root apt-get update -qq
fi
if [ ${#base[@]} -gt 0 ]; then
    echo "==> installing Java, ZooKeeper, nginx, curl, chromium (apt-get install ${base[*]})"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${base[@]}" >/dev/null
fi
if $need_prometheus; then
    echo "==> installing Prometheus and promtool (apt-get install prometheus)"
    # Without recommends: they add prometheus-node-exporter, another daemon nothing here uses.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    # Where systemd runs, the package starts its own daemon on :9090; dcos-local runs its own Prometheus instead.
    if [ -d /run/systemd/system ]; then
        as_root systemctl disable --now prometheus.service >/dev/null 2>&1 || true
    fi
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
