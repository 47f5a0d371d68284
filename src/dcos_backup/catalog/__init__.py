"""Backup metadata and archive storage. Nothing else touches backup files.

- :mod:`.models` — the records (``BackupRecord``, statuses, label and id rules);
- :mod:`.archive` — the streamed, checksummed component archive format;
- :mod:`.storage` — where records and archives live (``LocalStorage``: the master's disk).
"""
