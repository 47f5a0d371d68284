"""The one error hierarchy of dcos-backup.

Every error a user can cause or meet derives from :class:`DcosBackupError`. Each class carries the
CLI exit code and the HTTP status it maps to, so the mapping lives here and nowhere else:
``cli/_common.py`` turns an error into one line on stderr plus ``exit_code``; the service turns it
into DC/OS's JSON error body (``{"errors": ["..."]}``, plus our ``code``) and ``http_status``.

CLI exit codes: 0 ok, 1 operation failed, 2 usage error, 3 service / ZooKeeper unreachable.
"""

from __future__ import annotations


class DcosBackupError(Exception):
    """Base of every expected error. ``str(err)`` is a one-line, user-facing message."""

    exit_code: int = 1
    http_status: int = 500
    code: str = "error"

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, object]:
        """The API's error body: DC/OS's ``errors`` list, then our machine-readable ``code``."""
        body: dict[str, object] = {"errors": [self.message], "code": self.code}
        if self.details:
            body["details"] = self.details
        return body


class UsageError(DcosBackupError):
    """The request or the command line is wrong (bad label, bad flag value, ...)."""

    exit_code = 2
    http_status = 400
    code = "invalid_request"


class Unauthorized(DcosBackupError):
    """No token, or one that is malformed, expired, wrongly signed or names no known user."""

    http_status = 401
    code = "unauthorized"


class Forbidden(DcosBackupError):
    """A valid token whose user lacks the permission the request needs."""

    http_status = 403
    code = "forbidden"


class TooLarge(UsageError):
    """A request (its body) larger than the API accepts."""

    http_status = 413
    code = "too_large"


class RequestTimeout(UsageError):
    """A request that did not arrive whole (headers and body) within the service's deadline."""

    http_status = 408
    code = "request_timeout"


class NotFound(DcosBackupError):
    """A backup, archive, cluster or file that does not exist."""

    http_status = 404
    code = "not_found"


class Conflict(DcosBackupError):
    """The operation clashes with the current state (a job runs, ZooKeeper is running, target exists)."""

    http_status = 409
    code = "conflict"


class IntegrityError(DcosBackupError):
    """An archive or catalog entry fails its checksum or structure checks."""

    http_status = 422
    code = "integrity_error"


class EncryptionKeyError(IntegrityError):
    """An encrypted archive cannot be read with the key at hand: none is configured, or it is another key."""

    code = "encryption_key"


class StorageError(DcosBackupError):
    """Reading or writing backup storage failed (disk full, permissions, ...)."""

    http_status = 507
    code = "storage_error"


class ClusterError(DcosBackupError):
    """The local cluster is missing, broken or cannot be started."""

    code = "cluster_error"


class MissingDependency(DcosBackupError):
    """A program the tool needs (Java, the ZooKeeper server) is not installed."""

    code = "missing_dependency"


class Unavailable(DcosBackupError):
    """A server we need cannot be reached."""

    exit_code = 3
    http_status = 503
    code = "unavailable"


class ZooKeeperUnavailable(Unavailable):
    """The ZooKeeper ensemble cannot be reached or lost our session."""

    code = "zookeeper_unavailable"


class AccessDenied(DcosBackupError):
    """ZooKeeper refused us a znode (NoAuth): the credentials we present may not read or change it."""

    code = "zookeeper_access_denied"


class ChangedMeanwhile(Conflict):
    """ZooKeeper refused a planned change because another client changed the node since it was read
    (created it, deleted it, gave it children): what was planned no longer fits the tree."""

    code = "changed_meanwhile"


class ServiceUnavailable(Unavailable):
    """The backup service cannot be reached."""

    code = "service_unavailable"


class Fenced(Unavailable):
    """This service no longer leads (its leadership znode went, or another instance leads since): a write
    conditional on its leadership was refused, and its job stops without changing anything more."""

    code = "fenced"
