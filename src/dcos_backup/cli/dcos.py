"""``dcos backup ...``: the DC/OS Enterprise CLI's backup commands, over DC/OS's Backup and Restore API.

The cluster is found by :mod:`.endpoint` (``--url``/``--token``, ``DCOS_URL``/``DCOS_ACS_TOKEN``/
``DCOS_SSL_VERIFY``, else the local cluster); every request goes through the cluster's Admin Router.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import NoReturn

import click

from dcos_backup import __version__
from dcos_backup.catalog.ids import validate_label
from dcos_backup.cli._common import run
from dcos_backup.cli.endpoint import resolve_endpoint
from dcos_backup.errors import DcosBackupError
from dcos_backup.service.client import BackupClient, backup_finished, restore_of

INFO = "Create, list, show, restore, delete, download and upload backups of the cluster's state"
LIST_COLUMNS = ("BACKUP ID", "VERSION", "STATUS", "TIMESTAMP", "LABEL", "SIZE")


class OperationFailed(DcosBackupError):
    """A job the CLI waited for ended in STATUS_ERROR (exit 1)."""


def print_and_exit(text: str):
    def callback(ctx: click.Context, _: click.Parameter, value: bool) -> None:
        if value and not ctx.resilient_parsing:
            click.echo(text)
            ctx.exit()

    return callback


@click.group(help="DC/OS command line (the backup commands of the Enterprise CLI).")
def cli() -> None:
    pass


@cli.group(help=f"{INFO} (DC/OS's Backup and Restore API, through the cluster's Admin Router).")
@click.option("--url", help="The cluster's URL (default: $DCOS_URL, else the local cluster's master 1).")
@click.option("--token", help="Authentication token (default: $DCOS_ACS_TOKEN); dcos-local iam login prints one.")
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=print_and_exit(__version__))
@click.option("--info", is_flag=True, expose_value=False, is_eager=True, callback=print_and_exit(INFO))
@click.pass_context
def backup(ctx: click.Context, url: str | None, token: str | None) -> None:
    ctx.obj = lambda: BackupClient(resolve_endpoint(url, token))


def client_of(ctx: click.Context) -> BackupClient:
    return ctx.obj()


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(size)


def dcos_time(timestamp: str) -> str:
    """RFC 3339 as the DC/OS CLI prints times: ``2019-03-18 23:15:47.639999 +0000 UTC``."""
    return datetime.fromisoformat(timestamp).strftime("%Y-%m-%d %H:%M:%S.%f %z UTC")


def print_json(doc: object) -> None:
    click.echo(json.dumps(doc, indent=2))


def print_table(columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """Left-aligned columns two spaces apart, as the DC/OS CLI prints its tables."""
    widths = [max(len(cell) for cell in column) for column in zip(columns, *rows, strict=True)]
    for line in (columns, *rows):
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())


def wait_with_progress(client: BackupClient, backup_id: str, what: str, done, status_of) -> dict:
    """Wait for a job, with a spinner on a terminal (only there: rich is loaded only when it shows)."""
    if not sys.stderr.isatty():
        return client.wait(backup_id, done)
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console, transient=True
    ) as progress:
        task = progress.add_task(what, total=None)

        def update(doc: dict) -> None:
            info = doc.get("progress") or {}
            detail = f" - {info.get('phase')}: {info.get('nodes', 0)} znodes" if info.get("phase") else ""
            progress.update(task, description=f"{what}: {status_of(doc)}{detail}")

        return client.wait(backup_id, done, update)


@backup.command()
@click.option("--label", required=True, help="3-25 characters of [A-Za-z0-9_.-], the first two of [A-Za-z0-9_].")
@click.option("--wait", is_flag=True, help="Wait until the backup is STATUS_READY (exit 1 on STATUS_ERROR).")
@click.pass_context
def create(ctx: click.Context, label: str, wait: bool) -> None:
    """Create a backup of the cluster's components; prints its id."""
    validate_label(label)
    with client_of(ctx) as client:
        backup_id = client.create(label)["id"]
        click.echo(backup_id)
        if wait:
            what = f"backing up {backup_id}"
            doc = wait_with_progress(client, backup_id, what, backup_finished, lambda d: d["status"])
            click.echo(f"{backup_id}: {doc['status']} ({human_size(doc.get('size', 0))})", err=True)
            if doc["status"] != "STATUS_READY":
                raise OperationFailed(f"backup {backup_id} failed: {doc.get('reason')}")


@backup.command("list")
@click.argument("prefix", required=False, default="")
@click.option("--json", "as_json", is_flag=True, help="Print the API's list of backups (BackupMetadata) as JSON.")
@click.pass_context
def list_cmd(ctx: click.Context, prefix: str, as_json: bool) -> None:
    """List backups, optionally only those whose id starts with PREFIX (a label, say)."""
    with client_of(ctx) as client:
        docs = client.list(prefix)
    if as_json:
        print_json(docs)
        return
    rows = [
        (d["id"], d["dcos_version"], d["status"], dcos_time(d["timestamp"]), d["label"], human_size(d["size"]))
        for d in docs
    ]
    print_table(LIST_COLUMNS, rows)


@backup.command()
@click.argument("backup_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the default: the backup's BackupMetadata).")
@click.pass_context
def show(ctx: click.Context, backup_id: str, as_json: bool) -> None:
    """Show one backup as JSON: DC/OS's keys first; restores[-1].component_status.marathon follows a restore."""
    with client_of(ctx) as client:
        print_json(client.show(backup_id))


@backup.command()
@click.argument("backup_id")
@click.pass_context
def delete(ctx: click.Context, backup_id: str) -> None:
    """Delete a backup."""
    with client_of(ctx) as client:
        client.delete(backup_id)
    click.echo(f"deleted {backup_id}")


@backup.command()
@click.argument("backup_id")
@click.option("--wait", is_flag=True, help="Wait until the restore ends (exit 1 on STATUS_ERROR).")
@click.pass_context
def restore(ctx: click.Context, backup_id: str, wait: bool) -> None:
    """Restore a backup (a safety backup of the current state is taken first); prints the restore's id."""
    with client_of(ctx) as client:
        restore_id = client.restore(backup_id)["id"]
        click.echo(restore_id)
        if wait:

            def status(doc: dict) -> str | None:
                return restore_of(doc, restore_id).get("status")

            doc = wait_with_progress(
                client, backup_id, f"restoring {backup_id}", lambda d: status(d) != "STATUS_RESTORING", status
            )
            click.echo(f"{backup_id}: restore {restore_id} {status(doc)}", err=True)
            if status(doc) != "STATUS_READY":
                raise OperationFailed(f"restore of {backup_id} failed: {restore_of(doc, restore_id).get('reason')}")


@backup.command()
@click.argument("backup_id")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.pass_context
def download(ctx: click.Context, backup_id: str, file: Path) -> None:
    """Write a READY backup to FILE: one self-contained file (a tar of its record and archives, still
    encrypted if the cluster encrypts) that `dcos backup upload` adds to any cluster."""
    with client_of(ctx) as client:
        size = client.download(backup_id, file)
    click.echo(f"{backup_id} written to {file} ({human_size(size)})")


@backup.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.pass_context
def upload(ctx: click.Context, file: Path) -> None:
    """Add the backup in FILE (from `dcos backup download`) to this cluster's backups, under its own id,
    once the cluster has checked it completely; prints the id. Restoring it needs the key it was made with."""
    with client_of(ctx) as client:
        click.echo(client.upload(file)["id"])


def main() -> NoReturn:
    run(cli)


if __name__ == "__main__":
    main()
