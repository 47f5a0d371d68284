"""Where backup bytes are kept, and how they are kept safe at rest: the layer under ``catalog`` and ``physical``.

Both the backup catalog (``catalog``: records and component archives) and the ZooKeeper archive repository
(``physical``: physical archives, continuous snapshots and logs) store their bytes here and nowhere else, so
this package knows nothing of either: it imports only ``errors`` and ``fsutil``.

- :mod:`.base` — the object store interface (immutable objects by key: ``writer``/``put``, ``get``,
  ``list``, ``delete``, ``remove_partials``) and its key rules;
- :mod:`.local` — the local backend (``LocalStore``: files under a directory, fsynced and renamed);
- :mod:`.s3` — the S3 backend (``S3Store``: streamed multipart uploads, bounded memory) and ``s3://`` URLs;
- :mod:`.locations` — ``open_store``: the backend a location (directory, ``file://``, ``s3://``) names;
- :mod:`.crypto` — encryption at rest (chunked AES-256-GCM) and key files.

Encryption is a storage concern, not a catalog one: it wraps a stored object's byte stream (a
:class:`~dcos_backup.fsutil.Sink` on the way in, a :class:`~dcos_backup.fsutil.Source` on the way out) and
knows nothing of what the bytes mean; what it protects is the bytes at rest, wherever a store keeps them.
Its users choose to encrypt (the catalog encrypts every archive it writes once it has a key), and its key
file format is shared by keys that are not for encryption (the catalog's record-signing key).
"""
