"""What a physical archive holds (``dcos-zk info``), read as a stream."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dcos_backup.errors import NotFound
from dcos_backup.physical import tarsafe

_ZXID_FILE = re.compile(r"^(snapshot|log)\.([0-9a-fA-F]+)$")


@dataclass
class ArchiveInfo:
    archive: str
    bytes: int
    files: int
    data_bytes: int
    snapshots: list[str] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    newest_snapshot: str | None = None
    newest_log: str | None = None
    # The zxid in the newest file's name (a log's name holds its FIRST zxid): not the last zxid of the
    # data, which only a replay finds (``dcos-zk verify``); named for what it is so nobody takes it for that.
    newest_file_zxid: str | None = None
    members: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def info(archive: Path) -> ArchiveInfo:
    """What an archive holds, read as a stream (nothing is extracted; every check of the tar reader applies)."""
    archive = Path(archive)
    if not archive.is_file():
        raise NotFound(f"{archive} does not exist or is not a file")
    result = ArchiveInfo(str(archive), archive.stat().st_size, 0, 0)
    newest: dict[str, tuple[int, str]] = {}
    for member in tarsafe.iter_members(archive):
        result.members.append({"name": member.name, "size": member.size, "dir": member.is_dir})
        if member.is_dir:
            continue
        result.files += 1
        result.data_bytes += member.size
        match = _ZXID_FILE.match(Path(member.name).name)
        if match:
            kind, zxid = match.group(1), int(match.group(2), 16)
            (result.snapshots if kind == "snapshot" else result.logs).append(member.name)
            if zxid >= newest.get(kind, (-1, ""))[0]:
                newest[kind] = (zxid, member.name)
    result.newest_snapshot = newest.get("snapshot", (0, None))[1]
    result.newest_log = newest.get("log", (0, None))[1]
    if newest:
        result.newest_file_zxid = hex(max(z for z, _ in newest.values()))
    return result
