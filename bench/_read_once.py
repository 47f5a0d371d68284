"""One engine backup of a subtree into an archive, in its own process so its peak RSS is its own.

python bench/_read_once.py HOSTS ROOT ARCHIVE   -> prints {"nodes", "bytes", "archive_bytes", "peak_rss_mb"} as JSON

ARCHIVE ``-`` reads without writing an archive (the reader's own time and memory).
"""

import json
import sys

from _common import peak_rss_mb
from dcos_backup.catalog.archive import ArchiveWriter
from dcos_backup.logical import ReadStats, iter_tree

hosts, root, target = sys.argv[1:4]
stats = ReadStats()
archive_bytes = 0
if target == "-":
    for _ in iter_tree(hosts, root, stats=stats):
        pass
else:
    with open(target, "wb") as raw:
        writer = ArchiveWriter(raw, "bench", root)
        for node in iter_tree(hosts, root, stats=stats):
            writer.add(node)
        archive_bytes = writer.close().bytes
result = {"nodes": stats.nodes, "bytes": stats.bytes, "archive_bytes": archive_bytes, "peak_rss_mb": peak_rss_mb()}
print(json.dumps(result))
