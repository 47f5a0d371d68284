"""zoo.cfg generation, node config files and --zk-config parsing."""

from pathlib import Path

import pytest

from dcos_backup.errors import ClusterError, UsageError
from dcos_backup.exhibitor.config import NodeConfig, parse_zk_extra, render_zoo_cfg
from dcos_backup.master.member import Member

MEMBERS = (Member(1, "127.5.0.1"), Member(2, "127.5.0.2"), Member(3, "127.5.0.3"))


def config(tmp_path: Path, **kw) -> NodeConfig:
    return NodeConfig(id=2, members=MEMBERS, exhibitor_dir=tmp_path / "ex", **kw)


def parse(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines())


def test_zoo_cfg_uses_dcos_layout_and_own_address(tmp_path):
    cfg = parse(render_zoo_cfg(config(tmp_path)))
    assert cfg["dataDir"] == str(tmp_path / "ex" / "zookeeper" / "snapshot")
    assert cfg["dataLogDir"] == str(tmp_path / "ex" / "zookeeper" / "transactions")
    assert cfg["clientPort"] == "2181"
    assert cfg["clientPortAddress"] == "127.5.0.2"
    assert cfg["server.1"] == "127.5.0.1:2888:3888"
    assert cfg["server.3"] == "127.5.0.3:2888:3888"
    assert cfg["4lw.commands.whitelist"] == "*"
    assert cfg["admin.enableServer"] == "false"


def test_zk_extra_lines_come_last_and_override(tmp_path):
    text = render_zoo_cfg(config(tmp_path, zk_extra=(("snapCount", "2"), ("tickTime", "500"))))
    cfg = parse(text)
    assert cfg["snapCount"] == "2"
    assert cfg["tickTime"] == "500"
    assert text.count("tickTime=") == 1


def test_parse_zk_extra():
    assert parse_zk_extra(["snapCount=2", " a = b "]) == (("snapCount", "2"), ("a", "b"))
    for bad in ["snapCount", "=2", "a=b\nc=d"]:
        with pytest.raises(UsageError):
            parse_zk_extra([bad])


def test_node_config_round_trips(tmp_path):
    cfg = config(tmp_path, zk_extra=(("snapCount", "2"),), heap="256m")
    cfg.write()
    assert NodeConfig.load(cfg.layout.node_config) == cfg


def test_own_id_must_be_a_member(tmp_path):
    with pytest.raises(UsageError, match="not among"):
        NodeConfig(id=7, members=MEMBERS, exhibitor_dir=tmp_path)


def test_bad_node_config_is_a_clear_error(tmp_path):
    path = tmp_path / "node.json"
    with pytest.raises(ClusterError, match="does not exist"):
        NodeConfig.load(path)
    path.write_text("{not json")
    with pytest.raises(ClusterError, match="cannot read"):
        NodeConfig.load(path)
    path.write_text('{"id": 1}')
    with pytest.raises(ClusterError, match="invalid node config"):
        NodeConfig.load(path)
