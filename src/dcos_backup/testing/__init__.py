"""Fixtures for tests, benchmarks and the demo: synthetic cluster state, the processes that keep it alive,
and load. Not part of the product: nothing in dcos_backup imports this package but the launcher
(:mod:`dcos_backup.local`, the top layer), which exposes the seed as ``dcos-local seed``.

- :mod:`.seed`: deterministic Marathon-like state under ``/marathon``;
- :mod:`.holder`: a process holding the ephemeral znodes a live cluster has;
- :mod:`.load`: a steady-rate writer recording each acknowledged write's zxid;
- :mod:`.trees`: a live subtree as comparable values, for "restored byte for byte" checks.
"""
