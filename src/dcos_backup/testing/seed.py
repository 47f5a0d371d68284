"""Realistic, deterministic Marathon state for demos, tests and benchmarks.

The layout follows Marathon 1.x's ZooKeeper store: ``/marathon/state/{app,group,deployment,instance,
pod,framework-id,...}`` with JSON payloads of the sizes Marathon writes (1-4 KB apps, ~1 KB instances),
a few binary nodes (framework id, storage version), and a few nodes with non-default ACLs. The same
``(apps, seed)`` always gives byte-identical state. Ephemeral nodes (Marathon's leader latch, Mesos'
master info) come from :mod:`.holder`, since they need a live session.

It lives in :mod:`dcos_backup.testing`, not in the launcher, because it is synthetic data, not part of the
product: tests and benchmarks import it directly (without a launcher), and the launcher, which may import
anything, exposes it to people trying the tools as ``dcos-local seed``.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionLoss, NodeExistsError
from kazoo.security import OPEN_ACL_UNSAFE, make_acl

ROOT = "/marathon"
BATCH_OPS = 500
BATCH_BYTES = 900 * 1024  # a multi must stay under jute.maxbuffer (1 MiB)

# Nodes Marathon's operator may have locked down: loopback clients keep full rights, others read.
RESTRICTED_ACL = [make_acl("ip", "127.0.0.0/8", all=True), make_acl("world", "anyone", read=True)]
NO_ADMIN_ACL = [make_acl("world", "anyone", read=True, write=True, create=True, delete=True)]

IMAGES = ["nginx:1.25", "python:3.11-slim", "redis:7", "postgres:15", "busybox:1.36", "mesosphere/marathon-lb:v1.15"]
TEAMS = ["payments", "search", "checkout", "platform", "data", "ml", "ops"]


@dataclass
class SeedStats:
    nodes: int = 0
    bytes: int = 0


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _timestamp(rng: random.Random) -> str:
    day, hour, minute, second, milli = (
        rng.randint(1, 28),
        rng.randint(0, 23),
        rng.randint(0, 59),
        rng.randint(0, 59),
        rng.randint(0, 999),
    )
    return f"2026-10-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}.{milli:03d}Z"


def _app(rng: random.Random, app_id: str, version: str) -> dict:
    env = {
        f"VAR_{i}": "".join(rng.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=rng.randint(8, 40)))
        for i in range(rng.randint(3, 25))
    }
    return {
        "id": app_id,
        "cmd": None,
        "args": ["--port", "$PORT0"],
        "cpus": rng.choice([0.1, 0.25, 0.5, 1, 2]),
        "mem": rng.choice([128, 256, 512, 1024, 4096]),
        "disk": 0,
        "instances": rng.randint(1, 5),
        "container": {
            "type": "DOCKER",
            "docker": {"image": rng.choice(IMAGES), "forcePullImage": False, "privileged": False},
            "portMappings": [{"containerPort": 8080, "hostPort": 0, "protocol": "tcp", "name": "http"}],
        },
        "env": env,
        "labels": {"team": rng.choice(TEAMS), "HAPROXY_GROUP": "external"},
        "healthChecks": [
            {
                "protocol": "MESOS_HTTP",
                "path": "/health",
                "gracePeriodSeconds": 300,
                "intervalSeconds": 60,
                "timeoutSeconds": 20,
                "maxConsecutiveFailures": 3,
            }
        ],
        "upgradeStrategy": {"minimumHealthCapacity": 1, "maximumOverCapacity": 1},
        "version": version,
        "versionInfo": {"lastScalingAt": version, "lastConfigChangeAt": version},
    }


def _instance(rng: random.Random, app_id: str, version: str) -> dict:
    agent = f"{_uuid(rng)}-S{rng.randint(0, 40)}"
    return {
        "instanceId": {"idString": f"{app_id.strip('/').replace('/', '_')}.instance-{_uuid(rng)}"},
        "agentInfo": {"host": f"10.0.{rng.randint(0, 255)}.{rng.randint(1, 254)}", "agentId": agent, "attributes": []},
        "tasksMap": {},
        "runSpecVersion": version,
        "state": {"condition": "Running", "since": version, "activeSince": version, "healthy": True},
        "unreachableStrategy": {"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0},
        "reservation": None,
    }


def _encode(doc: dict) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def marathon_nodes(apps: int = 50, seed: int = 0) -> Iterator[tuple[str, bytes, list]]:
    """Yield ``(path, data, acl)`` for the whole state, parents before children."""
    rng = random.Random(seed)
    yield ROOT, b"", OPEN_ACL_UNSAFE
    for name in ("leader", "leader-curator", "state"):
        yield f"{ROOT}/{name}", b"", OPEN_ACL_UNSAFE
    state = f"{ROOT}/state"
    for name in ("app", "group", "deployment", "instance", "pod", "internal", "taskFailure"):
        yield f"{state}/{name}", b"", OPEN_ACL_UNSAFE
    yield f"{state}/framework-id", b"\n$" + _uuid(rng).encode() + b"-0001", RESTRICTED_ACL
    yield f"{state}/internal/storage", b"", OPEN_ACL_UNSAFE
    yield f"{state}/internal/storage/version", bytes([8, 1, 16, 9, 24, 0, 34, 0]), NO_ADMIN_ACL
    yield f"{state}/internal/blob", bytes(rng.getrandbits(8) for _ in range(4096)), OPEN_ACL_UNSAFE

    groups: dict[str, list[str]] = {}
    app_ids = []
    for i in range(apps):
        team = TEAMS[i % len(TEAMS)]
        app_id = f"/{team}/svc-{i:06d}"
        groups.setdefault(f"/{team}", []).append(app_id)
        app_ids.append(app_id)

    for app_id in app_ids:
        escaped = app_id.strip("/").replace("/", "_")
        versions = sorted(_timestamp(rng) for _ in range(rng.randint(1, 3)))
        app_path = f"{state}/app/{escaped}"
        yield app_path, _encode(_app(rng, app_id, versions[-1])), OPEN_ACL_UNSAFE
        for version in versions:
            yield f"{app_path}/{version}", _encode(_app(rng, app_id, version)), OPEN_ACL_UNSAFE
        for _ in range(rng.randint(1, 4)):
            inst = _instance(rng, app_id, versions[-1])
            yield f"{state}/instance/{inst['instanceId']['idString']}", _encode(inst), OPEN_ACL_UNSAFE

    # One node per group (Marathon keeps group versions); the root lists groups only, so no node
    # comes near ZooKeeper's 1 MiB limit even with hundreds of thousands of apps.
    version = "2026-10-01T00:00:00.000Z"
    groups_summary = [{"id": g, "apps": len(ids)} for g, ids in sorted(groups.items())]
    root_group = {"id": "/", "apps": [], "pods": [], "dependencies": [], "groups": groups_summary, "version": version}
    yield f"{state}/group/2", _encode(root_group), OPEN_ACL_UNSAFE
    for group_id, ids in sorted(groups.items()):
        yield f"{state}/group/2{group_id}", _encode({"id": group_id, "apps": ids, "version": version}), OPEN_ACL_UNSAFE
    for _ in range(max(1, apps // 50)):
        dep_id = _uuid(rng)
        deployment = {
            "id": dep_id,
            "affectedApps": rng.sample(app_ids, k=min(3, len(app_ids))),
            "steps": [{"actions": [{"action": "ScaleApplication", "app": a}]} for a in app_ids[:2]],
            "currentStep": 1,
            "totalSteps": 2,
            "version": _timestamp(rng),
        }
        yield f"{state}/deployment/{dep_id}", _encode(deployment), OPEN_ACL_UNSAFE
    for i in range(max(1, apps // 100)):
        yield (
            f"{state}/pod/pod-{i:04d}",
            _encode({"id": f"/pods/pod-{i:04d}", "containers": [], "scaling": {"kind": "fixed", "instances": 1}}),
            OPEN_ACL_UNSAFE,
        )


def seed_marathon(
    client: KazooClient, apps: int = 50, seed: int = 0, progress: Callable[[int, int], None] | None = None
) -> SeedStats:
    """Write the state of :func:`marathon_nodes` (which must not exist yet) in transaction batches.

    ``progress(nodes, bytes)`` is told the totals written so far after each batch.
    """
    stats = SeedStats()
    if client.exists(ROOT):
        raise NodeExistsError(f"{ROOT} already exists")
    batch: list[tuple[str, bytes, list]] = []
    size = 0
    for path, data, acl in marathon_nodes(apps, seed):
        node_size = len(path) + len(data) + 64
        if batch and (len(batch) >= BATCH_OPS or size + node_size > BATCH_BYTES):
            _commit(client, batch)
            batch, size = [], 0
            if progress is not None:
                progress(stats.nodes, stats.bytes)
        batch.append((path, data, acl))
        size += node_size
        stats.nodes += 1
        stats.bytes += len(data)
    if batch:
        _commit(client, batch)
    return stats


def _commit(client: KazooClient, batch: list[tuple[str, bytes, list]], attempts: int = 5) -> None:
    """Create a batch in one multi; after a connection loss, find out whether it was applied (a multi is
    all or nothing, so its last node tells) and retry only if it was not."""
    for attempt in range(attempts):
        txn = client.transaction()
        for path, data, acl in batch:
            txn.create(path, data, acl=acl)
        try:
            results = txn.commit()
        except ConnectionLoss:
            if attempt == attempts - 1:
                raise
            time.sleep(1 + attempt)
            if client.retry(client.exists, batch[-1][0]):
                return
            continue
        for result in results:
            if isinstance(result, Exception):
                raise result
        return
