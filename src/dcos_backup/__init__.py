"""dcos-backup: backup and restore for a DC/OS-style cluster whose state lives in ZooKeeper."""

__version__ = "0.1.0"
