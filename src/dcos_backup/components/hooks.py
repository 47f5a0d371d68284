"""Application hooks around a restore: HTTP requests the service sends to a component's application.

An application that caches its state (Marathon) must re-read ZooKeeper after a restore; DC/OS did it by
"rebooting Marathon" around one. For Marathon, ``DELETE /v2/leader`` on its leader makes it abdicate,
and the next leader reads its state from ZooKeeper. A hook is configured per cluster, on the service:
``--hook "marathon:after=DELETE http://marathon.example:8080/v2/leader"`` (``NAME:WHEN=[METHOD ]URL``,
WHEN ``before`` or ``after``, METHOD POST when left out); no hooks by default.

``before`` hooks run once the archives are verified, before the safety backup and any change;
``after`` hooks once the restored tree is verified. A hook that fails (no answer, an HTTP status of 400
or more) fails the restore with its reason, and the restore is rolled back to its safety backup.
A restore into another root (``--map``) calls no hook: the application does not read that root.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import httpx

from dcos_backup.errors import DcosBackupError, UsageError

WHEN = ("before", "after")
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")
HOOK_TIMEOUT = 30.0  # seconds one hook may take


class HookFailed(DcosBackupError):
    """An application hook did not answer, or answered with an error."""


@dataclass(frozen=True)
class Hook:
    component: str
    when: str  # "before" | "after"
    method: str
    url: str

    def __str__(self) -> str:
        return f"{self.component} {self.when}-restore hook {self.method} {self.url}"

    def call(self, client: httpx.Client) -> None:
        """Send the request; HookFailed unless the application answers with a status below 400."""
        try:
            response = client.request(self.method, self.url)
        except httpx.HTTPError as exc:
            raise HookFailed(f"{self} failed: {exc or type(exc).__name__}") from exc
        if response.status_code >= 400:
            said = " ".join(response.text.split())[:200]
            raise HookFailed(f"{self} failed: HTTP {response.status_code}{': ' + said if said else ''}")


def parse_hook(spec: str) -> Hook:
    """``NAME:WHEN=[METHOD ]URL`` -> Hook; a malformed one is a UsageError."""
    target, sep, request = spec.partition("=")
    name, colon, when = target.partition(":")
    parts = request.split()
    if not sep or not colon or when not in WHEN or len(parts) not in (1, 2):
        raise UsageError(f"--hook wants NAME:before|after=[METHOD ]URL, got {spec!r}")
    method, url = (parts[0].upper(), parts[1]) if len(parts) == 2 else ("POST", parts[0])
    if method not in METHODS or not url.startswith(("http://", "https://")):
        raise UsageError(f"--hook wants an HTTP method ({', '.join(METHODS)}) and an http(s) URL, got {spec!r}")
    return Hook(name.strip(), when, method, url)


def run_hooks(hooks: Sequence[Hook], when: str, components: Iterable[str]) -> None:
    """Call the ``when`` hooks of ``components``, in the order configured; the first failure raises."""
    chosen = set(components)
    due = [h for h in hooks if h.when == when and h.component in chosen]
    if not due:
        return
    with httpx.Client(timeout=HOOK_TIMEOUT) as client:
        for hook in due:
            hook.call(client)
