"""Which instance of the backup service leads: the one whose ephemeral znode ``/dcos-backup/leader`` exists.

DC/OS runs the service on every master; exactly one of them may run jobs and schedules. The leader holds
the znode (JSON: its instance name and the URL where it takes job requests, its master's Admin Router);
the others watch it, answer reads from the shared catalog, and forward job requests to that URL
(:mod:`dcos_backup.api.forward`). When the leader's ZooKeeper session ends (its process or master died),
the znode goes and the first follower to create it leads: within the session timeout (15 s) of the death.

Why one plain znode, not kazoo's Election (a queue of sequential nodes): a leader that is restarted on
its master (systemd, dcos-local's supervisor) finds its own znode, left by its dead process's session,
and takes it over in one transaction (delete that version + create), so leadership stays where it was
and no other master sees a gap. With a queue, the restarted instance would go to the back of it.

A leader that loses its session (LOST) stops leading at once, and so does one whose znode went away
or now belongs to another instance: it says so, and its :class:`~.fencing.Fence` is revoked. While only
disconnected (SUSPENDED) it goes on: its session, and so its znode, may still live; its jobs' writes are
conditional on the fence anyway (:mod:`.fencing`), so a leader that does not know yet that it was
replaced changes nothing. Taking leadership raises the epoch znode in the same transaction.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import KazooException, NodeExistsError, NoNodeError

from dcos_backup.jobs.fencing import EPOCH_PATH, LEADER_PATH, Fence
from dcos_backup.jobs.runner import attempt

log = logging.getLogger(__name__)

__all__ = ["LEADER_PATH", "Leader", "Leadership"]
RETRY = 2.0  # seconds before trying again after a ZooKeeper error


@dataclass(frozen=True)
class Leader:
    """What the leader's znode says."""

    instance: str
    url: str | None  # where it takes job requests (its master's Admin Router); None: forwarding impossible

    def encode(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def decode(cls, data: bytes) -> Leader | None:
        try:
            doc = json.loads(data)
            return cls(instance=str(doc["instance"]), url=doc.get("url"))
        except (ValueError, KeyError, TypeError):
            return None


class Leadership:
    """Contends for leadership on ``client`` as ``me``; calls ``on_lead()`` when this instance starts
    leading and ``on_follow()`` when it stops (both in its own thread, never at the same time).
    :attr:`is_leader` turns true once ``on_lead()`` has returned (the recovery of interrupted jobs)."""

    def __init__(
        self,
        client: KazooClient,
        me: Leader,
        on_lead: Callable[[], None],
        on_follow: Callable[[], None],
    ) -> None:
        self.client = client
        self.me = me
        self._on_lead = on_lead
        self._on_follow = on_follow
        self._leading = False
        self._fence: Fence | None = None
        self._changed = threading.Event()
        self._stop = threading.Event()
        self._lost = threading.Event()
        self._settled = threading.Event()  # the first round of contending is over
        self._thread: threading.Thread | None = None

    @property
    def is_leader(self) -> bool:
        return self._leading

    @property
    def fence(self) -> Fence | None:
        """The leadership this instance holds, for its jobs' writes (None: it does not lead)."""
        fence = self._fence
        return fence if fence is not None and not fence.revoked.is_set() else None

    def leader(self) -> Leader | None:
        """The current leader as ZooKeeper says (None: none, or ZooKeeper cannot be asked now)."""
        if self._leading:
            return self.me
        if not self.client.connected:
            return None
        try:
            data, _ = self.client.get(LEADER_PATH)
        except (NoNodeError, KazooException):
            return None
        return Leader.decode(data)

    # ---------------------------------------------------------------- lifecycle
    def start(self, settle: float = 30.0) -> None:
        """Contend in the background; return once the first round is over (leading, with ``on_lead`` done,
        or following), or after ``settle`` seconds, so that a request right after start-up is served."""
        self.client.add_listener(self._on_state)
        self._thread = threading.Thread(target=self._loop, name="leadership", daemon=True)
        self._thread.start()
        self._settled.wait(settle)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop contending; a leader steps down (its znode goes, so another instance takes over at once)."""
        self._stop.set()
        self._changed.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.client.remove_listener(self._on_state)
        if self._fence is not None:
            self._step_down("this service stops")
            attempt(self._give_up, "giving up the leadership")

    def _give_up(self) -> None:
        """Delete the leader's znode if it is this session's, so that a follower takes over at once."""
        _, stat = self.client.get(LEADER_PATH)
        if self.client.client_id and stat.ephemeralOwner == self.client.client_id[0]:
            self.client.delete(LEADER_PATH, version=stat.version)

    def _on_state(self, state: str) -> None:
        if state == KazooState.LOST:
            self._lost.set()
        self._changed.set()

    # ---------------------------------------------------------------- the loop
    def _loop(self) -> None:
        while not self._stop.is_set():
            self._changed.clear()
            if self._lost.is_set():
                self._lost.clear()
                if self._fence is not None:
                    self._step_down("its ZooKeeper session expired")
            if self.client.connected:
                try:
                    fence = self._contend()
                except KazooException as exc:
                    log.warning("leadership: ZooKeeper error (%s); trying again", type(exc).__name__)
                    self._changed.wait(RETRY)
                    continue
                if self._fence is not None and fence is not self._fence:
                    self._step_down(
                        "its leadership znode went away" if fence is not None else "another instance leads now"
                    )
                if fence is not None and self._fence is None:
                    log.info("this service (%s) leads: it runs the jobs and the schedules", self.me.instance)
                    self._fence = fence  # recovery's writes are fenced too
                    attempt(self._on_lead, "taking up the leadership")
                    self._leading = True  # only now: recovery is over before a job request is taken
                self._settled.set()
            self._changed.wait(RETRY if not self.client.connected else None)

    def _contend(self) -> Fence | None:
        """Lead if nobody does, or if the leader's znode is this instance's own from a dead session;
        otherwise watch the znode (a change wakes the loop). The fence of the leadership this instance
        holds now (the same object while it keeps it), or None."""
        try:
            data, stat = self.client.get(LEADER_PATH, watch=self._wake)
        except NoNodeError:
            try:
                return self._take(None)
            except NodeExistsError:
                return self._contend()
        mine = self.client.client_id[0] if self.client.client_id else None
        current = self._fence
        if stat.ephemeralOwner == mine and current is not None and current.leader_version == stat.version:
            return current
        holder = Leader.decode(data)
        if holder is not None and holder.instance == self.me.instance:
            fence = self._take(stat.version)
            if fence is not None:
                log.info("took over the leadership this service's previous process held")
                return fence
        if current is None:
            log.info("following the leader %s", holder.instance if holder else "(unreadable)")
        return None

    def _take(self, stale_version: int | None) -> Fence | None:
        """Create the leader's znode (deleting this instance's stale one of ``stale_version``, if given) and
        raise the epoch, in one transaction: the new fence, or None if another change came first."""
        self.client.ensure_path(EPOCH_PATH)
        transaction = self.client.transaction()
        if stale_version is not None:
            transaction.delete(LEADER_PATH, version=stale_version)
        transaction.create(LEADER_PATH, self.me.encode(), ephemeral=True)
        transaction.set_data(EPOCH_PATH, self.me.instance.encode())
        results = transaction.commit()
        failed = [r for r in results if isinstance(r, Exception)]
        if failed:
            if stale_version is None and isinstance(failed[0], NodeExistsError):
                raise failed[0]
            return None
        epoch = results[-1]
        self.client.get(LEADER_PATH, watch=self._wake)  # a later deletion wakes the loop
        return Fence(self.me.instance, leader_version=0, epoch=epoch.version)

    def _wake(self, _event: object) -> None:
        self._changed.set()

    def _step_down(self, why: str) -> None:
        self._leading = False
        if self._fence is not None:
            self._fence.revoked.set()  # the running job stops at its next write or check
            self._fence = None
        log.warning("this service no longer leads: %s", why)
        attempt(self._on_follow, "stepping down")
