"""DC/OS-style identity and access: who a request comes from and what that user may do.

- :mod:`.tokens` — RS256 JWTs with a ``uid`` and an expiry, signed by the cluster's IAM key, and the
  ``Authorization`` header that carries them (``token=<jwt>`` as DC/OS sends it, or ``Bearer <jwt>``);
- :mod:`.users` — users and their grants (``dcos:superuser``, ``dcos:adminrouter:ops:system-backup`` ...);
- :mod:`.store` — where users live: one ZooKeeper znode whose ACL only the service's credentials pass.
"""
