"""One engine backup of a subtree into an archive, in its own process so its peak RSS is its own.

python bench/_read_once.py HOSTS ROOT ARCHIVE   -> prints {"nodes", "bytes", "archive_bytes"} as JSON
"""

import json
import sys

from dcos_backup.catalog.archive import ArchiveWriter
from dcos_backup.zk import ReadStats, iter_tree

hosts, root, target = sys.argv[1:4]
stats = ReadStats()
with open(target, "wb") as raw:
    writer = ArchiveWriter(raw, "bench", root)
    for node in iter_tree(hosts, root, stats=stats):
        writer.add(node)
    summary = writer.close()
print(json.dumps({"nodes": stats.nodes, "bytes": stats.bytes, "archive_bytes": summary.bytes}))
