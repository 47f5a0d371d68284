"""ZooKeeper's four-letter words (``srvr``, ``mntr``, ``ruok``): one plain command on the client port.

The server must allow them (``4lw.commands.whitelist=*``, which dcos-exhibitor's ``zoo.cfg`` sets).
"""

from __future__ import annotations

import socket


def four_letter_word(host: str, port: int, word: str = "srvr", timeout: float = 1.0) -> str:
    """Send a 4lw command and return the whole reply; raises OSError when unreachable."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(word.encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")
