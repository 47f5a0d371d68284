"""Riding over ZooKeeper faults: how long an operation keeps trying after it lost ZooKeeper, and how it waits.

A leader change (a rolling upgrade, a long GC pause) or the loss of the member a session is on is routine
for a ZooKeeper ensemble: the other members elect a leader again within seconds. The engine's reads and
writes reconnect to any member and go on from where they were (the reader resumes after the last node it
handed out, the writer settles the batches whose fate it did not learn). Each operation keeps one
:class:`Outage` that bounds the time without progress to ``ZkSpec.max_outage`` (2 minutes by default),
after which ZooKeeperUnavailable says what was being done and why it could not go on.

When nothing listens on any member at all before the operation ever had a session, it fails at once:
ZooKeeper is down, and a caller (the service answering a request) must say so now, not in two minutes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from dcos_backup.errors import ZooKeeperUnavailable
from dcos_backup.logical.spec import ZkSpec

T = TypeVar("T")
BACKOFF = (0.0, 0.2, 0.5, 1.0, 2.0)  # seconds before each new attempt; the last one repeats


class Outage:
    """The faults of one operation: since when it has been without ZooKeeper, and how often it retried."""

    def __init__(self, spec: ZkSpec, what: str) -> None:
        self.limit = spec.max_outage
        self.what = what  # "reading /marathon": what a give-up message says was going on
        self.since: float | None = None  # start of the current outage; None while things work
        self.attempts = 0  # retries in the current outage
        self.connected = False  # whether the operation ever had a session
        self.reconnects = 0  # sessions opened again after a fault, over the whole operation

    def connected_now(self) -> None:
        """A session (set) is open; if it replaces one lost to a fault, that counts as a reconnect."""
        if self.connected:
            self.reconnects += 1
        self.connected = True

    def recovered(self) -> None:
        """The operation made progress: the next fault starts a new outage with a full budget."""
        self.since = None
        self.attempts = 0

    def wait(self, exc: ZooKeeperUnavailable) -> None:
        """After ``exc``: return when it is time to try again, or raise when there is no point any more."""
        now = time.monotonic()
        if not self.connected and exc.details.get("members_up") == 0:
            raise exc  # nothing listens anywhere: ZooKeeper is down, say so now
        if self.since is None:
            self.since = now
        waited = now - self.since
        if waited >= self.limit:
            raise ZooKeeperUnavailable(
                f"gave up {self.what} after {waited:.0f}s without a working ZooKeeper session: {exc}"
            ) from exc
        delay = BACKOFF[min(self.attempts, len(BACKOFF) - 1)]
        self.attempts += 1
        time.sleep(min(delay, self.limit - waited))


def retrying(outage: Outage, attempt: Callable[[], T]) -> T:
    """``attempt()`` (which opens its own sessions) until it returns, riding over ZooKeeperUnavailable."""
    while True:
        try:
            result = attempt()
        except ZooKeeperUnavailable as exc:
            outage.wait(exc)
            continue
        outage.recovered()
        return result
