"""``dcos backup schedule ...``: backup schedules with retention, over our extension of the backup API.

A schedule's backups are labelled with its name and listed by ``dcos backup list`` as any other backup.
The service checks the name and the cron expression (a 400 says what is wrong); this module stays light,
as every ``dcos`` command does (no pydantic, kazoo or croniter at start-up).
"""

from __future__ import annotations

import click

from dcos_backup.cli.client import BackupClient
from dcos_backup.cli.output import dcos_time, print_json, print_table
from dcos_backup.durations import parse_duration

COLUMNS = ("NAME", "CRON", "RETENTION", "STATUS", "NEXT RUN", "LAST BACKUP")


def client(ctx: click.Context) -> BackupClient:
    """The API client of the ``dcos backup`` group (its ``--url``/``--token``)."""
    return ctx.obj()


def retention(doc: dict) -> str:
    rules = []
    if doc.get("keep_last"):
        rules.append(f"last {doc['keep_last']}")
    if doc.get("keep_within"):
        rules.append(f"within {doc['keep_within']}")
    return ", ".join(rules) or "keep all"


@click.group(help="Create, list, pause, resume and delete backup schedules (with retention).")
def schedule() -> None:
    pass


@schedule.command()
@click.argument("name")
@click.option(
    "--cron",
    "cron",
    required=True,
    help="When to back up, in UTC: 5 cron fields (minute hour day-of-month month day-of-week) like '0 3 * * *', "
    "an @hourly-style name, or 6 fields with seconds last.",
)
@click.option("--keep-last", type=click.IntRange(min=1), help="Keep this many newest READY backups of the schedule.")
@click.option("--keep-within", help="Keep every READY backup of the schedule younger than this (90m, 12h, 7d, 2w).")
@click.option("--drill", is_flag=True, help="Drill each backup once it is READY (dcos backup drill).")
@click.pass_context
def create(
    ctx: click.Context, name: str, cron: str, keep_last: int | None, keep_within: str | None, drill: bool
) -> None:
    """Create schedule NAME: a backup labelled NAME at every CRON time; retention prunes after each one."""
    if keep_within is not None:
        parse_duration(keep_within, "--keep-within")
    with client(ctx) as api:
        doc = api.create_schedule(name, cron, keep_last, keep_within, drill)
    click.echo(f"created schedule {doc['name']}: next run {dcos_time(doc['next_run'])}")


@schedule.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the API's list of schedules as JSON.")
@click.pass_context
def list_cmd(ctx: click.Context, as_json: bool) -> None:
    """List the schedules."""
    with client(ctx) as api:
        docs = api.schedules()
    if as_json:
        print_json(docs)
        return
    rows = [
        (
            d["name"],
            d["cron"],
            retention(d),
            "paused" if d["paused"] else "active",
            dcos_time(d["next_run"]) if d.get("next_run") else "-",
            d.get("last_backup_id") or "-",
        )
        for d in docs
    ]
    print_table(COLUMNS, rows)


def _action(verb: str, done: str):
    @click.argument("name")
    @click.pass_context
    def command(ctx: click.Context, name: str) -> None:
        with client(ctx) as api:
            api.schedule_action(name, verb)
        click.echo(f"{done} schedule {name}")

    return command


schedule.command("delete", help="Delete schedule NAME (its backups stay).")(_action("delete", "deleted"))
schedule.command("pause", help="Pause schedule NAME: no backups until it is resumed.")(_action("pause", "paused"))
schedule.command("resume", help="Resume schedule NAME (runs that fell due while paused are skipped).")(
    _action("resume", "resumed")
)
