"""Where Debian's ZooKeeper server is and how it starts: what every ZooKeeper this package runs shares
(a master's member, :mod:`dcos_backup.exhibitor`; a drill's scratch server, :mod:`.scratch`)."""

from __future__ import annotations

# slf4j-simple comes with Debian's zookeeper (libslf4j-java); without a binding ZooKeeper logs nothing.
ZK_CLASSPATH = "/usr/share/java/zookeeper.jar"
SLF4J_BINDING = "/usr/share/java/slf4j-simple.jar"
ZK_MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
