"""One ZooKeeper ensemble member as every other member sees it: its id, host and ports."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Member:
    """One ensemble member, with the ports a DC/OS master uses."""

    id: int
    host: str
    client_port: int = 2181
    quorum_port: int = 2888
    election_port: int = 3888
    exhibitor_port: int = 8181

    @property
    def client_address(self) -> str:
        return f"{self.host}:{self.client_port}"

    @property
    def exhibitor_url(self) -> str:
        return f"http://{self.host}:{self.exhibitor_port}"
