"""Parts of a pre-order stream (dcos_backup.logical.subtrees): chosen subtrees, what a stream lacks, path maps."""

from __future__ import annotations

import pytest
from kazoo.security import OPEN_ACL_UNSAFE

from dcos_backup.errors import NotFound, UsageError
from dcos_backup.logical import PathMap, ZNode, missing_subtrees, path_key, subtree_paths
from dcos_backup.logical.subtrees import split_scopes

OPEN = tuple(OPEN_ACL_UNSAFE)
PATHS = ["/m", "/m/a", "/m/a/x", "/m/a/y", "/m/b", "/m/b/z", "/m/c"]


def stream(paths=PATHS):
    return [ZNode(p, p.encode(), OPEN) for p in sorted(paths, key=path_key)]


def test_subtree_paths_sorts_dedups_and_drops_nested_ones():
    assert subtree_paths("/m") == ["/m"]
    assert subtree_paths("/m", ["/m/b", "/m/a/x", "/m/a", "/m/b"]) == ["/m/a", "/m/b"]
    assert subtree_paths("/m", ["/m/b/z", "/m"]) == ["/m"]


@pytest.mark.parametrize(
    ("paths", "message"),
    [
        (["m/a"], "not an absolute znode path"),
        (["/m/a/"], "not a normalised"),
        (["/m/../x"], "not a normalised"),
        (["/m//a"], "not a normalised"),
        (["/other"], "is not under /m"),
        (["/mm"], "is not under /m"),
        ([], "no path given"),
    ],
)
def test_subtree_paths_refuses_bad_paths(paths, message):
    with pytest.raises(UsageError, match=message):
        subtree_paths("/m", paths)


def test_missing_subtrees_names_what_the_stream_does_not_hold():
    assert missing_subtrees(stream(), ["/m/a", "/m/b/z"]) == []
    assert missing_subtrees(stream(), ["/m/a", "/m/q", "/m/b/q"]) == ["/m/q", "/m/b/q"]
    assert missing_subtrees(iter(stream()), ["/m"]) == []


def test_split_scopes_cuts_each_subtree_with_the_stream_nodes_above_it():
    scopes = []
    for scope in split_scopes(stream(), ["/m/a/y", "/m/b"]):
        scopes.append((scope.path, [n.path for n in scope.ancestors], [n.path for n in scope.nodes], scope.empty))
    assert scopes == [
        ("/m/a/y", ["/m", "/m/a"], ["/m/a/y"], False),
        ("/m/b", ["/m"], ["/m/b", "/m/b/z"], False),
    ]


def test_split_scopes_refuses_a_path_the_stream_lacks_unless_told_not_to():
    with pytest.raises(NotFound, match="does not hold /m/q"):
        list(split_scopes(stream(), ["/m/q"]))
    (scope,) = split_scopes([], ["/m"], require=False)  # a root that did not exist: an empty archive
    assert scope.empty and list(scope.nodes) == []


def test_a_scope_left_unread_is_skipped_over():
    scopes = split_scopes(stream(), ["/m/a", "/m/c"])
    next(scopes)  # its nodes not consumed
    last = next(scopes)
    assert [n.path for n in last.nodes] == ["/m/c"]


def test_a_path_map_moves_a_subtree_and_keeps_pre_order():
    mapping = PathMap.parse("/m/a=/copy/of-a")
    moved = list(mapping.map_nodes(stream()))
    assert [n.path for n in moved] == ["/copy/of-a", "/copy/of-a/x", "/copy/of-a/y"]
    assert [n.data for n in moved] == [b"/m/a", b"/m/a/x", b"/m/a/y"]  # the nodes themselves are kept
    assert mapping.map_path("/m/a/x") == "/copy/of-a/x"
    assert [n.path for n in PathMap("/m/b", "/zz").map_nodes(stream())] == ["/zz", "/zz/z"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("/m", "expected SRC=DST"),
        ("=/x", "expected SRC=DST"),
        ("/m=", "expected SRC=DST"),
        ("m=/x", "not an absolute"),
        ("/m=/m/copy", "one contains the other"),
        ("/m/a=/m", "one contains the other"),
        ("/=/x", "whole tree"),
        ("/m=/x/", "not a normalised"),
    ],
)
def test_a_malformed_path_map_is_a_usage_error(text, message):
    with pytest.raises(UsageError, match=message):
        PathMap.parse(text)
