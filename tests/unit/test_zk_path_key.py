"""The canonical order of a tree stream: a node's whole subtree before its next sibling."""

from dcos_backup.logical import path_key


def test_children_come_before_a_later_sibling_whatever_the_characters():
    paths = ["/a-x", "/a/b", "/a", "/a/b/c", "/a.b", "/"]
    assert sorted(paths, key=path_key) == ["/", "/a", "/a/b", "/a/b/c", "/a-x", "/a.b"]
