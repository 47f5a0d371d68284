"""The web console at ``https://<master>/backup/``: server-rendered pages (Jinja2, autoescaped), one small
script and one stylesheet, served by the backup service beside its API, on every master.

- :mod:`.session`: the ``dcos-acs-auth-cookie`` cookie as the API's token (DC/OS's Admin Router does the
  same), with a same-origin check for state-changing requests it authenticates (CSRF);
- :mod:`.pages`: the sign-in page and the console page, ``timeline.json`` and the static files;
- :mod:`.timeline`: what the continuous archive can restore, per master, read from its index alone.

Every action on the page is a call of the API (``/system/v1/backup/v1/...``) with the cookie: the same
routes, permissions and forwarding to the leader as the CLI's. The console adds no action of its own.
"""
