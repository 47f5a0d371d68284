"""``dcos-zk``: physical backup and restore of this master's ZooKeeper data (the seed's script, safer)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import NoReturn

import click

from dcos_backup.cli._common import run, setup_logging
from dcos_backup.zkdata import physical

exhibitor_dir_option = click.option(
    "--exhibitor-dir",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="DCOS_EXHIBITOR_DIR",
    default=physical.DEFAULT_EXHIBITOR_DIR,
    show_default=True,
    help="Exhibitor directory of this master ($DCOS_EXHIBITOR_DIR); ZooKeeper data is in its zookeeper/.",
)
tmp_dir_option = click.option(
    "-t",
    "--tmp-dir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=None,
    help="Existing directory for temporary files (backup: default beside the archive).",
)
verbose_option = click.option("-v", "--verbose", is_flag=True, help="Log each step.")


@click.group(help="Back up and restore the local ZooKeeper instance of a DC/OS master (stop it first).")
def cli() -> None:
    pass


@cli.command()
@click.argument("archive", type=click.Path(path_type=Path, dir_okay=False))
@tmp_dir_option
@verbose_option
@exhibitor_dir_option
@click.option("--level", type=click.IntRange(1, 9), default=6, show_default=True, help="gzip level.")
def backup(archive: Path, tmp_dir: Path | None, verbose: bool, exhibitor_dir: Path, level: int) -> None:
    """Write a gzip tar of this master's ZooKeeper data to ARCHIVE (which must not exist)."""
    setup_logging(verbose)
    result = physical.backup(exhibitor_dir, archive, tmp_dir, level)
    click.echo(
        f"ZooKeeper backup written to {result.archive}: {result.files} files, {result.bytes} bytes, "
        f"sha256 {result.sha256} ({result.seconds:.1f}s)"
    )


@cli.command()
@click.argument("archive", type=click.Path(path_type=Path, dir_okay=False))
@tmp_dir_option
@verbose_option
@exhibitor_dir_option
@click.option("--keep-old", is_flag=True, help="Keep the replaced data as zookeeper.old-<time>.")
def restore(archive: Path, tmp_dir: Path | None, verbose: bool, exhibitor_dir: Path, keep_old: bool) -> None:
    """Replace this master's ZooKeeper data with ARCHIVE (checked completely before anything changes)."""
    setup_logging(verbose)
    result = physical.restore(exhibitor_dir, archive, tmp_dir, keep_old)
    click.echo(
        f"ZooKeeper data restored from {result.archive}: {result.files} files, {result.data_bytes} bytes, "
        f"myid {result.myid or 'unknown'} ({result.seconds:.1f}s)"
    )


@cli.command()
@click.argument("archive", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON, with every member.")
def info(archive: Path, as_json: bool) -> None:
    """Show what ARCHIVE holds without extracting it."""
    details = physical.info(archive)
    if as_json:
        click.echo(json.dumps(details.to_dict(), indent=2))
        return
    click.echo(f"archive:          {details.archive} ({details.bytes} bytes)")
    click.echo(f"files:            {details.files} ({details.data_bytes} bytes uncompressed)")
    click.echo(f"snapshots:        {len(details.snapshots)}, newest {details.newest_snapshot}")
    click.echo(f"transaction logs: {len(details.logs)}, newest {details.newest_log}")
    click.echo(f"last zxid seen:   {details.last_zxid}")


@cli.command()
@verbose_option
@exhibitor_dir_option
def recover(verbose: bool, exhibitor_dir: Path) -> None:
    """Finish or roll back a restore that was interrupted (dcos-exhibitor also does this at start)."""
    setup_logging(verbose)
    click.echo(physical.recover(exhibitor_dir) or "nothing to recover")


def main() -> NoReturn:
    logging.captureWarnings(True)
    run(cli, sys.argv[1:])


if __name__ == "__main__":
    main()
