"""Backup metadata and archive storage. Nothing else touches backup files.

The bytes live in an object store, encrypted or not (:mod:`dcos_backup.storage`); this package gives them
meaning:

- :mod:`.models` — the records (``BackupRecord``, statuses, label and id rules);
- :mod:`.archive` — the streamed, checksummed component archive format;
- :mod:`.storage` — the catalog on an object store (``LocalStorage``: the master's disk; ``open_storage``);
- :mod:`.portable` — a backup as one file, out and in (download/upload).
"""
