"""The merge and the planner (dcos_backup.logical.merge) on their own: steps and operations, no server."""

from __future__ import annotations

from kazoo.protocol.serialization import Create, Delete, SetACL, SetData
from kazoo.protocol.states import ZnodeStat
from kazoo.security import OPEN_ACL_UNSAFE, make_acl

from dcos_backup.logical import ApplyStats, OpLog, ZNode, path_key
from dcos_backup.logical.merge import Planner, RaiseCounter, child_counter, merge_steps

OPEN = tuple(OPEN_ACL_UNSAFE)
LOCKED = (make_acl("digest", "alice:x", all=True),)


def stat(cversion=0, children=0):
    return ZnodeStat(0, 0, 0, 0, 0, cversion, 0, 0, 0, children, 0)


def nodes(*specs):
    """``("/a", b"data")`` or ``("/a", b"data", acl, stat)`` -> ZNodes in pre-order."""
    built = [ZNode(s[0], s[1], s[2] if len(s) > 2 else OPEN, s[3] if len(s) > 3 else None) for s in specs]
    return sorted(built, key=lambda n: path_key(n.path))


class Recorder:
    def __init__(self):
        self.ops, self.ticks = [], 0

    def add(self, op):
        self.ops.append(op)

    def tick(self):
        self.ticks += 1


def plan(live, wanted):
    sink, stats = Recorder(), ApplyStats()
    planner = Planner(sink, lambda p: "/chroot" + p, stats)
    for step in merge_steps(iter(live), wanted):
        planner.feed(step)
    planner.finish()
    return sink, stats


def describe(ops):
    names = {Create: "create", Delete: "delete", SetData: "set", SetACL: "acl", RaiseCounter: "raise"}
    return [
        (names[type(op)], op.path, getattr(op, "creates", None))
        if type(op) is RaiseCounter
        else (names[type(op)], op.path)
        for op in ops
    ]


def test_steps_are_in_pre_order_and_deletes_come_out_children_first():
    live = nodes(
        ("/t", b""), ("/t/a", b"1"), ("/t/gone", b""), ("/t/gone/x", b""), ("/t/gone/x/y", b""), ("/t/gone/z", b"")
    )
    wanted = nodes(("/t", b""), ("/t/a", b"2"), ("/t/new", b""), ("/t/new/k", b""))
    steps = [(s.op, s.path) for s in merge_steps(iter(live), wanted)]
    assert steps == [
        ("unchanged", "/t"),
        ("update", "/t/a"),
        ("delete", "/t/gone"),
        ("delete", "/t/gone/x"),
        ("delete", "/t/gone/x/y"),
        ("delete", "/t/gone/z"),
        ("create", "/t/new"),
        ("create", "/t/new/k"),
    ]
    sink, stats = plan(live, wanted)
    assert describe(sink.ops) == [
        ("set", "/chroot/t/a"),
        ("delete", "/chroot/t/gone/x/y"),
        ("delete", "/chroot/t/gone/x"),
        ("delete", "/chroot/t/gone/z"),
        ("delete", "/chroot/t/gone"),
        ("create", "/chroot/t/new"),
        ("create", "/chroot/t/new/k"),
    ]
    assert (stats.created, stats.updated, stats.deleted, stats.unchanged) == (2, 1, 4, 1)
    assert sink.ticks == 1


def test_an_acl_that_locks_us_out_is_set_when_the_merge_leaves_the_subtree():
    wanted = nodes(("/t", b""), ("/t/s", b"", LOCKED), ("/t/s/in", b""), ("/t/z", b""))
    sink, _ = plan([], wanted)
    assert describe(sink.ops) == [
        ("create", "/chroot/t"),
        ("create", "/chroot/t/s"),
        ("create", "/chroot/t/s/in"),
        ("acl", "/chroot/t/s"),
        ("create", "/chroot/t/z"),
    ]
    assert sink.ops[1].acl == list(OPEN) and sink.ops[3].acls == list(LOCKED)


def test_child_counter_from_a_stat():
    assert child_counter(None) == 0
    assert child_counter(stat(cversion=90, children=10)) == 50  # 50 creates, 40 deletes
    assert child_counter(stat(cversion=90, children=-1)) == 90  # an archive without numChildren: upper bound


def test_counters_are_raised_by_what_our_creates_leave_missing_then_the_acl_is_set():
    wanted = nodes(
        ("/q", b"", LOCKED, stat(cversion=90, children=2)),  # 46 creates in its past
        ("/q/item-0000000044", b""),
        ("/q/item-0000000045", b""),
        ("/r", b"", OPEN, stat(cversion=2, children=2)),  # exactly what restoring its children gives
        ("/r/a", b""),
        ("/r/b", b""),
    )
    sink, stats = plan([], wanted)
    assert describe(sink.ops)[3:5] == [("raise", "/chroot/q", 44), ("acl", "/chroot/q")]
    assert (stats.counters, stats.counter_children) == (1, 44)
    assert "raise" not in [d[0] for d in describe(sink.ops)[5:]]


def test_a_live_counter_that_is_high_enough_is_left_alone():
    live = nodes(("/q", b"", OPEN, stat(cversion=400, children=0)))
    wanted = nodes(("/q", b"", OPEN, stat(cversion=90, children=10)))
    sink, stats = plan(live, wanted)
    assert sink.ops == [] and stats.unchanged == 1 and stats.counters == 0
    low = nodes(("/q", b"", OPEN, stat(cversion=6, children=2)))  # counter 4 live, 50 wanted
    sink, stats = plan(low, wanted)
    assert describe(sink.ops) == [("raise", "/chroot/q", 46)] and stats.unchanged == 1


def test_an_op_log_replays_every_kind_of_operation_as_planned():
    big = b"\xff" * 300_000  # several reads of the log's file per op
    ops = [
        Create("/c/a", big, list(LOCKED), 0),
        SetData("/c/b", b"", -1),
        Delete("/c/d", -1),
        SetACL("/c/a", list(LOCKED), -1),
        RaiseCounter("/c", 7),
    ] * 3
    with OpLog() as log:
        for op in ops:
            log.add(op)
        assert log.count == len(ops)
        assert list(log) == ops
        assert list(log) == ops  # replayable: a catch-up or a retry reads it again
