"""Durations as people type them: ``90s``, ``30m``, ``12h``, ``7d``, ``2w`` (token lifetimes, retention windows)."""

from __future__ import annotations

import re
from datetime import timedelta

from dcos_backup.errors import UsageError

_DURATION_RE = re.compile(r"^(\d{1,9})([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_SECONDS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str, what: str = "duration") -> timedelta:
    """``90s``, ``30m``, ``1h``, ``5d``, ``2w`` -> a positive timedelta; UsageError naming ``what`` otherwise."""
    match = _DURATION_RE.match(text.strip()) if isinstance(text, str) else None
    if not match or int(match.group(1)) == 0:
        raise UsageError(f"invalid {what} {text!r}: a number and s, m, h, d or w, like 1h or 7d")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def format_duration(delta: timedelta) -> str:
    """The shortest text :func:`parse_duration` reads back as ``delta`` (whole seconds)."""
    seconds = int(delta.total_seconds())
    for unit, size in _SECONDS.items():
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return "0s"
