"""Member state as Exhibitor reports it, found with ZooKeeper's own ``srvr`` four-letter word.

Codes and descriptions are Exhibitor's: 0 ``latent``, 1 ``down``, 2 ``not serving``, 3 ``serving``.
A member that cannot be reached is ``down``; it is never left out of the list.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from dcos_backup.master.fourlw import four_letter_word
from dcos_backup.master.member import Member

LATENT, DOWN, NOT_SERVING, SERVING = 0, 1, 2, 3
DESCRIPTIONS = {LATENT: "latent", DOWN: "down", NOT_SERVING: "not serving", SERVING: "serving"}


@dataclass(frozen=True)
class MemberStatus:
    """One entry of ``GET /exhibitor/v1/cluster/status``."""

    code: int
    description: str
    hostname: str
    isLeader: bool

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def status_from_srvr(reply: str | None) -> tuple[int, bool]:
    """Map a ``srvr`` reply (None = unreachable) to (code, is_leader)."""
    if reply is None:
        return DOWN, False
    mode = ""
    for line in reply.splitlines():
        if line.startswith("Mode:"):
            mode = line.split(":", 1)[1].strip()
    if mode in ("leader", "follower", "observer", "standalone"):
        return SERVING, mode in ("leader", "standalone")
    return NOT_SERVING, False


def member_status(member: Member, timeout: float = 1.0) -> MemberStatus:
    try:
        reply: str | None = four_letter_word(member.host, member.client_port, "srvr", timeout)
    except OSError:
        reply = None
    code, leader = status_from_srvr(reply)
    return MemberStatus(code, DESCRIPTIONS[code], member.host, leader)


def cluster_status(members: tuple[Member, ...] | list[Member], timeout: float = 1.0) -> list[MemberStatus]:
    """Status of every member, asked in parallel, in member order."""
    with ThreadPoolExecutor(max_workers=max(1, len(members))) as pool:
        return list(pool.map(lambda m: member_status(m, timeout), members))


def is_healthy(statuses: list[MemberStatus]) -> bool:
    """All members serving and exactly one leader: what the seed calls a successful restore."""
    return all(s.code == SERVING for s in statuses) and sum(s.isLeader for s in statuses) == 1
