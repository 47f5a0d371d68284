"""What a master is, at the bottom of the package: its on-disk layout, its ensemble identity, its processes.

- :mod:`.layout`: :class:`MasterLayout`, every path of a master's exhibitor directory, spelled once.
- :mod:`.member`: :class:`Member`, one ZooKeeper ensemble member as the others see it (host and ports).
- :mod:`.processes`: pid files and the processes behind them.
- :mod:`.restore_mark`: what a restore put in place, so that masters restored together can tell a stray one.
- :mod:`.fourlw`: ZooKeeper's four-letter words (``srvr``) on a member's client port.
- :mod:`.zookeeper`: where Debian's ZooKeeper server is (jar, main class, log binding).
- :mod:`.scratch`: :class:`ScratchZooKeeper`, a throw-away standalone server on loopback for drills.

Nothing here imports anything of dcos_backup but ``errors`` and ``fsutil``; every other layer may use it.
"""
