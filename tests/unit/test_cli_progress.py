"""The progress line of ``dcos backup ... --wait`` on a terminal: the job's phase, its counts and a rate."""

from dcos_backup.cli import dcos


def test_progress_detail_names_the_phase_counts_and_rate(monkeypatch):
    clock = iter([100.0, 101.0, 103.0])
    monkeypatch.setattr(dcos.time, "monotonic", lambda: next(clock))
    rate = dcos.Rate()
    doc = {"progress": {"phase": "applying marathon", "nodes": 1000, "total": 5000}}
    assert dcos.progress_detail(doc, rate) == " - applying marathon: 1000/5000 znodes"
    doc["progress"]["nodes"] = 3000
    assert dcos.progress_detail(doc, rate) == " - applying marathon: 3000/5000 znodes, 2000/s"
    doc["progress"] = {"phase": "verifying marathon", "nodes": 64}
    assert dcos.progress_detail(doc, rate) == " - verifying marathon: 64 znodes"  # a new phase: no rate yet
    assert dcos.progress_detail({}, rate) == ""
