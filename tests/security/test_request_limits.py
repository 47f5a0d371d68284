"""Clients without a token cannot take the backup service down (issue 15, items 2 and 3).

Every case runs against the shared cluster's real processes: master 1's backup service on its unix socket,
and the same service behind master 1's Admin Router (Debian's nginx, HTTPS). A huge chunked body is
refused before it is read, whoever sends it (memory: the service's peak RSS, reset before each request,
from /proc); a request that never arrives whole is cut off by a deadline while /health keeps answering;
one client address cannot hold more than its share of the Admin Router's connections.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from tests.helpers import wait_for

from dcos_backup.adminrouter.nginx import PER_CLIENT
from dcos_backup.api.paths import CREATE, HEALTH, MAX_BODY, UPLOAD
from dcos_backup.local import security
from dcos_backup.local.services import admin_router
from dcos_backup.master.processes import read_pid

pytestmark = pytest.mark.e2e

BIG = 16 * 1024 * 1024  # a body 256 times the cap
CHUNK = 64 * 1024
GROWTH_LIMIT = 6 * 1024 * 1024  # "a few MB": the service's peak RSS may grow by this much during a refusal
DOORS = ("socket", "admin_router")


# ------------------------------------------------------------------ the service's memory
def service_pid(cluster) -> int:
    pid = read_pid(Path(cluster.service["child_pid_file"]))
    assert pid is not None, "master 1's backup service is not running"
    return pid


def memory(pid: int, field_name: str) -> int:
    """``VmRSS`` / ``VmHWM`` (peak RSS) of ``pid`` in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field_name} for pid {pid}")


@dataclass
class PeakGrowth:
    pid: int
    before: int = 0
    peak: int = 0

    @property
    def growth(self) -> int:
        return self.peak - self.before


@contextlib.contextmanager
def peak_rss(pid: int) -> Iterator[PeakGrowth]:
    """How far the peak RSS of ``pid`` rises above its RSS at the start (the kernel's peak is reset first)."""
    measured = PeakGrowth(pid)
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
    measured.before = memory(pid, "VmRSS")
    yield measured
    measured.peak = memory(pid, "VmHWM")


# ------------------------------------------------------------------ clients
def token(cluster) -> str:
    return security.login(cluster.files, cluster.zk_hosts, security.BOOTSTRAP_USER)


def tls_context(cluster) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cluster.files.ca_cert))


def client(cluster, door: str, source: str | None = None) -> httpx.Client:
    if door == "socket":
        transport = httpx.HTTPTransport(uds=cluster.service["socket"])
        return httpx.Client(transport=transport, base_url="http://local", timeout=60)
    transport = httpx.HTTPTransport(verify=tls_context(cluster), local_address=source)
    return httpx.Client(transport=transport, base_url=cluster.master(1).admin_router_url, timeout=60)


@dataclass
class Chunks:
    """A chunked body of ``total`` bytes, counting what the client got to send."""

    total: int
    sent: int = 0

    def __iter__(self) -> Iterator[bytes]:
        chunk = b"x" * CHUNK
        while self.sent < self.total:
            self.sent += CHUNK
            yield chunk


def post_chunked(http: httpx.Client, headers: dict[str, str], path: str = CREATE) -> tuple[httpx.Response, float, int]:
    body = Chunks(BIG)
    started = time.monotonic()
    response = http.post(path, content=body, headers=headers)
    return response, time.monotonic() - started, body.sent


def assert_json_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, (response.status_code, response.text[:200])
    assert response.json()["code"] == code and len(response.json()["errors"]) == 1


def served_by_the_service(cluster, marker: str) -> bool:
    """Whether the Admin Router passed the request whose URL holds ``marker`` on to the service."""
    log = admin_router(cluster.files, cluster.master(1).member).access_log
    line = wait_for(lambda: next((line for line in log.read_text().splitlines() if marker in line), None))
    return "upstream=-" not in line


# ------------------------------------------------------------------ item 2: bodies
@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize("path", [CREATE, UPLOAD], ids=["create", "upload"])
def test_huge_chunked_bodies_without_a_token_are_refused_unread(cluster, door, path):
    """Four at once (the issue's four took the service to 1.46 GB); the upload is the route without a cap."""
    pid = service_pid(cluster)
    with client(cluster, door) as http, peak_rss(pid) as rss, ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: post_chunked(http, {}, path), range(4)))
    # The service refuses the token before the body (401); the Admin Router refuses a capped route's body
    # before the token (413), and an unbuffered upload without an Authorization header itself (401).
    expected = (413, "too_large") if (door, path) == ("admin_router", CREATE) else (401, "unauthorized")
    for response, _, _ in answers:
        assert_json_error(response, *expected)
    print(
        f"\n{door} {path.rsplit('/', 1)[1]}: 4 x {BIG >> 20} MiB chunked at once, no token -> "
        f"{expected[0]} in {max(a[1] for a in answers):.2f} s (at most {max(a[2] for a in answers) >> 10} KiB "
        f"sent); service RSS {rss.before >> 20} MiB, peak +{rss.growth / 2**20:.1f} MiB"
    )
    assert rss.growth < GROWTH_LIMIT, f"the service's RSS grew by {rss.growth >> 20} MiB"


@pytest.mark.parametrize("door", DOORS)
def test_a_chunked_body_over_the_cap_with_a_token_is_413(cluster, door):
    pid = service_pid(cluster)
    marker = uuid.uuid4().hex
    with client(cluster, door) as http, peak_rss(pid) as rss:
        http.params = {"probe": marker}
        response, seconds, sent = post_chunked(http, {"Authorization": f"token={token(cluster)}"})
    assert_json_error(response, 413, "too_large")
    assert str(MAX_BODY) in response.json()["errors"][0]
    print(
        f"\n{door}: {BIG >> 20} MiB chunked, with a token -> 413 in {seconds:.2f} s ({sent >> 10} KiB sent); "
        f"service RSS {rss.before >> 20} MiB, peak +{rss.growth / 2**20:.1f} MiB"
    )
    assert rss.growth < GROWTH_LIMIT, f"the service's RSS grew by {rss.growth >> 20} MiB"
    if door == "admin_router":  # refused by the Admin Router itself: the service never saw it
        assert not served_by_the_service(cluster, marker)


# ------------------------------------------------------------------ item 3: slow requests
@dataclass
class HalfSent:
    """A connection that sent its headers (announcing a 1000-byte body) and one byte of the body, then
    nothing; a thread reads whatever the server answers until it closes the connection."""

    sock: socket.socket
    opened: float = field(default_factory=time.monotonic)
    answer: bytes = b""
    closed_after: float | None = None

    def start(self) -> HalfSent:
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self) -> None:
        with contextlib.suppress(OSError):
            while data := self.sock.recv(4096):
                self.answer += data
        self.closed_after = time.monotonic() - self.opened
        self.sock.close()

    @property
    def status(self) -> int | None:
        return int(self.answer.split(b" ", 2)[1]) if self.answer.startswith(b"HTTP/1.1 ") else None


def half_request(authorization: str | None = None) -> bytes:
    head = f"POST {CREATE} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n"
    if authorization:
        head += f"Authorization: {authorization}\r\n"
    return head.encode() + b"\r\n{"


def half_sent_on_socket(cluster, authorization: str | None) -> HalfSent:
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(cluster.service["socket"])
    sock.sendall(half_request(authorization))
    return HalfSent(sock).start()


def half_sent_through_router(cluster, source: str) -> HalfSent:
    host = cluster.master(1).member.host
    raw = socket.create_connection((host, 443), timeout=60, source_address=(source, 0))
    sock = tls_context(cluster).wrap_socket(raw, server_hostname=host)
    sock.sendall(half_request())
    return HalfSent(sock).start()


def health_answers(http: httpx.Client, statuses: list[int]) -> bool:
    statuses.append(http.get(HEALTH).status_code)
    return statuses[-1] == 200


def test_half_sent_requests_are_cut_off_while_health_answers(cluster):
    """50 connections on the service's socket send headers and one byte of a 1000-byte body: those
    without a token are answered 401 at once, those with one 408 at the deadline; /health answers all along."""
    authorization = f"token={token(cluster)}"
    held = [half_sent_on_socket(cluster, None if i % 2 else authorization) for i in range(50)]
    statuses: list[int] = []
    with client(cluster, "socket") as http:
        wait_for(
            lambda: health_answers(http, statuses) and all(h.closed_after is not None for h in held),
            timeout=90,
            what="every half-sent request to be cut off",
        )
        assert health_answers(http, statuses)  # and after
    assert set(statuses) == {200}, statuses
    without, with_token = held[1::2], held[::2]
    assert {h.status for h in without} == {401} and all(b'"unauthorized"' in h.answer for h in without)
    assert {h.status for h in with_token} == {408} and all(b'"request_timeout"' in h.answer for h in with_token)
    print(
        f"\nsocket: 25 half-sent requests without a token closed after at most "
        f"{max(h.closed_after for h in without):.2f} s, 25 with one after "
        f"{min(h.closed_after for h in with_token):.1f}-{max(h.closed_after for h in with_token):.1f} s; "
        f"/health answered 200 {len(statuses)} times meanwhile"
    )


def test_one_address_cannot_hold_the_admin_routers_connections(cluster):
    """One client address opens more half-sent requests than its share: the rest are refused at once (429,
    JSON), another address is served all along, and the held ones end at the Admin Router's body timeout."""
    attacker, other = f"{cluster.subnet}.201", f"{cluster.subnet}.202"
    extra = 6
    held = [half_sent_through_router(cluster, attacker) for _ in range(PER_CLIENT + extra)]
    statuses: list[int] = []
    with client(cluster, "admin_router", source=other) as http:
        refused = wait_for(
            lambda: (health_answers(http, statuses) and [h for h in held if h.status == 429]) or None,
            timeout=60,
            what=f"{extra} connections over the per-address limit to be refused",
        )
        assert len(refused) == extra and all(b'"too_many_requests"' in h.answer for h in refused)
        wait_for(
            lambda: health_answers(http, statuses) and all(h.closed_after is not None for h in held),
            timeout=90,
            what="every held connection to be closed",
        )
    with client(cluster, "admin_router", source=attacker) as http:
        assert http.get(HEALTH).status_code == 200  # the attacker's address is served again
    assert set(statuses) == {200}, statuses
    kept = [h for h in held if h.status != 429]
    print(
        f"\nAdmin Router: {len(held)} half-sent requests from one address, {len(refused)} refused 429; "
        f"the others closed after {min(h.closed_after for h in kept):.1f}-{max(h.closed_after for h in kept):.1f} s"
    )
