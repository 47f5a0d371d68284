"""What every console script shares: running a click command so that errors are one line.

``run(command)`` maps :class:`~dcos_backup.errors.DcosBackupError` to its exit code, click usage
errors to exit 2, Ctrl-C to 130, and anything unexpected to one line plus exit 1 (a traceback only
with ``DCOS_BACKUP_DEBUG=1``).
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from typing import NoReturn, TextIO

import click

from dcos_backup.errors import DcosBackupError


def fail(message: str, exit_code: int = 1) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(exit_code)


def run(command: click.Command, args: list[str] | None = None) -> NoReturn:
    """Run ``command`` like click's standalone mode, but with one-line errors."""
    try:
        rv = command.main(args=args, standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        hint = ""
        if exc.ctx is not None:
            hint = f" (see '{exc.ctx.command_path} --help')"
        fail(f"{exc.format_message()}{hint}", exc.exit_code)
    except click.ClickException as exc:
        fail(exc.format_message(), exc.exit_code)
    except (click.Abort, KeyboardInterrupt):
        fail("interrupted", 130)
    except DcosBackupError as exc:
        fail(str(exc), exc.exit_code)
    except BrokenPipeError:
        sys.exit(1)
    except Exception as exc:  # a bug: still one line, unless asked for more
        if os.environ.get("DCOS_BACKUP_DEBUG"):
            traceback.print_exc()
        fail(f"internal error: {type(exc).__name__}: {exc} (set DCOS_BACKUP_DEBUG=1 for a traceback)")
    sys.exit(rv if isinstance(rv, int) else 0)


def setup_logging(verbose: bool, stream: TextIO | None = None) -> None:
    """``-v`` logs each step (INFO) to stderr; without it only warnings."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=stream or sys.stderr,
    )
