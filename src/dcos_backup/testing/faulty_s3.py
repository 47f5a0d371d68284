"""An S3 endpoint for fault tests: a real HTTP proxy in front of a real moto server, which fails the
requests a test picks (an upload part, an object's PUT) with a 500 while a fault is switched on.

The store under test talks HTTP to it exactly as to S3; nothing in boto3 or in the store is patched.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "proxy-connection"}


class FaultyS3:
    """``FaultyS3(moto_url)``; ``.url`` is its own endpoint; ``.fails`` a predicate on (method, path) or None."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.fails: Callable[[str, str], bool] | None = None
        self.failed = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: object) -> None:
                pass

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if proxy.fails is not None and proxy.fails(self.command, self.path):
                    proxy.failed += 1
                    self._reply(500, {"Content-Type": "application/xml"}, _ERROR)
                    return
                conn = http.client.HTTPConnection(proxy.upstream.netloc, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                    conn.request(self.command, self.path, body=body, headers=headers)
                    reply = conn.getresponse()
                    data = reply.read()
                    kept = {k: v for k, v in reply.getheaders() if k.lower() not in HOP_HEADERS | {"content-length"}}
                    self._reply(reply.status, kept, data)
                finally:
                    conn.close()

            def _reply(self, status: int, headers: dict[str, str], data: bytes) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


_ERROR = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code>'
    b"<Message>injected: the S3 server failed this request</Message></Error>"
)
