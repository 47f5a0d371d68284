"""The tables the console scripts print (rich), so that the same thing looks the same in every tool."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from dcos_backup.exhibitor.status import MemberStatus


def print_status_table(title: str, statuses: list[MemberStatus], supervisors: list[str] | None = None) -> None:
    """Each member's Exhibitor status under ``title`` (``dcos-local status``, ``dcos-exhibitor status``)."""
    table = Table(title=title)
    for column in ("master", "host", "code", "state", "leader", *(["supervisor"] if supervisors else [])):
        table.add_column(column)
    for n, s in enumerate(statuses, start=1):
        row = [str(n), s.hostname, str(s.code), s.description, "yes" if s.isLeader else ""]
        table.add_row(*row, *([supervisors[n - 1]] if supervisors else []))
    Console().print(table)
