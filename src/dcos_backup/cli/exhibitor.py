"""``dcos-exhibitor``: run this master's ZooKeeper under supervision and serve the cluster status API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import NoReturn

import click

from dcos_backup import __version__
from dcos_backup.cli._common import run, setup_logging
from dcos_backup.cli._tables import print_status_table
from dcos_backup.exhibitor.config import NodeConfig
from dcos_backup.exhibitor.daemon import serve
from dcos_backup.exhibitor.status import cluster_status


@click.group(help="Per-master supervisor of ZooKeeper with the Exhibitor cluster status API.")
@click.version_option(__version__, "--version", message="%(prog)s %(version)s")
def cli() -> None:
    pass


config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="Node config (JSON: id, members, exhibitor_dir, zk_extra); dcos-local writes one per master.",
)


@cli.command("run")
@config_option
@click.option(
    "--force", is_flag=True, help="Start ZooKeeper even if the restore marks say its data is not the others' restore."
)
def run_cmd(config_path: Path, force: bool) -> None:
    """Run ZooKeeper (restarted when it dies) and serve GET /exhibitor/v1/cluster/status until SIGTERM."""
    setup_logging(True)
    serve(NodeConfig.load(config_path), force)


@cli.command("status")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the Exhibitor JSON list.")
def status_cmd(config_path: Path, as_json: bool) -> None:
    """Print each member's state, as the status endpoint would."""
    cfg = NodeConfig.load(config_path)
    statuses = cluster_status(cfg.members)
    if as_json:
        click.echo(json.dumps([s.to_dict() for s in statuses], indent=2))
    else:
        print_status_table(f"ZooKeeper ensemble seen from master {cfg.id}", statuses)


def main() -> NoReturn:
    run(cli)


if __name__ == "__main__":
    main()
