"""The backup service's HTTP face: DC/OS's Backup and Restore API over the job core (:mod:`dcos_backup.jobs`).

It owns the routes' contract (:mod:`.paths`, constants only, and :mod:`.models`, the request and response
models), the FastAPI app (:mod:`.app`, :mod:`.schedule_routes`), the token check (:mod:`.auth`), the guard
every request passes (:mod:`.guard`), the forwarding of job requests to the leader (:mod:`.forward`), the
hardened server on the unix socket (:mod:`.server`), and :func:`~dcos_backup.api.run.run_service`, which
wires the core and this face into one running service. It imports the core; the core never imports it.
"""
