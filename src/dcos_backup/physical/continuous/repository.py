"""An authenticated point-in-time repository: whose it is, and a MAC on everything in it.

Anyone with write access to the object store could otherwise rewrite a segment (a transaction's data
changed, its tree digest dropped, its Adler-32 fixed, the object renamed with the new sha256) or archive
a second cluster into the first one's streams. So:

- **a repository key** per cluster (32 random bytes in a 0600 file, the record key's format; every
  master's archiver and the operator's ``dcos-zk`` have the same one: ``--repo-key-file`` or
  ``$DCOS_ZK_REPO_KEY_FILE``);
- **every object's name carries a MAC** instead of a bare sha256: the 64 hex digits after ``_`` are
  ``HMAC-SHA256(key, context || the key's path up to the MAC || sha256 of the content)``, so the zxids,
  times, stream and generation in the name are vouched for too (an object moved, renamed or rewritten
  does not verify). Every read checks the MAC before the bytes are used (a snapshot: before the
  data directory it was decompressed into is swapped in);
- **every JSON document** (``repository.json``, ``generation.json``, ``end.json``) holds a ``mac`` over
  its key and canonical JSON;
- **``repository.json``** at the root names the cluster (the key's public id, and a name) the repository
  belongs to; every archiver, restore, export and listing checks it first, so a second cluster (another
  key) is refused with one line instead of writing into, or reading from, the first one's history.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from dcos_backup.errors import IntegrityError, NotFound, UsageError
from dcos_backup.storage.base import ObjectStore
from dcos_backup.storage.crypto import EncryptionKey, load_key
from dcos_backup.storage.locations import open_store

RepoKey = EncryptionKey  # 32 secret bytes and a public id: the record key's file format and checks
REPOSITORY_FILE = "repository.json"
FORMAT = 2  # 1: names carried a bare sha256 (unauthenticated)
KEY_ENV = "DCOS_ZK_REPO_KEY_FILE"
_CONTEXT = b"dcos-zk repository v2\0"  # this key authenticates repository objects and nothing else


@dataclass(frozen=True)
class Repository:
    """An object store holding a continuous archive, with the cluster key that authenticates it."""

    store: ObjectStore
    key: RepoKey

    @property
    def url(self) -> str:
        return self.store.url

    # ------------------------------------------------------------------------------ MACs
    def object_mac(self, name: str, sha256: str) -> str:
        """The MAC an object's name ends with: over the name up to it (``name``) and its content's sha256."""
        return hmac.new(self.key.secret, _CONTEXT + name.encode() + b"\0" + sha256.encode(), hashlib.sha256).hexdigest()

    def check_object(self, key: str, name: str, mac: str, sha256: str) -> None:
        """IntegrityError unless ``mac`` (from ``key``) authenticates content with this sha256 under ``name``."""
        if not hmac.compare_digest(mac, self.object_mac(name, sha256)):
            raise IntegrityError(
                f"{key}: its MAC does not verify under this cluster's repository key (changed, renamed or "
                "written by someone else); not restoring from it"
            )

    def _doc_mac(self, key: str, doc: dict) -> str:
        fields = {k: v for k, v in doc.items() if k != "mac"}
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hmac.new(
            self.key.secret, _CONTEXT + key.encode() + b"\0" + canonical.encode(), hashlib.sha256
        ).hexdigest()

    def put_doc(self, key: str, doc: dict) -> dict:
        """Store ``doc`` as JSON with its MAC; returns it as stored."""
        signed = {**{k: v for k, v in doc.items() if k != "mac"}, "mac": ""}
        signed["mac"] = self._doc_mac(key, signed)
        self.store.put(key, json.dumps(signed, indent=2).encode() + b"\n")
        return signed

    def read_doc(self, key: str) -> dict:
        """A JSON document, after checking its MAC; IntegrityError naming it otherwise."""
        try:
            doc = json.loads(self.store.get_bytes(key))
            if not isinstance(doc, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            raise IntegrityError(f"{key} is corrupt ({exc})") from exc
        mac = doc.get("mac")
        if not isinstance(mac, str) or not hmac.compare_digest(mac, self._doc_mac(key, doc)):
            raise IntegrityError(
                f"{key}: its MAC does not verify under this cluster's repository key (changed, or written by "
                "another cluster or an older dcos-zk); not using it"
            )
        return doc

    # ------------------------------------------------------------------------------ identity
    def check_identity(self, create: bool = False) -> dict:
        """The repository's ``repository.json``, checked to be this cluster's; with ``create``, written if
        the repository has none. One line naming both keys if the repository is another cluster's."""
        try:
            raw = self.store.get_bytes(REPOSITORY_FILE)
        except NotFound:
            raw = None
        if raw is None:
            if not create:
                if any(True for _ in self.store.list("streams/")):
                    raise UsageError(
                        f"the repository {self.url} has no {REPOSITORY_FILE}: it was written by an older, "
                        "unauthenticated dcos-zk archive; archive into a new repository"
                    )
                raise NotFound(f"the repository {self.url} holds no archive (no {REPOSITORY_FILE})")
            doc = {
                "format": FORMAT,
                "key_id": self.key.id,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "created_by": socket.gethostname(),
            }
            return self.put_doc(REPOSITORY_FILE, doc)
        try:
            doc = json.loads(raw)
            owner = str(doc.get("key_id")) if isinstance(doc, dict) else "?"
        except ValueError:
            owner = "?"
        if owner != self.key.id:
            raise UsageError(
                f"the repository {self.url} belongs to another cluster (repository key {owner}; this cluster's "
                f"is {self.key.id}): give each cluster its own repository"
            )
        return self.read_doc(REPOSITORY_FILE)


def key_file_from(option: str | None, environ: dict[str, str] | None = None) -> Path:
    import os

    value = option or (environ if environ is not None else os.environ).get(KEY_ENV)
    if not value:
        raise UsageError(
            f"a point-in-time repository needs this cluster's repository key: --repo-key-file FILE or ${KEY_ENV}"
        )
    return Path(value)


def open_repository(url: str, key_file: Path, create: bool = False) -> Repository:
    """The repository at ``url`` (a directory or ``s3://``), checked to belong to the cluster of ``key_file``."""
    repo = Repository(open_store(url, create=create), load_key(Path(key_file)))
    repo.check_identity(create=create)
    return repo
