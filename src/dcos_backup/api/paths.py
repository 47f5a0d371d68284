"""Where DC/OS's Backup and Restore API (v1) lives: its base path and routes, and the largest request body.

Constants only, so that the CLI's client knows the routes without loading the API's models.
"""

PREFIX = "/system/v1/backup/v1"
CREATE = f"{PREFIX}/create"
LIST = f"{PREFIX}/list"
RESTORE = f"{PREFIX}/restore"
DELETE = f"{PREFIX}/delete"
CANCEL = f"{PREFIX}/cancel"  # ours: cancel the job running on a backup
DRILL = f"{PREFIX}/drill"  # ours: a restore drill of a backup into a scratch ZooKeeper
HEALTH = f"{PREFIX}/health"
METRICS = f"{PREFIX}/metrics"  # ours: Prometheus text format, this instance's view (jobs/metrics.py)
METRICS_PERMISSION = "dcos:adminrouter:ops:system-backup:metrics"  # action read: GET /metrics only (api/auth.py)
SCHEDULES = f"{PREFIX}/schedules"  # our extension: backup schedules (docs/api.md)
DOWNLOAD = f"{PREFIX}/download"  # beyond DC/OS: a backup as one portable file (catalog/portable.py)
UPLOAD = f"{PREFIX}/upload"  # its body is streamed to storage: MAX_BODY does not apply
MAX_BODY = 64 * 1024  # bytes of a request body; the Admin Router enforces the same (client_max_body_size)
CONSOLE = "/backup"  # the web console (dcos_backup.console), through the Admin Router at https://<master>/backup/
SIGN_IN = f"{CONSOLE}/login"  # its sign-in form: the one body taken without a token (the token is in it)
