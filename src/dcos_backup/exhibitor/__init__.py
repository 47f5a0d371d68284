"""The per-master supervisor of a real ZooKeeper server and the Exhibitor cluster status API."""
