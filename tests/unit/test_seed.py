"""The Marathon seed data (dcos_backup.testing.seed) is deterministic and shaped like Marathon's store."""

from dcos_backup.testing.seed import marathon_nodes


def test_same_seed_same_bytes_other_seed_other_bytes():
    a = list(marathon_nodes(20, seed=1))
    assert a == list(marathon_nodes(20, seed=1))
    assert a != list(marathon_nodes(20, seed=2))


def test_parents_come_before_children_and_paths_are_unique():
    nodes = list(marathon_nodes(40, seed=3))
    seen = set()
    for path, _, _ in nodes:
        parent = path.rsplit("/", 1)[0]
        assert parent == "" or parent in seen, path
        seen.add(path)
    assert len(seen) == len(nodes)


def test_payload_sizes_are_realistic():
    sizes = [len(data) for path, data, _ in marathon_nodes(50) if "/state/app/" in path]
    assert 800 < sum(sizes) / len(sizes) < 5000
