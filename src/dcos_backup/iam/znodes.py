"""The znodes the backup service owns, under ``/dcos-backup``, and the one rule they follow: only the service's
ZooKeeper identity may change them (issue 24, item 1).

On DC/OS every agent, so every workload, reaches the masters' ZooKeeper as an anonymous client, and
ZooKeeper checks a create or a delete against the *parent's* ACL. So every znode the service owns, the root
included, carries the service's digest ACL (``ALL`` for its identity; the world may at most read, and not
even that where a secret is held: the users), and is created with that ACL and its content in one request
(a missing root in the same transaction as its first child), never opened and closed later.

The layout, each path spelled here once::

    /dcos-backup              root (container)
    /dcos-backup/iam          the users and grants (secret: no world read)  iam/store.py
    /dcos-backup/lock         the job lock's parent (container); kazoo's lock children  jobs/engine.py
    /dcos-backup/schedules    one child per schedule (container; no world read)  jobs/schedules.py
    /dcos-backup/leader       the leader's ephemeral znode  jobs/leadership.py

:func:`secure_tree` runs when the service starts: it creates the containers that are missing, repairs the
ACL of a container an older version created open (logged, once: after the repair it is the service's),
and removes every other node whose ACL is not the service's (named in the log): such a node was not made by
this service, so its content (a user, a schedule, a lock holder, a leader) is not trusted. From then on
nothing can appear under the root that the service did not create, since only its identity may create
there. A root the service cannot repair (another identity owns it) is refused: the service does not start.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Protocol

from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError, NodeExistsError, NoNodeError, NotEmptyError
from kazoo.security import ACL, ANYONE_ID_UNSAFE, Id, Permissions, make_digest_acl_credential

from dcos_backup.errors import DcosBackupError

log = logging.getLogger(__name__)

ROOT = "/dcos-backup"
IAM = f"{ROOT}/iam"
LOCK = f"{ROOT}/lock"
SCHEDULES = f"{ROOT}/schedules"
LEADER = f"{ROOT}/leader"
EPOCH = f"{ROOT}/epoch"  # the fencing epoch, raised by each new leader (jobs/fencing.py)
JOURNAL = f"{ROOT}/journal"  # the jobs' fenced journal (jobs/fencing.py)
CONTAINERS = (ROOT, LOCK, SCHEDULES)  # hold no content of their own: repairing their ACL trusts nothing
SECRET = (IAM, SCHEDULES)  # no world read: the users; the schedules (what runs, what retention deletes)

WORLD_READ = ACL(Permissions.READ, ANYONE_ID_UNSAFE)


class Identity(Protocol):
    """A ZooKeeper digest identity (:class:`dcos_backup.iam.store.Credentials` is one)."""

    @property
    def user(self) -> str: ...

    @property
    def password(self) -> str: ...


class UntrustedTree(DcosBackupError):
    """The service's root znode belongs to another identity: the service cannot trust anything under it."""


def digest_auth_of(identity: Identity) -> tuple[str, str]:
    """The auth packet a session presents to act as ``identity`` (ZooKeeper's digest scheme)."""
    return "digest", f"{identity.user}:{identity.password}"


def digest_id(identity: Identity) -> str:
    """``user:base64(sha1(user:password))``: how ZooKeeper names the identity in an ACL."""
    return str(make_digest_acl_credential(identity.user, identity.password))


def owner_acl(identity: Identity, path: str = ROOT) -> list[ACL]:
    """The ACL of the service's znode ``path``: everything for the service, read for the world unless secret."""
    owner = ACL(Permissions.ALL, _id(identity))
    return [owner] if path in SECRET else [owner, WORLD_READ]


def _id(identity: Identity) -> Id:
    return Id("digest", digest_id(identity))


def is_owned(acls: list[ACL], identity: Identity) -> bool:
    """Whether ``acls`` is an ACL the service gave: ALL for its identity and, besides, at most world read."""
    mine = _id(identity)
    has_owner = any(a.id == mine and a.perms == Permissions.ALL for a in acls)
    return has_owner and all(a.id == mine or a == WORLD_READ for a in acls)


def create_owned(client: KazooClient, path: str, data: bytes, identity: Identity, **kwargs: object) -> str:
    """Create the service's znode ``path`` with ``data`` and the service's ACL, and the root with it in one
    transaction if the root is missing (so that no moment exists where the root is there without its ACL
    being the service's). ``kwargs``: kazoo's ``ephemeral``/``sequence``. NodeExistsError as kazoo's."""
    acl = owner_acl(identity, path)
    try:
        return str(client.create(path, data, acl=acl, **kwargs))
    except NoNodeError:
        if path.rsplit("/", 1)[0] != ROOT:
            raise
    transaction = client.transaction()
    transaction.create(ROOT, b"", acl=owner_acl(identity))
    transaction.create(path, data, acl=acl, **kwargs)
    root, created = transaction.commit()
    if isinstance(root, NodeExistsError):  # another instance made the root meanwhile
        return str(client.create(path, data, acl=acl, **kwargs))
    for result in (root, created):
        if isinstance(result, Exception):
            raise result
    return str(created)


def secure_tree(client: KazooClient, identity: Identity) -> list[str]:
    """Make the service's subtree trustworthy (see the module's docstring) on ``client``, which presents
    ``identity``; returns the paths of the untrusted nodes it removed. UntrustedTree if the root is not
    the service's and cannot be made so."""
    removed: list[str] = []
    for path in CONTAINERS:  # the root first: nothing below it is trusted before it is the service's
        try:
            client.create(path, b"", acl=owner_acl(identity, path))
        except NodeExistsError:
            _repair(client, path, identity)
    for path in _walk(client, ROOT):
        if path in CONTAINERS:
            continue
        try:
            acls, _ = client.get_acls(path)
            if is_owned(acls, identity):
                continue
            what = f"its ACL ({_describe(acls)})"
        except NoNodeError:
            continue
        except NoAuthError:
            what = "its ACL (not readable by the service)"
        log.error(
            "removing %s: %s is not the backup service's, so the service did not create it and does not trust it",
            path,
            what,
        )
        try:
            client.delete(path, recursive=True)
            removed.append(path)
        except (NoNodeError, NotEmptyError):
            continue
        except NoAuthError:  # children of its own we may not delete: it stays, untrusted
            log.error("cannot remove %s (another identity's children): it is ignored, not trusted", path)
    return removed


def _repair(client: KazooClient, path: str, identity: Identity) -> None:
    try:
        acls, stat = client.get_acls(path)
    except NoAuthError as exc:  # not even readable: another identity's
        raise UntrustedTree(
            f"the backup service's znode {path} belongs to another ZooKeeper identity; the service trusts "
            "nothing under it: remove it (with that identity) or give the service its credentials"
        ) from exc
    if is_owned(acls, identity):
        return
    try:
        client.set_acls(path, owner_acl(identity, path), version=stat.aversion)
    except NoAuthError as exc:
        raise UntrustedTree(
            f"the backup service's znode {path} belongs to another ZooKeeper identity ({_describe(acls)}); "
            "the service trusts nothing under it: remove it (with that identity) or give the service its credentials"
        ) from exc
    log.warning(
        "repaired the ACL of %s (was %s, as an older version of the service made it): only the service may "
        "change it now",
        path,
        _describe(acls),
    )


def _walk(client: KazooClient, path: str) -> Iterator[str]:
    """``path``'s descendants, parents before children."""
    try:
        children = client.get_children(path)
    except (NoNodeError, NoAuthError):  # gone, or another identity's (then removed or named already)
        return
    for child in sorted(children):
        full = f"{path}/{child}"
        yield full
        yield from _walk(client, full)


def _describe(acls: list[ACL]) -> str:
    return ", ".join(f"{a.id.scheme}:{a.id.id.split(':', 1)[0]} {a.acl_list}" for a in acls) or "none"
