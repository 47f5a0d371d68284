"""A master's status log (``activity.log``): one line per notable event, newest last, kept small.

The supervisor and the archiver (a process of its own) both append to it; each line is one ``write``
on a file opened for appending, so lines from several processes never interleave. The Exhibitor API
serves its tail (``GET /exhibitor/v1/archive/status``).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import deque
from pathlib import Path

MAX_BYTES = 1 << 20  # then the log moves to activity.log.1 (one old generation kept)


def record(path: Path, message: str) -> None:
    """Append ``<UTC time> <message>``; never raises (a full or missing disk must not stop the caller)."""
    line = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) + " " + " ".join(message.split()) + "\n"
    with contextlib.suppress(OSError):
        if path.exists() and path.stat().st_size > MAX_BYTES:
            os.replace(path, path.with_name(path.name + ".1"))
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


def tail(path: Path, count: int = 50) -> list[str]:
    """The last ``count`` lines, oldest first."""
    try:
        with open(path, errors="replace") as f:
            return [line.rstrip("\n") for line in deque(f, maxlen=count)]
    except OSError:
        return []
