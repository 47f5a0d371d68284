"""``dcos-zk``: physical backup and restore of this master's ZooKeeper data (the seed's script, safer)."""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, NoReturn

import click

from dcos_backup import __version__
from dcos_backup.cli._common import run, setup_logging
from dcos_backup.cli._progress import progress_on_terminal
from dcos_backup.errors import NotFound, UsageError
from dcos_backup.master.layout import DEFAULT_EXHIBITOR_DIR, MasterLayout
from dcos_backup.physical import archive_info, archive_restore, archive_write, journal, swap, transfer
from dcos_backup.physical import verify as zk_verify
from dcos_backup.physical.check_live import check_live
from dcos_backup.physical.continuous import compact, pitr, prune, txlog
from dcos_backup.physical.continuous import drill as repo_drill
from dcos_backup.physical.continuous.archiver import Archiver
from dcos_backup.physical.continuous.index import RepoIndex, check_stream_name, describe_ranges, parse_time, parse_zxid
from dcos_backup.physical.continuous.repository import KEY_ENV, Repository, key_file_from, open_repository
from dcos_backup.physical.continuous.segments import verify_repository
from dcos_backup.physical.continuous.timeline import text_lines, timeline
from dcos_backup.physical.formats import zxid_hex
from dcos_backup.storage.s3 import is_s3_url

exhibitor_dir_option = click.option(
    "--exhibitor-dir",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="DCOS_EXHIBITOR_DIR",
    default=DEFAULT_EXHIBITOR_DIR,
    show_default=True,
    help="Exhibitor directory of this master ($DCOS_EXHIBITOR_DIR); ZooKeeper data is in its zookeeper/.",
)


def tmp_dir_option_for(default: str) -> Callable:
    """-t/--tmp-dir, whose help says where each command puts its temporary files without it."""
    return click.option(
        "-t",
        "--tmp-dir",
        type=click.Path(path_type=Path, file_okay=False, exists=True),
        default=None,
        help=f"Existing directory for temporary files (default: {default}).",
    )


tmp_dir_option = tmp_dir_option_for("the system's temporary directory")
verbose_option = click.option("-v", "--verbose", is_flag=True, help="Log each step.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (for scripts).")
wait_lock_option = click.option(
    "--wait-lock",
    is_flag=True,
    help="If another dcos-zk command holds this master's data-dir lock, wait for it instead of refusing.",
)


REPO_HELP = "Repository: a directory or s3://bucket/prefix ($DCOS_ZK_REPO; S3 settings from the AWS variables)."
repo_option = click.option("--repo", envvar="DCOS_ZK_REPO", required=True, help=REPO_HELP)
repo_key_option = click.option(
    "--repo-key-file",
    envvar=KEY_ENV,
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help=f"This cluster's repository key (0600; ${KEY_ENV}): authenticates every object of --repo.",
)


def open_repo(repo: str, key_file: Path | None, create: bool = False) -> Repository:
    return open_repository(repo, key_file_from(str(key_file) if key_file else None), create=create)


@click.group(
    help="Back up, restore, verify and inspect the ZooKeeper data of a DC/OS master (offline, or --online). "
    "Long work shows its progress (files, bytes, rate) on stderr when that is a terminal."
)
@click.version_option(__version__, "--version", message="%(prog)s %(version)s")
def cli() -> None:
    pass


@cli.command()
@click.argument("archive")
@tmp_dir_option_for("beside the archive")
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
@json_option
def backup(
    archive: str,
    tmp_dir: Path | None,
    verbose: bool,
    exhibitor_dir: Path,
    level: int,
    online: bool,
    no_verify: bool,
    wait_lock: bool,
    as_json: bool,
) -> None:
    """Write a gzip tar of this master's ZooKeeper data to ARCHIVE (which must not exist): a file, or
    s3://bucket/key (written locally, in --tmp-dir, then uploaded; credentials and $AWS_ENDPOINT_URL as
    for any AWS tool).

    Without --online, this master's ZooKeeper must be stopped (as with DC/OS's script). Either way the
    archive is verified (every checksum, the transaction sequence, ZooKeeper's tree digests) before it
    gets its name, and its sha256 is written to ARCHIVE.sha256.
    """
    setup_logging(verbose)
    if online:
        # A backup must not slow the member it copies: give ZooKeeper the CPU first.
        os.nice(10)
    with progress_on_terminal("files") as update:

        def write(path: Path) -> archive_write.BackupResult:
            return archive_write.backup(
                exhibitor_dir, path, tmp_dir, level, online=online, verify=not no_verify, wait_lock=wait_lock,
                progress=update,
            )  # fmt: skip

        to_s3 = is_s3_url(archive)
        result = transfer.backup_to_store(archive, write, tmp_dir) if to_s3 else write(Path(archive))
    if as_json:
        click.echo(json.dumps(asdict(result), indent=2))
        return
    checked = result.verified
    summary = f", verified up to zxid {checked.last_zxid} ({checked.nodes} nodes)" if checked else ", NOT verified"
    click.echo(
        f"ZooKeeper {'online ' if online else ''}backup written to {result.archive}: {result.files} files, "
        f"{result.bytes} bytes, sha256 {result.sha256}{summary} ({result.seconds:.1f}s)"
    )


def target_options(command: Callable) -> Callable:
    """--to-zxid / --to-time / --latest: the point of a repository to restore or export."""
    for option in reversed(
        [
            click.option("--to-zxid", default=None, help="The state right after this transaction (decimal or 0x hex)."),
            click.option(
                "--to-time", default=None, help="The last transaction at or before this RFC 3339 time (Z or offset)."
            ),
            click.option("--latest", is_flag=True, help="Everything archived."),
            click.option(
                "--before-zxid", default=None, help="The state just before this transaction (as dcos-zk log shows it)."
            ),
            click.option(
                "--generation", default=None, help="Only this history (STREAM/GENERATION, as log and timeline show)."
            ),
            repo_key_option,
        ]
    ):
        command = option(command)
    return command


def make_target(
    to_zxid: str | None,
    to_time: str | None,
    latest: bool,
    before_zxid: str | None = None,
    generation: str | None = None,
) -> pitr.Target:
    return pitr.Target(
        zxid=parse_zxid(to_zxid) if to_zxid is not None else None,
        time_us=parse_time(to_time) if to_time is not None else None,
        latest=latest,
        before=parse_zxid(before_zxid) if before_zxid is not None else None,
        generation=generation,
    )


@cli.command()
@click.argument("archive", required=False)
@tmp_dir_option_for("the staging directory inside the exhibitor directory")
@verbose_option
@exhibitor_dir_option
@click.option(
    "--keep-old", is_flag=True, help="Keep the replaced data as zookeeper.old-<time> (default: it is deleted)."
)
@click.option(
    "--no-verify", is_flag=True, help="Skip the replay of the archive's data that verify runs (not recommended)."
)
@wait_lock_option
@click.option("--repo", envvar="DCOS_ZK_REPO", default=None, help="Restore a point of this repository instead.")
@target_options
@click.option("--stream", default=None, help="With --repo: only this stream (default: whichever covers the point).")
@click.option(
    "--drop-sessions",
    is_flag=True,
    help="Restore without the data's sessions and their ephemeral znodes: clients register afresh at once.",
)
@json_option
def restore(
    archive: str | None,
    tmp_dir: Path | None,
    verbose: bool,
    exhibitor_dir: Path,
    keep_old: bool,
    no_verify: bool,
    wait_lock: bool,
    repo: str | None,
    to_zxid: str | None,
    to_time: str | None,
    latest: bool,
    before_zxid: str | None,
    generation: str | None,
    repo_key_file: Path | None,
    stream: str | None,
    drop_sessions: bool,
    as_json: bool,
) -> None:
    """Replace this master's ZooKeeper data with ARCHIVE, or with a point of a --repo (checked before anything changes).

    ARCHIVE is a file or s3://bucket/key (downloaded with its .sha256 first, into --tmp-dir or the
    system's temporary directory; S3 settings from the AWS variables).

    From a repository: --to-zxid Z (the state right after transaction Z), --to-time T (the last
    transaction at or before T) or --latest. The data is rebuilt from the newest snapshot before the
    point and the logs cut at it, replayed with ZooKeeper's tree digests, and swapped in like an archive.

    --drop-sessions: the restored data holds no session and no session's ephemeral znode (leader latches,
    locks, registrations of processes that may be gone); give it to every master or to none.
    """
    setup_logging(verbose)
    if archive is not None and (to_zxid or to_time or latest or before_zxid):  # (--repo may come from $DCOS_ZK_REPO)
        raise UsageError("give either ARCHIVE or --repo with --to-zxid/--to-time/--latest, not both")
    if archive is None:
        if not repo:
            raise UsageError("give ARCHIVE, or --repo with --to-zxid, --to-time or --latest")
        target = make_target(to_zxid, to_time, latest, before_zxid, generation)
        prefer = _stream_or_none(exhibitor_dir)
        done = pitr.restore(
            exhibitor_dir, open_repo(repo, repo_key_file), target, stream, prefer, keep_old, wait_lock, drop_sessions
        )
        if done.note:
            click.echo(f"NOTE: {done.note}", err=True)
        if as_json:
            click.echo(json.dumps(asdict(done), indent=2))
            return
        click.echo(
            f"ZooKeeper data restored to {done.plan}: {done.snapshot} + {done.transactions} transactions, "
            f"{done.nodes} nodes, myid {done.myid or 'unknown'} ({done.seconds:.1f}s)"
        )
        return
    if no_verify:
        click.echo(
            "WARNING: --no-verify: the archive's data is NOT replayed before it replaces this master's; "
            "ZooKeeper may refuse to start on it or serve a damaged tree",
            err=True,
        )
    with transfer.fetched(archive, tmp_dir) as local, progress_on_terminal("files") as update:
        result = archive_restore.restore(
            exhibitor_dir, local, tmp_dir, keep_old, wait_lock, not no_verify, update, drop_sessions
        )
    if is_s3_url(archive):  # (a file is named by its absolute path)
        result.archive = archive
    if as_json:
        click.echo(json.dumps(asdict(result), indent=2))
        return
    checked = result.verified
    summary = f", verified up to zxid {checked.last_zxid} ({checked.nodes} nodes)" if checked else ", NOT verified"
    click.echo(
        f"ZooKeeper data restored from {result.archive}: {result.files} files, {result.data_bytes} bytes"
        f"{summary}, myid {result.myid or 'unknown'} ({result.seconds:.1f}s)"
    )


def _stream_or_none(exhibitor_dir: Path) -> str | None:
    myid = swap.read_myid(MasterLayout(exhibitor_dir))
    return f"master-{myid}" if myid else None


@cli.command()
@click.argument("archive", type=click.Path(path_type=Path, dir_okay=False))
@repo_option
@target_options
@click.option("--stream", default=None, help="Only this stream (default: whichever covers the point).")
@tmp_dir_option
@click.option("--level", type=click.IntRange(1, 9), default=6, show_default=True, help="gzip level.")
@verbose_option
def export(
    archive: Path,
    repo: str,
    to_zxid: str | None,
    to_time: str | None,
    latest: bool,
    before_zxid: str | None,
    generation: str | None,
    repo_key_file: Path | None,
    stream: str | None,
    tmp_dir: Path | None,
    level: int,
    verbose: bool,
) -> None:
    """Write a point of --repo as an ordinary archive (DC/OS layout) to ARCHIVE, for any dcos-zk restore."""
    setup_logging(verbose)
    target = make_target(to_zxid, to_time, latest, before_zxid, generation)
    done, written = pitr.export(open_repo(repo, repo_key_file), target, archive, stream, tmp_dir, level)
    if done.note:
        click.echo(f"NOTE: {done.note}", err=True)
    click.echo(
        f"exported {done.plan} to {written.archive}: {written.files} files, {written.bytes} bytes, "
        f"sha256 {written.sha256} ({done.nodes} nodes, {done.seconds:.1f}s)"
    )


def point_target(at: str | None, pick_random: bool, repository: Repository, stream: str | None) -> pitr.Target:
    """--at ZXID|TIME or --random (default: the latest point) as a target of ``repository``."""
    if at is not None and pick_random:
        raise UsageError("give --at or --random, not both")
    if pick_random:
        return repo_drill.random_target(repository, stream, random.SystemRandom())
    if at is None:
        return pitr.Target(latest=True)
    looks_like_zxid = at.lower().startswith("0x") or at.isdigit()
    return make_target(at if looks_like_zxid else None, None if looks_like_zxid else at, False)


@cli.command("drill")
@repo_option
@repo_key_option
@click.option("--at", default=None, help="The point: a zxid (decimal or 0x hex) or an RFC 3339 time [default: latest].")
@click.option("--random", "pick_random", is_flag=True, help="A restorable point picked at random.")
@click.option("--stream", default=None, help="Only this stream (default: whichever covers the point).")
@tmp_dir_option
@verbose_option
@json_option
def drill_cmd(
    repo: str,
    repo_key_file: Path | None,
    at: str | None,
    pick_random: bool,
    stream: str | None,
    tmp_dir: Path | None,
    verbose: bool,
    as_json: bool,
) -> None:
    """Restore a point of --repo into a scratch ZooKeeper and check that it serves the replay's tree.

    Assembles the point as a restore would (every snapshot and segment checked, replayed with ZooKeeper's
    tree digests) into a private temporary directory, starts a standalone ZooKeeper on it on loopback, and
    compares everything it serves with the replayed tree, node for node. Nothing of this master is touched;
    the scratch server is removed after. Exit 1 with the reason if the repository is damaged.
    """
    setup_logging(verbose)
    repository = open_repo(repo, repo_key_file)
    result = repo_drill.drill(repository, point_target(at, pick_random, repository, stream), stream, tmp_dir)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    click.echo(
        f"drill of {result.point}: OK: a scratch ZooKeeper serves the {result.served_nodes} nodes replayed "
        f"(tree digest {result.digest}, {result.transactions} transactions, {result.seconds:.1f}s)"
    )


@cli.command("log")
@repo_option
@repo_key_option
@click.option("--since", default=None, help="Only transactions at or after this RFC 3339 time.")
@click.option("--until", default=None, help="Only transactions at or before this RFC 3339 time.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many lines.")
@click.option("--path-prefix", default=None, help="Only operations on this znode or below it.")
@click.option("--stream", default=None, help="Only this stream.")
@click.option("--generation", default=None, help="Only this history (STREAM/GENERATION or GENERATION).")
@click.option(
    "--json", "as_json", is_flag=True, help="One JSON object per line (zxid, time, type, path, session, generation)."
)
def log_cmd(
    repo: str,
    repo_key_file: Path | None,
    since: str | None,
    until: str | None,
    limit: int | None,
    path_prefix: str | None,
    stream: str | None,
    generation: str | None,
    as_json: bool,
) -> None:
    """Every archived transaction, one line each with its history (a multi: one line per operation).

    dcos-zk timeline shows what is restorable."""
    if path_prefix is not None and not path_prefix.startswith("/"):
        raise UsageError(f"--path-prefix must be absolute, got {path_prefix!r}")
    index = RepoIndex(open_repo(repo, repo_key_file), stream)
    since_us = parse_time(since) if since is not None else None
    until_us = parse_time(until) if until is not None else None
    lines = txlog.transactions(index, since_us, path_prefix, until_us, generation)
    for doc in itertools.islice(lines, limit):
        click.echo(json.dumps(doc, separators=(",", ":")) if as_json else txlog.text_line(doc))


@cli.command("timeline")
@repo_option
@repo_key_option
@click.option("--stream", default=None, help="Only this stream.")
@click.option("--json", "as_json", is_flag=True, help="The documented JSON shape (docs/dcos-zk.md).")
def timeline_cmd(repo: str, repo_key_file: Path | None, stream: str | None, as_json: bool) -> None:
    """Per stream, each history: its epochs, restorable range, snapshots, gaps and what began it."""
    doc = timeline(RepoIndex(open_repo(repo, repo_key_file), stream))
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    for line in text_lines(doc):
        click.echo(line)


@cli.command()
@click.argument("archive")
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON, with every member.")
@tmp_dir_option
def info(archive: str, as_json: bool, tmp_dir: Path | None) -> None:
    """Show what ARCHIVE (a file or s3://bucket/key) holds without extracting it."""
    with transfer.fetched(archive, tmp_dir) as local:
        details = archive_info.info(local)
    if as_json:
        click.echo(json.dumps(details.to_dict(), indent=2))
        return
    click.echo(f"archive:          {details.archive} ({details.bytes} bytes)")
    click.echo(f"files:            {details.files} ({details.data_bytes} bytes uncompressed)")
    click.echo(f"snapshots:        {len(details.snapshots)}, newest {details.newest_snapshot}")
    click.echo(f"transaction logs: {len(details.logs)}, newest {details.newest_log}")
    click.echo(f"newest file zxid: {details.newest_file_zxid} (from file names; the last zxid: dcos-zk verify)")


@cli.command()
@click.argument("archive")
@tmp_dir_option
@verbose_option
@json_option
def verify(archive: str, tmp_dir: Path | None, verbose: bool, as_json: bool) -> None:
    """Check ARCHIVE (a file or s3://bucket/key) completely, as a restore would load it.

    Checks the gzip/tar structure and member names, every snapshot and log checksum, that transactions
    follow the snapshot without a gap, and ZooKeeper's tree digests while replaying the logs on the
    snapshot; prints the last zxid, node count and tree digest. Exit 1 with the reason on any corruption.
    """
    setup_logging(verbose)
    with transfer.fetched(archive, tmp_dir) as local, progress_on_terminal("files") as update:
        result = zk_verify.verify_data_archive(local, tmp_dir, update)
    if is_s3_url(archive):
        result.archive = archive
    if as_json:
        click.echo(json.dumps(asdict(result), indent=2))
        return
    click.echo(
        f"{archive}: OK: {result.snapshot} + {len(result.logs)} logs ({result.transactions} transactions), "
        f"last zxid {result.last_zxid}, {result.nodes} nodes, tree digest {result.digest} "
        f"({result.digests_checked} digests matched, {result.seconds:.1f}s)"
    )


@cli.command()
@click.argument("archive")
@click.option("--path", "prefix", default="/", show_default=True, help="Only this node and its descendants.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per node (path, data, acl, stat).")
@tmp_dir_option
@verbose_option
def dump(archive: str, prefix: str, as_json: bool, tmp_dir: Path | None, verbose: bool) -> None:
    """Print the tree ARCHIVE (a file or s3://bucket/key) would restore (after verifying it), sorted by path."""
    setup_logging(verbose)
    if not prefix.startswith("/"):
        raise UsageError(f"--path must be absolute, got {prefix!r}")
    with transfer.fetched(archive, tmp_dir) as local, zk_verify.rebuilt_archive(local, tmp_dir) as (store, _):
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


@cli.command("check-live")
@click.argument("archive")
@click.option(
    "--zk",
    "hosts",
    envvar="DCOS_ZK_HOSTS",
    default="127.0.0.1:2181",
    show_default=True,
    help="The ensemble's connect string ($DCOS_ZK_HOSTS).",
)
@tmp_dir_option
@json_option
def check_live_cmd(archive: str, hosts: str, tmp_dir: Path | None, as_json: bool) -> None:
    """Did the restore of ARCHIVE (a file or s3://bucket/key) take? Compares the live tree with the archive's.

    Every live node must be the archive's or changed after the restore; live data with history the
    archive does not know (a master that was not restored led the ensemble) fails it, exit code 1.
    """
    with transfer.fetched(archive, tmp_dir) as local:
        result = check_live(local, hosts, tmp_dir)
    click.echo(json.dumps({**asdict(result), "took": result.took}, indent=2) if as_json else result.describe())
    if not result.took:
        click.get_current_context().exit(1)


@cli.command()
@verbose_option
@exhibitor_dir_option
@wait_lock_option
def recover(verbose: bool, exhibitor_dir: Path, wait_lock: bool) -> None:
    """Finish or roll back a restore that was interrupted (dcos-exhibitor also does this at start)."""
    setup_logging(verbose)
    click.echo(journal.recover(exhibitor_dir, wait=wait_lock) or "nothing to recover")


def default_stream(exhibitor_dir: Path) -> str:
    """``master-<myid>``: the stream a master archives into unless told otherwise."""
    myid = swap.read_myid(MasterLayout(exhibitor_dir))
    if myid is None:
        raise UsageError(f"no myid in {exhibitor_dir}: pass --stream NAME")
    return f"master-{myid}"


@cli.group(invoke_without_command=True)
@click.option(
    "--repo", envvar="DCOS_ZK_REPO", default=None, help="Repository: a directory or s3://bucket/prefix ($DCOS_ZK_REPO)."
)
@exhibitor_dir_option
@click.option("--stream", default=None, help="Stream name in the repository [default: master-<myid>].")
@click.option("--interval", default=0.5, show_default=True, help="Seconds between passes over the logs.")
@repo_key_option
@verbose_option
@click.pass_context
def archive(
    ctx: click.Context,
    repo: str | None,
    exhibitor_dir: Path,
    stream: str | None,
    interval: float,
    repo_key_file: Path | None,
    verbose: bool,
) -> None:
    """Stream this master's ZooKeeper logs and snapshots into --repo, continuously (until SIGTERM).

    Every new record is in the repository about --interval seconds after ZooKeeper wrote it; every
    sealed snapshot too. Restore any archived moment with: dcos-zk restore --repo REPO --to-zxid/--to-time.
    """
    if ctx.invoked_subcommand is not None:
        return
    if repo is None:
        raise UsageError("dcos-zk archive needs --repo (or $DCOS_ZK_REPO)")
    if interval <= 0:
        raise UsageError("--interval must be positive")
    setup_logging(verbose)
    os.nice(5)  # beside ZooKeeper: its clients come first; the archive needs little CPU
    archiver = Archiver(
        MasterLayout(exhibitor_dir),
        open_repo(repo, repo_key_file, create=True),
        check_stream_name(stream or default_stream(exhibitor_dir)),
        interval,
    )
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: archiver.stop())
    archiver.run()


@archive.command("status")
@repo_option
@repo_key_option
@click.option("--stream", default=None, help="Only this stream.")
@click.option("--json", "as_json", is_flag=True, help="Every generation as JSON.")
def archive_status(repo: str, repo_key_file: Path | None, stream: str | None, as_json: bool) -> None:
    """What the repository holds: per stream, its generations, their restorable ranges and any problem."""
    index = RepoIndex(open_repo(repo, repo_key_file), stream)
    docs: list[dict[str, Any]] = [
        {
            "stream": gen.stream,
            "generation": gen.id,
            "reason": (gen.info or {}).get("reason"),
            "ended": (gen.end or {}).get("reason"),
            "snapshots": len(gen.snapshots),
            "segments": len(gen.segments),
            "bytes": sum(o.size for o in gen.snapshots) + sum(o.size for o in gen.segments),
            "restorable": [{**asdict(r), "first": zxid_hex(r.first), "last": zxid_hex(r.last)} for r in gen.ranges()],
            "problems": gen.problems(),
        }
        for gen in index.generations
    ]
    if as_json:
        click.echo(json.dumps(docs, indent=2))
        return
    for doc, gen in zip(docs, index.generations, strict=True):
        ranges = describe_ranges(gen.ranges())
        click.echo(f"{gen.name}: {doc['snapshots']} snapshots, {doc['segments']} segments, {doc['bytes']} bytes")
        click.echo(f"    began: {doc['reason']}" + (f"; ended: {doc['ended']}" if doc["ended"] else "; live"))
        click.echo(f"    restorable: {ranges}")
        for problem in doc["problems"]:
            click.echo(f"    PROBLEM: {problem}")


@archive.command("verify")
@repo_option
@repo_key_option
@click.option("--stream", default=None, help="Only this stream.")
@tmp_dir_option
def archive_verify(repo: str, repo_key_file: Path | None, stream: str | None, tmp_dir: Path | None) -> None:
    """Read back every object against the MAC and zxids its name holds, and check each generation's continuity."""
    index = RepoIndex(open_repo(repo, repo_key_file), stream)
    with tempfile.TemporaryDirectory(prefix=".dcos-zk-archive-verify-", dir=tmp_dir) as work:
        done = verify_repository(index, Path(work))
    click.echo(
        f"{repo}: OK: {done.generations} generations, {done.segments} segments, {done.snapshots} snapshots "
        f"({done.bytes} bytes) read back and matched"
    )


@archive.command("prune")
@repo_option
@repo_key_option
@click.option("--keep-days", type=float, required=True, help="Every point of the last N days stays restorable.")
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
def archive_prune(repo: str, repo_key_file: Path | None, keep_days: float, dry_run: bool) -> None:
    """Remove what only serves points older than --keep-days (the rest stays restorable)."""
    result = prune.prune_repository(open_repo(repo, repo_key_file), keep_days, int(time.time() * 1000), dry_run)
    verb = "would remove" if dry_run else "removed"
    click.echo(
        f"{verb} {result.objects} objects ({result.bytes} bytes), {len(result.generations_removed)} whole "
        f"generations; every point since {result.cutoff} stays restorable"
    )


@archive.command("compact")
@repo_option
@repo_key_option
@click.option("--stream", default=None, help="Only this stream [default: every stream].")
@click.option(
    "--every",
    "--max-replay",
    "every",
    type=int,
    default=compact.DEFAULT_EVERY,
    show_default=True,
    help="Write a snapshot every N transactions: no restore replays more than about N.",
)
@tmp_dir_option
@verbose_option
def archive_compact(
    repo: str, repo_key_file: Path | None, stream: str | None, every: int, tmp_dir: Path | None, verbose: bool
) -> None:
    """Build snapshots in the repository from its snapshots and segments, so restores replay little.

    Each is checked against the tree digest ZooKeeper logged at its zxid before it is stored (MAC'd,
    marked compacted); ZooKeeper starts from it as from its own. Safe to run while archiving and again.
    """
    setup_logging(verbose)
    result = compact.compact_repository(open_repo(repo, repo_key_file), every, stream, tmp_dir)
    click.echo(
        f"{repo}: {len(result.snapshots)} compacted snapshots stored in {result.generations} generations "
        f"({result.transactions} transactions replayed, {result.seconds:.1f} s); no point needs more than "
        f"about {every} transactions of replay"
    )


def main() -> NoReturn:
    logging.captureWarnings(True)
    run(cli, sys.argv[1:])


if __name__ == "__main__":
    main()
