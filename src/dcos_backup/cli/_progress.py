"""A live progress line on stderr for long work (counts, bytes, rate), shown only when stderr is a terminal.

Piped or redirected, nothing is printed: scripts read the final result line (or ``--json``) alone.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from dcos_backup.cli.output import human_bytes

ProgressCallback = Callable[..., None]


@contextlib.contextmanager
def progress_on_terminal(unit: str, force: bool | None = None) -> Iterator[ProgressCallback]:
    """Yields ``update(phase, count, nbytes=None)``: shows e.g. ``extracting: 12 files, 80.0 MiB, 41.2 MiB/s``."""
    if not (sys.stderr.isatty() if force is None else force):
        yield lambda *_, **__: None
        return
    started = time.monotonic()
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("starting")

        def update(phase: str, count: int, nbytes: int | None = None) -> None:
            rate_of = max(time.monotonic() - started, 1e-3)
            text = f"{phase}: {count} {unit}"
            if nbytes is not None:
                text += f", {human_bytes(nbytes)}, {human_bytes(nbytes / rate_of)}/s"
            else:
                text += f", {count / rate_of:.0f}/s"
            bar.update(task, description=text)

        yield update
