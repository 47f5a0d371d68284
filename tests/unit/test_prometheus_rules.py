"""Monitoring: the alert rules (``promtool check rules`` and their ``promtool test rules`` unit tests), the
Grafana dashboard (importable, every query valid PromQL over the metric contract of issue 27) and dcos-local's
Prometheus configuration (``promtool check config``, and a real Prometheus loading it)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from tests.helpers import free_subnet, wait_for

from dcos_backup.adminrouter import tls
from dcos_backup.local import monitoring

PACKAGING = Path(__file__).resolve().parents[2] / "packaging"
RULES = PACKAGING / "prometheus" / "dcos-backup.rules.yml"
RULES_TESTS = PACKAGING / "prometheus" / "dcos-backup.rules.test.yml"
DASHBOARD = PACKAGING / "grafana" / "dcos-backup-dashboard.json"

# The metric names of issue 27: the service and Exhibitor export them, the rules and the dashboard read them.
CONTRACT = {
    "dcos_backup_last_success_timestamp_seconds",
    "dcos_backup_last_attempt_timestamp_seconds",
    "dcos_backup_jobs_total",
    "dcos_backup_job_duration_seconds",
    "dcos_backup_job_running",
    "dcos_backup_size_bytes",
    "dcos_backup_catalog_backups",
    "dcos_backup_schedule_next_run_timestamp_seconds",
    "dcos_backup_schedule_last_success_timestamp_seconds",
    "dcos_backup_leader",
    "dcos_backup_storage_up",
    "dcos_zk_archive_lag_seconds",
    "dcos_zk_archive_last_zxid",
    "dcos_zk_restorable_window_seconds",
    "dcos_zk_restorable_since_timestamp_seconds",
    "dcos_zk_archive_gaps",
    "dcos_zk_archive_errors_total",
}
HISTOGRAMS = {"dcos_backup_job_duration_seconds"}
# What issue 27 asks an alert for, by the alert that covers it.
ALERTS = {
    "DcosBackupOverdue",  # backup older than its schedule allows
    "DcosBackupScheduleMissed",  # ... because its run never started
    "DcosBackupJobFailed",
    "DcosBackupDrillFailed",
    "DcosZkArchiveLagging",
    "DcosZkArchiveGaps",
    "DcosZkRestorableWindowShrinking",
    "DcosBackupNoLeader",
    "DcosBackupStorageDown",
}
GRAFANA_VARIABLES = re.compile(r"\$(__rate_interval|__interval|__range)\b")
METRIC = re.compile(r"\b(dcos_(?:backup|zk)_[a-z_]+)")


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is missing: scripts/setup.sh installs Debian's prometheus package")
        pytest.skip("promtool is missing (scripts/setup.sh installs Debian's prometheus package)")
    return path


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120)


def alert_blocks(text: str) -> dict[str, str]:
    """Each alert's name and the text of its rule, up to the next rule."""
    parts = re.split(r"^\s*- (?:alert|record): ", text, flags=re.MULTILINE)[1:]
    return {part.split("\n", 1)[0].strip(): part for part in parts if "\n        labels:" in part}


def metric_names(expr: str) -> set[str]:
    """The contract's metric names an expression reads (a histogram's _bucket, _sum and _count by its own name)."""
    names = set()
    for name in METRIC.findall(expr):
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        names.add(base if base in HISTOGRAMS else name)
    return names


def check_exprs(promtool: str, exprs: list[str], directory: Path) -> subprocess.CompletedProcess[str]:
    """``promtool check rules`` on each expression as a recording rule (JSON is YAML)."""
    rules = [{"record": f"check:expr_{i}", "expr": GRAFANA_VARIABLES.sub("5m", e)} for i, e in enumerate(exprs)]
    path = directory / "exprs.rules.yml"
    path.write_text(json.dumps({"groups": [{"name": "exprs", "rules": rules}]}))
    return run(promtool, "check", "rules", path)


# ------------------------------------------------------------------------------------------------ rules
def test_rules_pass_promtool_check(promtool):
    result = run(promtool, "check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rules_unit_tests_pass(promtool):
    result = run(promtool, "test", "rules", RULES_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_broken_rule_fails_its_unit_test(promtool, tmp_path):
    """The unit tests can fail: lag alerting only over 60 s misses the 45 s lag they expect an alert for."""
    text = RULES.read_text().replace("(dcos_zk_archive_lag_seconds) > 30", "(dcos_zk_archive_lag_seconds) > 60")
    assert text != RULES.read_text()
    (tmp_path / RULES.name).write_text(text)
    shutil.copy(RULES_TESTS, tmp_path / RULES_TESTS.name)
    result = run(promtool, "test", "rules", tmp_path / RULES_TESTS.name)
    assert result.returncode != 0
    assert "DcosZkArchiveLagging" in result.stdout + result.stderr


def test_every_alert_is_labelled_annotated_and_tested_both_ways():
    blocks = alert_blocks(RULES.read_text())
    assert set(blocks) == ALERTS
    tests = RULES_TESTS.read_text()
    for name, block in blocks.items():
        assert re.search(r"severity: (critical|warning)\n", block), name
        assert "summary:" in block and "description:" in block, name
        # An eval where it must not fire and one where it must.
        assert re.search(rf"alertname: {name}\n\s+exp_alerts: \[\]", tests), f"{name}: no test where it stays quiet"
        assert re.search(rf"alertname: {name}\n\s+exp_alerts:\n\s+- exp_labels:", tests), f"{name}: never fires"


def test_rules_read_only_contract_metrics():
    names = metric_names(RULES.read_text())
    assert names <= CONTRACT, names - CONTRACT


# ------------------------------------------------------------------------------------------------ dashboard
def dashboard_targets(dashboard: dict) -> list[dict]:
    return [t for p in dashboard["panels"] if p["type"] != "row" for t in p["targets"]]


def test_dashboard_is_importable():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] and dashboard["uid"]
    assert dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["title"] and panel["type"]
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]), panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]


def test_dashboard_queries_are_valid_promql(promtool, tmp_path):
    exprs = [t["expr"] for t in dashboard_targets(json.loads(DASHBOARD.read_text()))]
    result = check_exprs(promtool, exprs, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout


def test_the_promql_check_rejects_a_broken_query(promtool, tmp_path):
    result = check_exprs(promtool, ["sum by (kind) (rate(dcos_backup_jobs_total[$__rate_interval])"], tmp_path)
    assert result.returncode != 0


def test_dashboard_shows_every_contract_metric_and_nothing_else():
    names = set().union(*(metric_names(t["expr"]) for t in dashboard_targets(json.loads(DASHBOARD.read_text()))))
    assert names == CONTRACT, {"unknown": names - CONTRACT, "not shown": CONTRACT - names}


# ------------------------------------------------------------------------------------------------ dcos-local
@pytest.fixture
def prometheus_dir(tmp_path) -> tuple[Path, str]:
    """A configuration for three masters on a fresh subnet, with a real CA and a token file."""
    subnet = free_subnet()
    tls.create_ca(tmp_path / "ca.crt", tmp_path / "ca.key", "test CA")
    token = tmp_path / "monitoring.token"
    token.write_text("a-token\n")
    monitoring.write_config(tmp_path / "prometheus", subnet, 3, tmp_path / "ca.crt", token)
    return tmp_path / "prometheus", subnet


def test_generated_config_passes_promtool_check(promtool, prometheus_dir):
    directory, _ = prometheus_dir
    result = run(promtool, "check", "config", directory / monitoring.CONFIG_NAME)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 13 rules found" in result.stdout


def test_generated_config_scrapes_every_master_through_the_admin_router_and_exhibitor(prometheus_dir, tmp_path):
    directory, subnet = prometheus_dir
    config = json.loads((directory / monitoring.CONFIG_NAME).read_text())
    assert config["rule_files"] == [RULES.name]
    assert (directory / RULES.name).read_text() == RULES.read_text()
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    masters = [f"{subnet}.{n}" for n in (1, 2, 3)]
    for name, path in (
        ("dcos-backup", "/system/v1/backup/v1/metrics"),
        ("exhibitor-adminrouter", "/exhibitor/exhibitor/v1/metrics"),
    ):
        job = jobs[name]
        assert job["metrics_path"] == path
        assert job["scheme"] == "https"
        assert job["tls_config"] == {"ca_file": str(tmp_path / "ca.crt")}
        assert job["authorization"] == {"type": "Bearer", "credentials_file": str(tmp_path / "monitoring.token")}
        assert job["static_configs"] == [{"targets": [f"{m}:443" for m in masters]}]
    direct = jobs["exhibitor"]
    assert (direct["scheme"], direct["metrics_path"]) == ("http", "/exhibitor/v1/metrics")
    assert direct["static_configs"] == [{"targets": [f"{m}:8181" for m in masters]}]
    assert "authorization" not in direct
    assert monitoring.prometheus_url(subnet) == f"http://{subnet}.1:9090"


def test_a_real_prometheus_loads_the_config_and_the_alerts(promtool, prometheus_dir, tmp_path):
    directory, subnet = prometheus_dir
    address = monitoring.listen_address(subnet)
    log = (tmp_path / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            shutil.which("prometheus") or "prometheus",
            f"--config.file={directory / monitoring.CONFIG_NAME}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address={address}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def api(path: str) -> dict | None:
            assert process.poll() is None, (tmp_path / "prometheus.log").read_text()
            try:
                answer = httpx.get(f"http://{address}/api/v1/{path}", timeout=5)
            except httpx.TransportError:
                return None
            return answer.json()["data"] if answer.status_code == 200 else None

        groups = wait_for(lambda: api("rules?type=alert"), timeout=60, what="Prometheus to serve its rules")["groups"]
        assert {r["name"] for g in groups for r in g["rules"]} == ALERTS

        # Its targets appear once the scrape manager has read the configuration, a moment after the rules.
        def all_targets() -> list[dict] | None:
            targets = (api("targets") or {}).get("activeTargets", [])
            return targets if len(targets) >= 9 else None

        targets = wait_for(all_targets, timeout=60, what="Prometheus to list its 9 targets")
        assert sorted((t["labels"]["job"], t["scrapeUrl"]) for t in targets) == sorted(
            [
                (job, f"https://{subnet}.{n}:443{path}")
                for n in (1, 2, 3)
                for job, path in (
                    ("dcos-backup", "/system/v1/backup/v1/metrics"),
                    ("exhibitor-adminrouter", "/exhibitor/exhibitor/v1/metrics"),
                )
            ]
            + [("exhibitor", f"http://{subnet}.{n}:8181/exhibitor/v1/metrics") for n in (1, 2, 3)]
        )
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
