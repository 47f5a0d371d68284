"""Backup metadata and archive storage. Nothing else touches backup files.

- :mod:`.models` — the records (``BackupRecord``, statuses, label and id rules);
- :mod:`.archive` — the streamed, checksummed component archive format;
- :mod:`.objects` — the object store (a local directory or S3) the catalog and the ZooKeeper archive
  repository both live in;
- :mod:`.storage` — the catalog on an object store (``LocalStorage``: the master's disk; ``open_storage``);
- :mod:`.crypto` — encryption at rest (chunked AES-256-GCM) and key files;
- :mod:`.portable` — a backup as one file, out and in (download/upload).
"""
