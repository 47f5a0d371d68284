"""``dcos backup ...``: the DC/OS Enterprise CLI's backup commands, over DC/OS's Backup and Restore API.

The cluster is found by :mod:`.endpoint` (``--url``/``--token``, ``DCOS_URL``/``DCOS_ACS_TOKEN``/
``DCOS_SSL_VERIFY``, else the local cluster); every request goes through the cluster's Admin Router.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import click

from dcos_backup import __version__
from dcos_backup.catalog.ids import is_backup_id, validate_label
from dcos_backup.cli._common import run
from dcos_backup.cli.client import (
    BackupClient,
    backup_finished,
    drill_of,
    job_finished,
    latest_restore,
    list_status,
    restore_of,
)
from dcos_backup.cli.endpoint import resolve_endpoint
from dcos_backup.cli.output import dcos_time, human_bytes, print_json, print_result, print_table
from dcos_backup.cli.schedule import schedule
from dcos_backup.errors import DcosBackupError, NotFound, UsageError

INFO = "Create, list, show, restore, delete, download and upload backups of the cluster's state"
LIST_COLUMNS = ("BACKUP ID", "VERSION", "STATUS", "TIMESTAMP", "LABEL", "SIZE")


class OperationFailed(DcosBackupError):
    """A job the CLI waited for ended in STATUS_ERROR (exit 1)."""


class StoppedWaiting(DcosBackupError):
    """Ctrl-C while waiting for a job: the job goes on in the service (exit 130, as for any Ctrl-C)."""

    exit_code = 130


def print_and_exit(text: str):
    def callback(ctx: click.Context, _: click.Parameter, value: bool) -> None:
        if value and not ctx.resilient_parsing:
            click.echo(text)
            ctx.exit()

    return callback


@click.group(help="DC/OS command line (the backup commands of the Enterprise CLI).")
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=print_and_exit(__version__))
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


@contextlib.contextmanager
def job_goes_on(backup_id: str, what: str) -> Iterator[None]:
    """Around the wait for a job (from the moment its id is printed): Ctrl-C stops the wait, not the job,
    and says so, and how to follow or stop the job."""
    try:
        yield
    except KeyboardInterrupt:
        raise StoppedWaiting(
            f"stopped waiting; {what} goes on in the service: follow it with 'dcos backup show {backup_id} --wait', "
            f"stop it with 'dcos backup cancel {backup_id}'"
        ) from None


def checked_id(_ctx: click.Context, _param: click.Parameter, backup_id: str) -> str:
    """The BACKUP_ID argument's check: every command that names a backup refuses what cannot be an id the same
    way, before asking the cluster."""
    if not is_backup_id(backup_id):
        raise UsageError(f"{backup_id!r} is not a backup id (ids are <label>-<uuid4>)")
    return backup_id


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
        rate = Rate()

        def update(doc: dict) -> None:
            line = progress_line(what, status_of(doc), progress_detail(doc, rate), console.width - PROGRESS_CHROME)
            progress.update(task, description=line)

        return client.wait(backup_id, done, update)


class Rate:
    """znodes per second within one phase, from the counts of successive polls."""

    def __init__(self) -> None:
        self.phase: object = None
        self.start = (0, 0.0)

    def of(self, phase: object, nodes: int) -> float | None:
        now = time.monotonic()
        if phase != self.phase:
            self.phase, self.start = phase, (nodes, now)
            return None
        done, since = nodes - self.start[0], now - self.start[1]
        return done / since if since > 0.5 else None


PROGRESS_CHROME = 12  # the spinner and the elapsed time beside the progress line's text


def progress_line(what: str, status: str, detail: str, width: int) -> str:
    """``what: status - detail`` when it fits in ``width``, else the status (short) and the detail alone:
    on a narrow terminal the numbers matter more than the id, which the line above already shows."""
    full = f"{what}: {status}{detail}"
    return full if len(full) <= width else f"{status.removeprefix('STATUS_')}{detail}"


def progress_detail(doc: dict, rate: Rate) -> str:
    """`` - applying marathon: 1200/5000 znodes, 3400/s``: the running job's phase, its counts, its rate."""
    info = doc.get("progress") or {}
    if not info.get("phase"):
        return ""
    nodes = int(info.get("nodes") or 0)
    count = f"{nodes}/{info['total']}" if info.get("total") else str(nodes)
    per_second = rate.of(info["phase"], nodes)
    return f" - {info['phase']}: {count} znodes" + (f", {per_second:.0f}/s" if per_second else "")


@backup.command()
@click.option("--label", required=True, help="3-25 characters of [A-Za-z0-9_.-], the first two of [A-Za-z0-9_].")
@click.option("--wait", is_flag=True, help="Wait until the backup is STATUS_READY (exit 1 on STATUS_ERROR).")
@click.option(
    "--component", "components", multiple=True, metavar="NAME", help="Back up only this component (repeatable)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the backup's BackupMetadata (the final one with --wait).")
@click.pass_context
def create(ctx: click.Context, label: str, wait: bool, components: tuple[str, ...], as_json: bool) -> None:
    """Create a backup of the cluster's components (default: all); prints its id."""
    validate_label(label)
    with client_of(ctx) as client:
        doc = client.create(label, components)
        backup_id = doc["id"]
        what = f"backing up {backup_id}"
        with job_goes_on(backup_id, what):
            if not as_json:
                click.echo(backup_id)
            if wait:
                doc = wait_with_progress(client, backup_id, what, backup_finished, lambda d: d["status"])
        if wait:
            click.echo(f"{backup_id}: {doc['status']} ({human_bytes(doc.get('size', 0))})", err=True)
        if as_json:
            print_json(doc)
        if doc["status"] == "STATUS_ERROR":
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
        (d["id"], d["dcos_version"], list_status(d), dcos_time(d["timestamp"]), d["label"], human_bytes(d["size"]))
        for d in docs
    ]
    print_table(LIST_COLUMNS, rows)


@backup.command()
@click.argument("backup_id", callback=checked_id)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the default: the backup's BackupMetadata).")
@click.option(
    "--wait", is_flag=True, help="First wait until the backup or restore running on it ends (exit 1 if it fails)."
)
@click.pass_context
def show(ctx: click.Context, backup_id: str, as_json: bool, wait: bool) -> None:
    """Show one backup as JSON: DC/OS's keys first; restores[-1].component_status.marathon follows a restore."""
    with client_of(ctx) as client:
        doc = client.show(backup_id)
        running = not job_finished(doc)
        if wait and running:
            what = f"{'backing up' if not backup_finished(doc) else 'restoring'} {backup_id}"
            with job_goes_on(backup_id, what):
                click.echo(f"waiting: {what} (Ctrl-C stops waiting, not the job)", err=True)
                doc = wait_with_progress(client, backup_id, what, job_finished, list_status)
        print_json(doc)
    # With --wait the exit says how the job ended, whether it ended before or while we waited.
    if wait and (doc["status"] == "STATUS_ERROR" or latest_restore(doc).get("status") == "STATUS_ERROR"):
        raise OperationFailed(
            f"the job on {backup_id} failed: {latest_restore(doc).get('reason') or doc.get('reason')}"
        )


@backup.command()
@click.argument("backup_id", callback=checked_id)
@click.option("--json", "as_json", is_flag=True, help="Print the backup's BackupMetadata.")
@click.pass_context
def cancel(ctx: click.Context, backup_id: str, as_json: bool) -> None:
    """Cancel the backup or restore running on a backup (a restore is rolled back to its safety backup)."""
    with client_of(ctx) as client:
        doc = client.cancel(backup_id)
    follow = f"follow it with 'dcos backup show {backup_id} --wait'"
    print_result(doc, as_json, f"cancelling the job on {backup_id}; {follow}")


@backup.command()
@click.argument("backup_id", callback=checked_id)
@click.option("--json", "as_json", is_flag=True, help="Print the deleted backup's BackupMetadata.")
@click.pass_context
def delete(ctx: click.Context, backup_id: str, as_json: bool) -> None:
    """Delete a backup."""
    with client_of(ctx) as client:
        doc = client.delete(backup_id)
    print_result(doc, as_json, f"deleted {backup_id}")


@backup.command()
@click.argument("backup_id", required=False)
@click.option("--wait", is_flag=True, help="Wait until the restore ends (exit 1 on STATUS_ERROR).")
@click.option("--dry-run", is_flag=True, help="Show what the restore would change, and change nothing.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the restore's RestoreMetadata (final with --wait), or the dry run's."
)
@click.option(
    "--path", "paths", multiple=True, metavar="P", help="Restore only the subtree at P (repeatable); the rest stays."
)
@click.option("--map", "mapping", metavar="SRC=DST", help="Restore the backed-up subtree SRC under DST instead.")
@click.option(
    "--to-time",
    metavar="T",
    help="No BACKUP_ID: restore the --path subtrees as they were at RFC 3339 time T, from the continuous archive.",
)
@click.option(
    "--to-zxid",
    metavar="Z",
    help="No BACKUP_ID: restore the --path subtrees as they were right after transaction Z (0x hex or decimal).",
)
@click.pass_context
def restore(
    ctx: click.Context,
    backup_id: str | None,
    wait: bool,
    dry_run: bool,
    as_json: bool,
    paths: tuple,
    mapping: str | None,
    to_time: str | None,
    to_zxid: str | None,
) -> None:
    """Restore a backup (a safety backup of what it touches is taken first); prints the restore's id.

    With --to-time T or --to-zxid Z instead of BACKUP_ID: the --path subtrees (or the --map SRC) as they
    were at that point, rebuilt from the cluster's continuous archive, restored online the same way (the
    rest of the tree, later writes included, stays).
    """
    point = point_of(backup_id, to_time, to_zxid, paths, mapping)
    with client_of(ctx) as client:
        if dry_run:
            diff = client.dry_run(backup_id, paths, mapping, point)
            if as_json:
                print_json(diff)
            else:
                if diff.get("point"):
                    click.echo(f"from the continuous archive at {point_line(diff['point'])}")
                print_dry_run(diff)
            return
        started = client.restore(backup_id, paths, mapping, point)
        restore_id = started["id"]
        backup_id = str(started.get("backup_id") or backup_id)
        if started.get("point") and not as_json:
            click.echo(f"point backup {backup_id}: {point_line(started['point'])}", err=True)

        def status(doc: dict) -> str | None:
            return restore_of(doc, restore_id).get("status")

        what = f"restoring {backup_id}"
        with job_goes_on(backup_id, what):
            if not as_json:
                click.echo(restore_id)
            if not wait:
                if as_json:
                    print_json(started)
                return
            doc = wait_with_progress(client, backup_id, what, lambda d: status(d) != "STATUS_RESTORING", status)
        ended = restore_of(doc, restore_id)
        click.echo(f"{backup_id}: restore {restore_id} {status(doc)}{restore_summary(ended)}", err=True)
        if as_json:
            print_json({**ended, "backup_id": backup_id, **({"point": doc["point"]} if doc.get("point") else {})})
        if status(doc) != "STATUS_READY":
            raise OperationFailed(f"restore of {backup_id} failed: {ended.get('reason')}")


def point_of(
    backup_id: str | None, to_time: str | None, to_zxid: str | None, paths: tuple, mapping: str | None
) -> dict | None:
    """The request's ``point`` for --to-time/--to-zxid (None with a BACKUP_ID); usage errors before asking."""
    if to_time is None and to_zxid is None:
        if backup_id is None:
            raise UsageError("give a BACKUP_ID, or --to-time T / --to-zxid Z with --path")
        checked_id(click.get_current_context(), click.Argument(["backup_id"]), backup_id)
        return None
    if backup_id is not None:
        raise UsageError("give a BACKUP_ID or --to-time/--to-zxid, not both")
    if to_time is not None and to_zxid is not None:
        raise UsageError("give --to-time or --to-zxid, not both")
    if not paths and mapping is None:
        raise UsageError("a restore from a point needs --path P (or --map SRC=DST): it restores subtrees")
    return {"time": to_time} if to_time is not None else {"zxid": to_zxid}


def point_line(point: dict) -> str:
    """A resolved point in one line: the zxid restored, its time, its history."""
    when = f" ({point['time']})" if point.get("time") else ""
    note = f"; {point['note']}" if point.get("note") else ""
    return f"zxid {point['zxid']}{when} of {point['generation']}, {point['digests_checked']} digests checked{note}"


@backup.command()
@click.argument("backup_id", required=False)
@click.option("--latest", is_flag=True, help="Drill the newest STATUS_READY backup.")
@click.option("--wait", is_flag=True, help="Wait until the drill ends (exit 1 if it failed).")
@click.option("--json", "as_json", is_flag=True, help="Print the drill (the final one with --wait) as JSON.")
@click.pass_context
def drill(ctx: click.Context, backup_id: str | None, latest: bool, wait: bool, as_json: bool) -> None:
    """Restore a backup into a scratch ZooKeeper and compare it node for node; the live tree is untouched.

    Prints the drill's id; its outcome and duration are recorded in the backup's drills.
    """
    if (backup_id is None) == (not latest):
        raise UsageError("give a BACKUP_ID or --latest (not both)")
    with client_of(ctx) as client:
        if latest:
            ready = [d for d in client.list() if d.get("status") == "STATUS_READY"]
            if not ready:
                raise NotFound("no STATUS_READY backup to drill")
            backup_id = ready[-1]["id"]
        assert backup_id is not None
        started = client.drill(backup_id)
        drill_id = started["id"]

        def status(doc: dict) -> str | None:
            return drill_of(doc, drill_id).get("status") or "STATUS_RESTORING"

        what = f"drilling {backup_id}"
        with job_goes_on(backup_id, what):
            if not as_json:
                click.echo(drill_id)
            if not wait:
                if as_json:
                    print_json(started)
                return
            doc = wait_with_progress(
                client, backup_id, what, lambda d: bool(drill_of(d, drill_id)) or not d.get("progress"), status
            )
        ended = drill_of(doc, drill_id)
        if not ended:
            raise OperationFailed(f"drill of {backup_id} ended without a result (did the service restart?)")
        took = f" in {ended['duration']:.1f}s" if ended.get("duration") is not None else ""
        click.echo(f"{backup_id}: drill {drill_id} {ended['status']}: {ended.get('nodes', 0)} znodes{took}", err=True)
        if as_json:
            print_json({**ended, "backup_id": backup_id})
        if ended["status"] != "STATUS_READY":
            raise OperationFailed(f"drill of {backup_id} failed: {ended.get('reason')}")


DRY_RUN_PATHS = 50  # paths per kind of change the human form of a dry run lists


def counts_line(counts: dict) -> str:
    return ", ".join(f"{counts[k]} {k}" for k in ("created", "updated", "deleted", "unchanged"))


def restore_summary(restore: dict) -> str:
    """What a finished restore changed, in all, and its safety backup: the end of the line ``--wait`` prints."""
    stats = [c["stats"] for c in (restore.get("component_status") or {}).values() if c.get("stats")]
    totals = {k: sum(s.get(k, 0) for s in stats) for k in ("created", "updated", "deleted", "unchanged")}
    changed = f": {counts_line(totals)}" if stats else ""
    safety = restore.get("safety_backup_id")
    return changed + (f"; safety backup {safety}" if safety else "")


def print_dry_run(diff: dict) -> None:
    """Counts per component, then the first paths of each kind of change, in pre-order."""
    click.echo(f"Dry run of a restore of {diff['backup_id']}: nothing was changed.")
    for name, counts in diff["component_status"].items():
        click.echo(f"  {name}: {counts_line(counts)}")
    for op in ("create", "update", "delete"):
        total = diff[f"{op}d"]
        if not total:
            continue
        paths = [c["path"] for c in diff["changes"] if c["op"] == op][:DRY_RUN_PATHS]
        click.echo(f"{op} ({total}):")
        for path in paths:
            click.echo(f"  {path}")
        if total > len(paths):
            click.echo(f"  ... and {total - len(paths)} more (--json lists up to 10,000 changes)")


backup.add_command(schedule)


@backup.command()
@click.argument("backup_id", callback=checked_id)
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.pass_context
def download(ctx: click.Context, backup_id: str, file: Path) -> None:
    """Write a READY backup to FILE: one self-contained file (a tar of its record and archives, still
    encrypted if the cluster encrypts) that `dcos backup upload` adds to any cluster."""
    with client_of(ctx) as client:
        size = client.download(backup_id, file)
    click.echo(f"{backup_id} written to {file} ({human_bytes(size)})")


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
