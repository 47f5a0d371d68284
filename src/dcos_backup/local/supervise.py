"""``python -m dcos_backup.local.supervise``: systemd's ``Restart=always`` for dcos-local's services.

dcos-local runs the backup service under this wrapper so that a service that dies (a crash, a SIGKILL in a
fault test) is started again and picks up where its catalog says it was. SIGTERM stops the child, then us.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path

from dcos_backup.exhibitor.supervisor import Supervisor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True)
    parser.add_argument("--child-pid-file", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True, help="the child's stdout/stderr")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- command to supervise")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to supervise")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    supervisor = Supervisor(args.name, command, output=args.output, pid_file=args.child_pid_file)
    done = threading.Event()

    def on_term(*_: object) -> None:
        supervisor.stop()
        done.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    thread = threading.Thread(target=supervisor.run, daemon=True)
    thread.start()
    while not done.is_set() and thread.is_alive():
        done.wait(1)
    thread.join(timeout=30)


if __name__ == "__main__":
    main()
