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


def test_the_progress_line_keeps_the_numbers_on_an_80_column_terminal():
    what = "restoring pre-upgrade-0b3c5b2e-5f0e-4c56-9a6e-1f2d3c4b5a69"
    detail = " - checking archives: 1200/5000 znodes, 3400/s"
    width = 80 - dcos.PROGRESS_CHROME
    line = dcos.progress_line(what, "STATUS_RESTORING", detail, width)
    assert line == "RESTORING - checking archives: 1200/5000 znodes, 3400/s" and len(line) <= width
    assert dcos.progress_line("backing up x-1", "STATUS_BACKING_UP", "", 200) == "backing up x-1: STATUS_BACKING_UP"
