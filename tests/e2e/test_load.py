"""The steady-rate write load generator against the real ensemble: pacing, zxid order, expected children."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator

import pytest
from kazoo.client import KazooClient

from dcos_backup.logical import connect
from dcos_backup.testing.load import LoadGenerator, LoadReport

pytestmark = pytest.mark.e2e


@pytest.fixture
def admin(zk_hosts: str) -> Iterator[KazooClient]:
    client = connect(zk_hosts)
    yield client
    client.stop()
    client.close()


@pytest.fixture
def root(admin: KazooClient) -> Iterator[str]:
    """A fresh, not yet existing root on the unchrooted ensemble; removed afterwards."""
    path = f"/load-test-{uuid.uuid4().hex[:12]}"
    yield path
    if admin.exists(path):
        admin.delete(path, recursive=True)


def run(
    zk_hosts: str, root: str, seconds: float, rate: float = 100.0, seed: int = 0
) -> tuple[LoadGenerator, LoadReport]:
    generator = LoadGenerator(zk_hosts, root=root, rate=rate, seed=seed)
    with generator:
        time.sleep(seconds)
    return generator, generator.stop()


def read_children(client: KazooClient, root: str) -> dict[str, bytes]:
    return {f"{root}/{name}": client.get(f"{root}/{name}")[0] for name in client.get_children(root)}


def test_steady_load_matches_the_tree(zk_hosts: str, admin: KazooClient, root: str) -> None:
    generator, report = run(zk_hosts, root, seconds=2.0)

    assert report.failures == []
    elapsed = report.stopped - report.started
    # Paced, never bursting: at most one op per 10 ms slot. The ensemble may stall (fsync, GC on a busy host;
    # seen: one 3 s ack), and the generator then waits rather than catching up: only time outside acks
    # slower than a slot must be filled with ops.
    stalled = sum(max(0.0, op.latency - 1 / 100) for op in report.ops)
    assert 0.5 * 100 * (elapsed - stalled) <= len(report.ops) <= 100 * elapsed + 2
    zxids = [op.zxid for op in report.ops]
    assert all(a < b for a, b in itertools.pairwise(zxids))
    assert {op.kind for op in report.ops} == {"create", "set", "delete"}
    assert all(op.path.startswith(f"{root}/n-") for op in report.ops)

    expected = generator.expected_children(max(zxids))
    assert expected == read_children(admin, root)
    assert expected == generator.expected_children(max(zxids), report.ops)

    summary = report.to_dict()
    assert summary["ops"] == len(report.ops)
    assert summary["creates"] + summary["sets"] + summary["deletes"] == len(report.ops)
    assert summary["failures"] == 0


def test_expected_children_drops_later_ops(zk_hosts: str, admin: KazooClient, root: str) -> None:
    # A child that exists before start() is part of the expected state and never touched by the load.
    admin.create(f"{root}/pre", b"before", makepath=True)
    generator, report = run(zk_hosts, root, seconds=1.5)
    assert report.failures == []
    assert generator.expected_children(0) == {f"{root}/pre": b"before"}

    middle = report.ops[len(report.ops) // 2].zxid
    upto = [op for op in report.ops if op.zxid <= middle]
    creates = sum(op.kind == "create" for op in upto)
    deletes = sum(op.kind == "delete" for op in upto)
    assert deletes > 0

    expected = generator.expected_children(middle)
    assert len(expected) == 1 + creates - deletes
    assert expected[f"{root}/pre"] == b"before"
    created_by_then = {op.path for op in upto if op.kind == "create"}
    assert set(expected) - {f"{root}/pre"} <= created_by_then
    # The latest data written up to the cut, not later sets.
    for path, data in expected.items():
        written = [op.data for op in upto if op.path == path and op.kind != "delete"]
        assert data == (written[-1] if written else b"before")
    later = {op.path for op in report.ops if op.zxid > middle and op.kind == "create"}
    assert not later & set(expected)


def test_latency_percentiles(zk_hosts: str, root: str) -> None:
    _, report = run(zk_hosts, root, seconds=1.0)
    assert report.failures == []
    p50, p99 = report.percentile(50), report.percentile(99)
    assert 0 < p50 <= p99
    assert report.percentile(0) <= p50 and p99 <= report.percentile(100)
    assert LoadReport(ops=[], failures=[], started=0.0, stopped=0.0).percentile(50) == 0.0
