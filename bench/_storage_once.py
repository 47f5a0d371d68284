"""One backup into, or restore from, a catalog storage (a directory or s3://), in its own process so that its
peak RSS is its own. What the service does per component, minus the HTTP: read + archive (+ encrypt) + store;
verify the sha256 + read back (+ decrypt) + apply.

python bench/_storage_once.py backup  HOSTS ROOT LOCATION ENDPOINT|- KEYFILE|- ID
python bench/_storage_once.py restore HOSTS ROOT LOCATION ENDPOINT|- KEYFILE|- ID SHA256
    -> prints {"nodes", "archive_bytes", "sha256", "cpu_s", "peak_rss_mb"} as JSON (cpu_s: this process's
       user + system time, which a loaded machine inflates far less than the elapsed time)
"""

import json
import resource
import sys
from pathlib import Path

from _common import peak_rss_mb
from dcos_backup.catalog.archive import ArchiveWriter, read_archive, verify_archive
from dcos_backup.catalog.storage import open_storage
from dcos_backup.logical import apply_tree, iter_tree
from dcos_backup.storage.crypto import load_key

mode, hosts, root, location, endpoint, key_file, backup_id = sys.argv[1:8]
key = load_key(Path(key_file)) if key_file != "-" else None
storage = open_storage(location, None if endpoint == "-" else endpoint, key)
if mode == "backup":
    with storage.archive_writer(backup_id, "bench.dcosbkp") as sink:
        writer = ArchiveWriter(sink, "bench", root)
        for node in iter_tree(hosts, root):
            writer.add(node)
        summary = writer.close()
    result = {"nodes": summary.nodes, "archive_bytes": summary.bytes, "sha256": summary.sha256}
else:
    with storage.archive_reader(backup_id, "bench.dcosbkp") as source:
        checked = verify_archive(source, sys.argv[8])
    with storage.archive_reader(backup_id, "bench.dcosbkp") as source:
        stats = apply_tree(hosts, root, read_archive(source))
    result = {"nodes": checked.nodes, "archive_bytes": checked.bytes, "sha256": checked.sha256}
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({**result, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": peak_rss_mb()}))
