"""A follower checks the token before it reads a byte of the body (issue 24, item 5).

Every master runs the service; only one leads, and the others forward job requests to it. The forwarding
must come after the request guard: a follower that read the body first (to forward it) held a whole
300 MiB upload with an invalid token in memory. Each case sends a big body with a bad token to master 2's
service (a follower on the shared cluster), chunked and not, to a capped route and to the upload, and
measures the follower's peak RSS (from /proc, reset first).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from tests.security.test_request_limits import BIG, GROWTH_LIMIT, Chunks, assert_json_error, peak_rss

from dcos_backup.api.paths import CREATE, UPLOAD
from dcos_backup.master.processes import read_pid

pytestmark = pytest.mark.e2e

BAD_TOKEN = {"Authorization": "token=not.a.token"}


def follower(cluster) -> dict[str, str]:
    info = cluster.services[1]
    assert info["master"] == "2"
    return info


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
@pytest.mark.parametrize("path", [CREATE, UPLOAD], ids=["create", "upload"])
def test_a_follower_refuses_a_bad_token_before_reading_the_body(cluster, path, chunked):
    info = follower(cluster)
    pid = read_pid(Path(info["child_pid_file"]))
    assert pid is not None
    body = Chunks(BIG)
    headers = dict(BAD_TOKEN)
    if not chunked:
        headers["Content-Length"] = str(BIG)
    transport = httpx.HTTPTransport(uds=info["socket"])
    with httpx.Client(transport=transport, base_url="http://local", timeout=60) as http, peak_rss(pid) as rss:
        response = http.post(path, content=body, headers=headers)
    assert_json_error(response, 401, "unauthorized")
    print(f"\nfollower {path}: {BIG >> 20} MiB, bad token -> 401; {body.sent >> 10} KiB sent, +{rss.growth >> 20} MiB")
    assert rss.growth < GROWTH_LIMIT, f"the follower's RSS grew by {rss.growth >> 20} MiB"
    assert body.sent < BIG // 4, f"the follower read {body.sent >> 20} MiB of a body it should refuse unread"
