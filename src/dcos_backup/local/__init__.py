"""``dcos-local``: a real N-master cluster on this machine (ZooKeeper ensemble on loopback addresses)."""
