"""``dcos-zk``: physical backup and restore of this master's ZooKeeper data (the seed's script, safer)."""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import NoReturn

import click

from dcos_backup.cli._common import run, setup_logging
from dcos_backup.errors import NotFound, UsageError
from dcos_backup.master.layout import DEFAULT_EXHIBITOR_DIR
from dcos_backup.zkdata import physical
from dcos_backup.zkdata import verify as zk_verify

exhibitor_dir_option = click.option(
    "--exhibitor-dir",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="DCOS_EXHIBITOR_DIR",
    default=DEFAULT_EXHIBITOR_DIR,
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
wait_lock_option = click.option(
    "--wait-lock",
    is_flag=True,
    help="If another dcos-zk command holds this master's data-dir lock, wait for it instead of refusing.",
)


@click.group(help="Back up, restore, verify and inspect the ZooKeeper data of a DC/OS master (offline, or --online).")
def cli() -> None:
    pass


@cli.command()
@click.argument("archive", type=click.Path(path_type=Path, dir_okay=False))
@tmp_dir_option
@verbose_option
@exhibitor_dir_option
@click.option("--level", type=click.IntRange(1, 9), default=6, show_default=True, help="gzip level.")
@click.option(
    "--online",
    is_flag=True,
    help="Back up while ZooKeeper keeps serving: newest snapshot + the logs after it, to a consistent point.",
)
@click.option("--no-verify", is_flag=True, help="Skip the full check of the written archive (not recommended).")
@wait_lock_option
def backup(
    archive: Path,
    tmp_dir: Path | None,
    verbose: bool,
    exhibitor_dir: Path,
    level: int,
    online: bool,
    no_verify: bool,
    wait_lock: bool,
) -> None:
    """Write a gzip tar of this master's ZooKeeper data to ARCHIVE (which must not exist).

    Without --online, this master's ZooKeeper must be stopped (as with DC/OS's script). Either way the
    archive is verified (every checksum, the transaction sequence, ZooKeeper's tree digests) before it
    gets its name, and its sha256 is written to ARCHIVE.sha256.
    """
    setup_logging(verbose)
    if online:
        # A backup must not slow the member it copies: give ZooKeeper the CPU first.
        os.nice(10)
    result = physical.backup(
        exhibitor_dir, archive, tmp_dir, level, online=online, verify=not no_verify, wait_lock=wait_lock
    )
    checked = result.verified
    summary = f", verified up to zxid {checked.last_zxid} ({checked.nodes} nodes)" if checked else ", NOT verified"
    click.echo(
        f"ZooKeeper {'online ' if online else ''}backup written to {result.archive}: {result.files} files, "
        f"{result.bytes} bytes, sha256 {result.sha256}{summary} ({result.seconds:.1f}s)"
    )


@cli.command()
@click.argument("archive", type=click.Path(path_type=Path, dir_okay=False))
@tmp_dir_option
@verbose_option
@exhibitor_dir_option
@click.option("--keep-old", is_flag=True, help="Keep the replaced data as zookeeper.old-<time>.")
@wait_lock_option
def restore(
    archive: Path, tmp_dir: Path | None, verbose: bool, exhibitor_dir: Path, keep_old: bool, wait_lock: bool
) -> None:
    """Replace this master's ZooKeeper data with ARCHIVE (checked completely before anything changes)."""
    setup_logging(verbose)
    result = physical.restore(exhibitor_dir, archive, tmp_dir, keep_old, wait_lock)
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
@click.argument("archive", type=click.Path(path_type=Path, dir_okay=False))
@tmp_dir_option
@verbose_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def verify(archive: Path, tmp_dir: Path | None, verbose: bool, as_json: bool) -> None:
    """Check ARCHIVE completely, as a restore would load it.

    Checks the gzip/tar structure and member names, every snapshot and log checksum, that transactions
    follow the snapshot without a gap, and ZooKeeper's tree digests while replaying the logs on the
    snapshot; prints the last zxid, node count and tree digest. Exit 1 with the reason on any corruption.
    """
    setup_logging(verbose)
    result = zk_verify.verify_archive(archive, tmp_dir)
    if as_json:
        click.echo(json.dumps(asdict(result), indent=2))
        return
    click.echo(
        f"{archive}: OK: {result.snapshot} + {len(result.logs)} logs ({result.transactions} transactions), "
        f"last zxid {result.last_zxid}, {result.nodes} nodes, tree digest {result.digest} "
        f"({result.digests_checked} digests matched, {result.seconds:.1f}s)"
    )


@cli.command()
@click.argument("archive", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--path", "prefix", default="/", show_default=True, help="Only this node and its descendants.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per node (path, data, acl, stat).")
@tmp_dir_option
@verbose_option
def dump(archive: Path, prefix: str, as_json: bool, tmp_dir: Path | None, verbose: bool) -> None:
    """Print the tree ARCHIVE would restore (after verifying it), sorted by path."""
    setup_logging(verbose)
    if not prefix.startswith("/"):
        raise UsageError(f"--path must be absolute, got {prefix!r}")
    with zk_verify.rebuilt_archive(archive, tmp_dir) as (store, _):
        found = False
        for node in store.iter_nodes(prefix):
            found = True
            if as_json:
                click.echo(json.dumps(node.to_dict(), separators=(",", ":")))
            else:
                size = -1 if node.data is None else len(node.data)
                owner = f" ephemeral={node.stat.ephemeral_owner:#x}" if node.stat.ephemeral_owner else ""
                click.echo(f"{node.path or '/'}  version={node.stat.version} bytes={size}{owner}")
        if not found:
            raise NotFound(f"{prefix} is not in the archive")


@cli.command()
@verbose_option
@exhibitor_dir_option
@wait_lock_option
def recover(verbose: bool, exhibitor_dir: Path, wait_lock: bool) -> None:
    """Finish or roll back a restore that was interrupted (dcos-exhibitor also does this at start)."""
    setup_logging(verbose)
    click.echo(physical.recover(exhibitor_dir, wait=wait_lock) or "nothing to recover")


def main() -> NoReturn:
    logging.captureWarnings(True)
    run(cli, sys.argv[1:])


if __name__ == "__main__":
    main()
