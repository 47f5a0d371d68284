"""The data-dir lock: one per master, so that no two commands change its ZooKeeper data at once.

Every command that touches a master's ``zookeeper/`` takes it (``flock`` on ``zookeeper.lock`` in the
exhibitor directory, beside the data it guards: the data directory itself is swapped by a restore).

- **Writers** take it exclusively: ``dcos-zk restore`` (from an archive or a repository), ``dcos-zk
  recover`` and the supervisor's start-up recovery when they find something to finish.
- **Readers** take it shared: offline and ``--online`` backups and the archiver, which may all run
  together; a writer never runs beside any of them.

A command that cannot have the lock refuses with one line naming the holder's pid and what it runs
(each holder records ``<pid> <what>`` in the file), or waits for it (``--wait-lock``). The kernel
drops a lock when its holder dies, however it dies, so a killed command never leaves it held.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from dcos_backup.errors import Conflict, NotFound

log = logging.getLogger(__name__)

_COMPACT_AFTER = 200  # recorded lines; shared holders append one each, a writer starts the file afresh


NEVER_ENDING = frozenset({"dcos-zk archive"})  # holders that release the lock only when stopped


@dataclass(frozen=True)
class Holder:
    pid: int
    what: str

    def __str__(self) -> str:
        return f"pid {self.pid} ({self.what})" if self.what else f"pid {self.pid}"


def _open(lock_file: Path) -> IO[str]:
    try:
        return open(lock_file, "a+")
    except FileNotFoundError as exc:
        raise NotFound(f"exhibitor directory {lock_file.parent} does not exist (is --exhibitor-dir right?)") from exc


def _kernel_holders(lock_file: Path) -> list[int] | None:
    """Pids holding a lock on ``lock_file`` according to ``/proc/locks`` (Linux); None where unreadable."""
    try:
        st = lock_file.stat()
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    device = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    pids = []
    for line in lines:
        fields = line.split()
        # "5: FLOCK  ADVISORY  READ 349 fe:00:2148500 0 EOF"; waiters have "->" after the number.
        if len(fields) >= 6 and fields[1] != "->" and fields[5] == device:
            with contextlib.suppress(ValueError):
                pids.append(int(fields[4]))
    return pids


def _recorded(lock_file: Path) -> dict[int, str]:
    records: dict[int, str] = {}
    with contextlib.suppress(OSError):
        for line in lock_file.read_text().splitlines():
            pid, _, what = line.partition(" ")
            with contextlib.suppress(ValueError):
                records[int(pid)] = what.strip()
    return records


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def holders(lock_file: Path) -> list[Holder]:
    """Who holds the lock now, as far as the kernel and the records tell."""
    recorded = _recorded(lock_file)
    pids = _kernel_holders(lock_file)
    if pids is None:
        pids = [pid for pid in recorded if _alive(pid)]
    return [Holder(pid, recorded.get(pid, "")) for pid in sorted(set(pids))]


def _record(f: IO[str], exclusive: bool, what: str) -> None:
    line = f"{os.getpid()} {what}\n"
    f.seek(0)
    if exclusive or len(f.readlines()) > _COMPACT_AFTER:
        # Only the holders' own lines matter; a writer is alone, and an over-long file of readers is
        # started afresh (a reader's line lost this way only makes a refusal less specific).
        f.seek(0)
        f.truncate()
    f.write(line)
    f.flush()


@contextlib.contextmanager
def data_dir_lock(
    lock_file: Path, *, exclusive: bool, what: str, wait: bool = False, subject: str = ""
) -> Iterator[None]:
    """Hold the data-dir lock for the ``with`` block; Conflict naming the holder if it is taken (unless ``wait``).

    ``subject`` names what the lock guards in messages (default: the ZooKeeper data beside the file).
    """
    subject = subject or f"the ZooKeeper data in {lock_file.parent}"
    f = _open(lock_file)
    try:
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        try:
            fcntl.flock(f, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            found = holders(lock_file)
            owners = ", ".join(map(str, found)) or "another process"
            endless = [h for h in found if h.what in NEVER_ENDING]
            if wait and endless:  # waiting would never end
                raise Conflict(
                    f"{subject} is in use by {endless[0]}, which runs until it is stopped: stop it (its master's "
                    "supervisor stops it with ZooKeeper); --wait-lock would wait forever"
                ) from None
            if not wait:
                message = f"{subject} is in use by {owners}; let it finish, or pass --wait-lock to wait for it"
                raise Conflict(message) from None
            log.warning("waiting for %s to release %s", owners, subject)
            fcntl.flock(f, mode)
        _record(f, exclusive, what)
        yield
    finally:
        f.close()  # closing the only descriptor releases the lock
