"""One engine restore of an archive into a subtree, in its own process so its peak RSS is its own.

python bench/_restore_once.py HOSTS ROOT ARCHIVE   -> prints the ApplyStats counts and "peak_rss_mb" as JSON
"""

import json
import sys

from _common import peak_rss_mb
from dcos_backup.catalog.archive import read_archive
from dcos_backup.logical import apply_tree

hosts, root, source = sys.argv[1:4]
with open(source, "rb") as raw:
    stats = apply_tree(hosts, root, read_archive(raw))
print(json.dumps({**stats.to_dict(), "peak_rss_mb": peak_rss_mb()}))
