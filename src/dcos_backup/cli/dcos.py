"""``dcos backup ...``: the seed's Backup and Restore CLI, talking to the backup service over HTTP.

The service is found by :mod:`.endpoint` (command line, environment, else the local cluster).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from dcos_backup.catalog.models import validate_label
from dcos_backup.cli._common import run
from dcos_backup.cli.endpoint import resolve_endpoint
from dcos_backup.errors import DcosBackupError
from dcos_backup.service.client import BackupClient, backup_finished, restore_finished


class OperationFailed(DcosBackupError):
    """A job the CLI waited for ended in STATUS_ERROR (exit 1)."""


@click.group(help="DC/OS command line (the backup commands of the Enterprise CLI).")
def cli() -> None:
    pass


@cli.group(help="Create, list, show, delete and restore cluster backups (state kept by the backup service).")
@click.option("--url", envvar="DCOS_BACKUP_URL", help="Backup service URL (default: the local cluster's).")
@click.option(
    "--token-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="File with the service's bearer token (or set DCOS_BACKUP_TOKEN).",
)
@click.pass_context
def backup(ctx: click.Context, url: str | None, token_file: Path | None) -> None:
    ctx.obj = lambda: BackupClient(resolve_endpoint(url, token_file))


def client_of(ctx: click.Context) -> BackupClient:
    return ctx.obj()


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(size)


def print_json(doc: object) -> None:
    click.echo(json.dumps(doc, indent=2))


def wait_with_progress(client: BackupClient, backup_id: str, what: str, done, status_of) -> dict:
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
@click.option("--label", required=True, help="3-25 characters of [A-Za-z0-9_.-], not starting with '..'.")
@click.option("--wait", is_flag=True, help="Wait until the backup is STATUS_READY (exit 1 on STATUS_ERROR).")
@click.pass_context
def create(ctx: click.Context, label: str, wait: bool) -> None:
    """Create a backup of the cluster's components."""
    validate_label(label)
    client = client_of(ctx)
    doc = client.create(label)
    click.echo(doc["id"])
    if wait:
        doc = wait_with_progress(client, doc["id"], f"backing up {doc['id']}", backup_finished, lambda d: d["status"])
        click.echo(f"{doc['id']}: {doc['status']} ({human_size(doc.get('size', 0))})", err=True)
        if doc["status"] != "STATUS_READY":
            raise OperationFailed(f"backup {doc['id']} failed: {doc.get('reason')}")


@backup.command("list")
@click.argument("label", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the backup documents as JSON.")
@click.pass_context
def list_cmd(ctx: click.Context, label: str | None, as_json: bool) -> None:
    """List backups, optionally only those with LABEL."""
    docs = client_of(ctx).list(label)
    if as_json:
        print_json(docs)
        return
    table = Table(box=None)
    for column in ("ID", "LABEL", "STATUS", "SIZE", "CREATED"):
        table.add_column(column)
    for d in docs:
        created = datetime.fromisoformat(d["created_at"]).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(d["id"], d["label"], d["status"], human_size(d.get("size", 0)), created)
    Console(width=200).print(table)


@backup.command()
@click.argument("backup_id")
@click.pass_context
def show(ctx: click.Context, backup_id: str) -> None:
    """Show one backup as JSON (restores.component_status.marathon tells a restore's progress)."""
    print_json(client_of(ctx).show(backup_id))


@backup.command()
@click.argument("backup_id")
@click.pass_context
def delete(ctx: click.Context, backup_id: str) -> None:
    """Delete a backup."""
    client_of(ctx).delete(backup_id)
    click.echo(f"deleted {backup_id}")


@backup.command()
@click.argument("backup_id")
@click.option("--wait", is_flag=True, help="Wait until the restore ends (exit 1 on STATUS_ERROR).")
@click.pass_context
def restore(ctx: click.Context, backup_id: str, wait: bool) -> None:
    """Restore a backup (a safety backup of the current state is taken first)."""
    client = client_of(ctx)
    client.restore(backup_id)
    click.echo(f"restoring {backup_id}")
    if wait:
        doc = wait_with_progress(
            client,
            backup_id,
            f"restoring {backup_id}",
            restore_finished,
            lambda d: (d.get("restores") or {}).get("status"),
        )
        restores = doc.get("restores") or {}
        click.echo(f"{backup_id}: restore {restores.get('status')}", err=True)
        if restores.get("status") != "STATUS_READY":
            raise OperationFailed(f"restore of {backup_id} failed: {restores.get('reason')}")


def main() -> NoReturn:
    run(cli)


if __name__ == "__main__":
    main()
