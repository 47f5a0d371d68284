"""What ``dcos`` loads when it starts: part of every backup's wall time through the front door
(docs/performance.md), so the heavy packages it does not need stay out."""

import json
import subprocess
import sys

HEAVY = (
    "fastapi",
    "starlette",
    "pydantic",
    "rich",
    "pygments",
    "kazoo",
    "httpx._main",
    "dcos_backup.local",
    "dcos_backup.jobs",
    "dcos_backup.api.models",
)


def test_the_dcos_cli_starts_without_the_service_stack():
    probe = "import sys, json, dcos_backup.cli.dcos; print(json.dumps(sorted(k for k, v in sys.modules.items() if v)))"
    loaded = json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, check=True).stdout)
    assert "httpx" in loaded and "click" in loaded  # what it does need
    assert [m for m in loaded if m.split(".")[0] in HEAVY or m in HEAVY or m.startswith(HEAVY)] == []
