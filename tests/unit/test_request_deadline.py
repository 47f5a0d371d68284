"""The service's deadline for a whole request (``api/server.py``), on a real uvicorn and a real unix
socket, with the deadlines shortened: what must arrive in time is the request, never its serving, and an
upload is bounded by the gaps between its chunks, not by its length."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from tests.helpers import wait_for

from dcos_backup.api import server
from dcos_backup.api.paths import UPLOAD

DEADLINE = 1.0
UPLOAD_IDLE = 3.0


async def app(scope, receive, send) -> None:
    """Reads the whole body and answers its size; ``/slow`` first takes three deadlines to answer."""
    if scope["type"] != "http":
        return
    size, more = 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    if scope["path"] == "/slow":
        await asyncio.sleep(3 * DEADLINE)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": str(size).encode()})


@pytest.fixture
def sock(tmp_path, monkeypatch) -> Iterator[str]:
    monkeypatch.setattr(server, "REQUEST_TIMEOUT", DEADLINE)
    monkeypatch.setattr(server, "UPLOAD_IDLE", UPLOAD_IDLE)
    path = str(tmp_path / "api.sock")
    config = uvicorn.Config(app, uds=path, http=server.RequestDeadlineProtocol, log_level="warning", lifespan="off")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    wait_for(lambda: running.started, timeout=30, what="uvicorn to start")
    yield path
    running.should_exit = True
    thread.join(30)


def connect(path: str) -> socket.socket:
    conn = socket.socket(socket.AF_UNIX)
    conn.settimeout(60)
    conn.connect(path)
    return conn


def until_closed(conn: socket.socket) -> bytes:
    answer = b""
    with contextlib.suppress(OSError):
        while data := conn.recv(4096):
            answer += data
    return answer


def test_a_request_missing_its_body_is_answered_408_at_the_deadline(sock):
    conn = connect(sock)
    conn.sendall(b"POST /create HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
    started = time.monotonic()
    answer = until_closed(conn)
    assert answer.startswith(b"HTTP/1.1 408 ") and b'"code": "request_timeout"' in answer
    assert time.monotonic() - started >= DEADLINE * 0.9


def test_serving_has_no_deadline_and_a_kept_alive_connection_gets_a_new_one(sock):
    with httpx.Client(transport=httpx.HTTPTransport(uds=sock), base_url="http://local", timeout=60) as http:
        assert http.post("/slow", content=b"abc").text == "3"  # served for three deadlines: not cut
        assert http.post("/again", content=b"abcd").text == "4"  # the same connection, a fresh deadline


def test_an_upload_may_take_longer_than_the_deadline_but_not_pause_longer_than_its_idle_limit(sock):
    def chunks() -> Iterator[bytes]:
        until = time.monotonic() + 3 * DEADLINE
        while time.monotonic() < until:
            yield b"x" * 1000
            time.sleep(DEADLINE / 10)

    with httpx.Client(transport=httpx.HTTPTransport(uds=sock), base_url="http://local", timeout=60) as http:
        assert int(http.post(UPLOAD, content=chunks()).text) > 0
    conn = connect(sock)
    conn.sendall(f"POST {UPLOAD} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n".encode())
    started = time.monotonic()
    answer = until_closed(conn)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - started >= UPLOAD_IDLE * 0.9


def test_a_connection_that_sends_nothing_is_closed(sock):
    conn = connect(sock)
    conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # half a header, then nothing
    assert until_closed(conn) == b""
