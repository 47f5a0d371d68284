"""The backup service's core: backups and restores as jobs, one at a time per cluster, with no HTTP in it.

:class:`~dcos_backup.jobs.service.BackupService` is what the API calls (queries and commands); the job
steps are :mod:`.backup`, :mod:`.restore` (with :mod:`.archives`, :mod:`.dry_run`, :mod:`.safety`) and
:mod:`.recovery` (rollback, start-up recovery); :mod:`.runner` runs each job under the cluster's lock;
:mod:`.plan` says what a restore touches; :mod:`.engine` is the only way to ZooKeeper. Beside them: the
schedules (:mod:`.schedules`, :mod:`.scheduler`, :mod:`.retention`) and which instance leads
(:mod:`.leadership`). Nothing here imports the HTTP face (:mod:`dcos_backup.api`).
"""
