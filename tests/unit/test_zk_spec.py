"""Connect strings -> ZkSpec: kazoo's own parsing (IPv6 in brackets, default port), chroot as kazoo's client."""

from __future__ import annotations

import pytest
from kazoo.client import KazooClient

from dcos_backup.errors import UsageError, ZooKeeperUnavailable
from dcos_backup.logical import ZkSpec
from dcos_backup.logical.wire import Connection


def test_ipv6_hosts_and_a_chroot():
    spec = ZkSpec.parse("[::1]:2181,10.0.0.2:2182,[fe80::1]/dcos/backup")
    assert spec.addresses == (("::1", 2181), ("10.0.0.2", 2182), ("fe80::1", 2181))
    assert spec.chroot == "/dcos/backup"
    assert spec.connect_string == "[::1]:2181,10.0.0.2:2182,[fe80::1]:2181/dcos/backup"
    assert ZkSpec.parse(spec.connect_string) == spec


@pytest.mark.parametrize(
    ("hosts", "chroot"),
    [("h:2181", ""), ("h:2181/", ""), ("h:2181/a/", "/a"), ("h:2181/a//b", "/a/b"), ("h/x", "/x")],
)
def test_chroot_is_normalised_as_kazoos_client_does(hosts, chroot):
    assert ZkSpec.parse(hosts).chroot == chroot == KazooClient(hosts=hosts).chroot


def test_paths_are_put_under_the_chroot():
    spec = ZkSpec.parse("h:2181/base")
    assert [spec.full_path(p) for p in ("/", "/marathon", "/marathon/a")] == [
        "/base",
        "/base/marathon",
        "/base/marathon/a",
    ]
    assert ZkSpec.parse("h:2181").full_path("/marathon") == "/marathon"


def test_of_takes_a_spec_or_a_string_and_keeps_the_session_timeout():
    spec = ZkSpec.parse("h:2181", session_timeout=60)
    assert ZkSpec.of(spec) is spec and spec.session_timeout == 60
    assert ZkSpec.of("h:2181").session_timeout == 15.0
    with pytest.raises(AttributeError):
        spec.chroot = "/elsewhere"  # frozen


@pytest.mark.parametrize("hosts", ["", "h:notaport", "h:99999", ",h:2181"])
def test_a_malformed_connect_string_is_a_usage_error(hosts):
    with pytest.raises(UsageError, match="invalid ZooKeeper connect string"):
        ZkSpec.parse(hosts)


def test_an_ipv6_address_is_dialled_as_such():
    # Nothing listens on port 1 of ::1: the attempt reaches the address and is refused (a bracketed
    # host taken for a name would fail to resolve instead).
    with pytest.raises(ZooKeeperUnavailable, match=r"at \[::1\]:1/c \(\[::1\]:1: Connection refused\)"):
        Connection(ZkSpec.parse("[::1]:1/c", session_timeout=1))
