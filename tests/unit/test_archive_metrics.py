"""Exhibitor's archive metrics (exhibitor/metrics.py) from the status document, and the archiver's gap count."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from dcos_backup.exhibitor.metrics import archive_registry
from dcos_backup.physical.continuous.archiver import count_gaps
from dcos_backup.physical.continuous.index import Range


def scraped(doc: dict) -> dict[str, float]:
    text = generate_latest(archive_registry("127.0.0.2", lambda: doc)).decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            assert sample.labels == {"master": "127.0.0.2"}
            found[sample.name] = sample.value
    return found


def test_an_archiving_master_reports_lag_window_gaps_and_errors():
    doc = {
        "enabled": True,
        "supervisor": "running",
        "state": "archiving",
        "last_zxid": "0x100000002a",
        "lag_seconds": 4.5,
        "restorable_since": 1000.0,
        "restorable_until": 4600.0,
        "gaps": 1,
        "errors": 3,
    }
    assert scraped(doc) == {
        "dcos_zk_archive_enabled": 1,
        "dcos_zk_archive_up": 1,
        "dcos_zk_archive_lag_seconds": 4.5,
        "dcos_zk_archive_last_zxid": 0x100000002A,
        "dcos_zk_restorable_since_timestamp_seconds": 1000.0,
        "dcos_zk_restorable_window_seconds": 3600.0,
        "dcos_zk_archive_gaps": 1,
        "dcos_zk_archive_errors_total": 3,
    }


def test_a_stopped_archiver_is_down_and_nothing_archived_yet_has_no_window():
    found = scraped({"enabled": True, "supervisor": "backoff", "state": "archiving", "lag_seconds": 0.0})
    assert found["dcos_zk_archive_up"] == 0 and found["dcos_zk_archive_lag_seconds"] == 0
    assert "dcos_zk_restorable_window_seconds" not in found and "dcos_zk_archive_last_zxid" not in found


def test_a_master_without_archiving_says_so_only():
    assert scraped({"enabled": False}) == {"dcos_zk_archive_enabled": 0}


def stretch(first_ms: int, last_ms: int) -> Range:
    return Range("s", "g", first_ms, last_ms, first_ms, last_ms)


def test_gaps_are_breaks_between_restorable_stretches_not_overlaps():
    assert count_gaps([]) == 0
    assert count_gaps([stretch(0, 10)]) == 0
    assert count_gaps([stretch(0, 10), stretch(5, 20), stretch(20, 30)]) == 0  # overlapping or touching
    assert count_gaps(sorted([stretch(0, 10), stretch(11, 20), stretch(30, 40)], key=lambda r: r.first_ms)) == 2
