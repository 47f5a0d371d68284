"""How the ``dcos`` commands print: DC/OS CLI's tables and times, and JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

import click


def human_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def dcos_time(timestamp: str) -> str:
    """RFC 3339 as the DC/OS CLI prints times: ``2019-03-18 23:15:47.639999 +0000 UTC``."""
    return datetime.fromisoformat(timestamp).strftime("%Y-%m-%d %H:%M:%S.%f %z UTC")


def print_json(doc: object) -> None:
    click.echo(json.dumps(doc, indent=2))


def print_result(doc: object, as_json: bool, line: str) -> None:
    """A command's result: the API's document with ``--json``, else one line for a person."""
    if as_json:
        print_json(doc)
    else:
        click.echo(line)


def print_table(columns: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    """Left-aligned columns two spaces apart, as the DC/OS CLI prints its tables."""
    widths = [max(len(cell) for cell in column) for column in zip(columns, *rows, strict=True)]
    for line in (columns, *rows):
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
