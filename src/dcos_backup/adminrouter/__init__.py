"""Admin Router: the HTTPS front door DC/OS runs on every master (an nginx), and the certificates it serves.

- :mod:`.tls` — the cluster's certificate authority and each master's server certificate (cryptography);
- :mod:`.nginx` — one master's nginx configuration: ``/exhibitor/`` to that master's Exhibitor,
  ``/system/v1/backup/`` to the backup service's unix socket, JSON errors for its own refusals.
"""
