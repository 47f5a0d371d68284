"""What a backup contains. A registry of components; ``marathon`` is the ZooKeeper subtree ``/marathon``."""
