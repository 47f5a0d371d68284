"""Physical backup and restore of a master's ZooKeeper data directory (``dcos-zk``), and its on-disk formats."""
