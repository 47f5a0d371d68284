"""The backup service's ``GET /metrics`` (jobs/metrics.py), in-process against the real shared ensemble: who may
read it, and that its numbers follow the catalog and the jobs."""

from __future__ import annotations

import threading

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.helpers import create_ready, wait_for

from dcos_backup.api.models import CANCEL, CREATE
from dcos_backup.api.paths import METRICS, METRICS_PERMISSION
from dcos_backup.iam.users import READ

pytestmark = pytest.mark.e2e


@pytest.fixture
def slow_reader(env):
    """Hold the engine's reads at a gate so that a backup is still running when it is cancelled."""
    _, service, _, _ = env
    gate = threading.Event()
    service.engine.gate = gate
    yield gate
    gate.set()


def samples(http, headers=None) -> dict[tuple[str, tuple], float]:
    response = http.get(METRICS, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def test_metrics_need_a_token_and_the_metrics_permission_is_enough(env):
    http, _, _, api = env
    api.users.update(lambda d: d.add_user("prometheus").grant(METRICS_PERMISSION, READ))
    assert http.get(METRICS, headers={"Authorization": ""}).status_code == 401
    refused = http.get(METRICS, headers=api.headers("nobody"))
    assert refused.status_code == 403
    assert f"lacks the permission {METRICS_PERMISSION} (action read)" in refused.json()["errors"][0]
    assert samples(http, api.headers("prometheus"))[("dcos_backup_storage_up", ())] == 1
    # The metrics permission opens nothing else.
    assert http.post(CREATE, json={"label": "x"}, headers=api.headers("prometheus")).status_code == 403


def test_metrics_follow_jobs_and_catalog(env):
    http, service, _, _ = env
    before = samples(http)
    assert before[("dcos_backup_jobs_total", (("kind", "backup"), ("outcome", "ok")))] == 0
    assert before[("dcos_backup_jobs_total", (("kind", "drill"), ("outcome", "error")))] == 0
    assert before[("dcos_backup_leader", (("instance", service.instance),))] == 1
    assert before[("dcos_backup_catalog_backups", (("status", "STATUS_READY"),))] == 0
    assert ("dcos_backup_last_success_timestamp_seconds", (("component", "marathon"),)) not in before

    doc = create_ready(http)
    assert doc["status"] == "STATUS_READY"
    after = samples(http)
    assert after[("dcos_backup_jobs_total", (("kind", "backup"), ("outcome", "ok")))] == 1
    assert after[("dcos_backup_job_duration_seconds_count", (("kind", "backup"),))] == 1
    assert after[("dcos_backup_job_running", (("kind", "backup"),))] == 0
    assert after[("dcos_backup_catalog_backups", (("status", "STATUS_READY"),))] == 1
    record = service.get(doc["id"])
    marathon = (("component", "marathon"),)
    assert after[("dcos_backup_last_success_timestamp_seconds", marathon)] == pytest.approx(
        record.finished_at.timestamp()
    )
    assert after[("dcos_backup_last_attempt_timestamp_seconds", marathon)] == pytest.approx(
        record.timestamp.timestamp()
    )
    assert after[("dcos_backup_size_bytes", marathon)] == record.component_status["marathon"].bytes > 0


def test_a_cancelled_backup_counts_as_cancelled(env, slow_reader):
    http, service, _, _ = env
    started = http.post(CREATE, json={"label": "slow"}).json()["backup_info"]
    running = samples(http)
    assert running[("dcos_backup_job_running", (("kind", "backup"),))] == 1
    assert http.post(CANCEL, json={"id": started["id"]}).status_code == 200
    slow_reader.set()
    wait_for(lambda: service.running is None, what="the cancelled backup to end")
    ended = samples(http)
    assert ended[("dcos_backup_jobs_total", (("kind", "backup"), ("outcome", "cancelled")))] == 1
    assert ended[("dcos_backup_jobs_total", (("kind", "backup"), ("outcome", "ok")))] == 0
    assert ended[("dcos_backup_catalog_backups", (("status", "STATUS_ERROR"),))] == 1
