"""Continuous archiving of a master's ZooKeeper logs and snapshots, and point-in-time restore from it.

- the object store a repository is (a directory or S3) is :mod:`dcos_backup.storage`, shared with
  the backup catalog;
- :mod:`.index`: the repository's layout, its index (read from a listing) and which points it can restore;
- :mod:`.repository`: the cluster's repository key, a MAC on every object, whose repository it is;
- :mod:`.segments`: segments and snapshots written and read back, checked against their keys;
- :mod:`.archiver`: ``dcos-zk archive``, the process that streams one master's data into a repository;
- :mod:`.pitr`: point-in-time restore and export (``dcos-zk restore --repo``, ``dcos-zk export``);
- :mod:`.state`: the state of some subtrees at a point, as logical znodes (the service's online restore);
- :mod:`.txlog`: ``dcos-zk log``, the archived transactions one per line;
- :mod:`.prune`: ``dcos-zk archive prune``;
- :mod:`.timeline`: ``dcos-zk timeline``, every history's restorable range, snapshots and gaps.
"""
