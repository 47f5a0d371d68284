"""The seed's label rules and the backup id format."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dcos_backup.catalog.models import new_backup_id, validate_backup_id, validate_label
from dcos_backup.errors import NotFound, UsageError

GOOD = ["abc", "pre-upgrade", "a" * 25, "v1.2_rc-3", ".a.", "-x-", "A9_"]
BAD = {
    "too short (2)": "ab",
    "too long (26)": "a" * 26,
    "starts with ..": "..abc",
    "slash": "pre/upgrade",
    "space": "pre upgrade",
    "unicode": "pré-upgrade",
    "empty": "",
    "newline": "abc\n",
    "traversal": "../etc",
}


@pytest.mark.parametrize("label", GOOD)
def test_good_labels(label):
    assert validate_label(label) == label
    assert validate_backup_id(new_backup_id(label)).startswith(label + "-")


@pytest.mark.parametrize("label", BAD.values(), ids=BAD.keys())
def test_bad_labels_are_usage_errors(label):
    with pytest.raises(UsageError, match="invalid label"):
        validate_label(label)


@given(st.text(max_size=40))
def test_any_accepted_label_follows_the_rules(label):
    try:
        validate_label(label)
    except UsageError:
        return
    assert 3 <= len(label) <= 25
    assert not label.startswith("..")
    assert all(c.isascii() and (c.isalnum() or c in "_.-") for c in label)


@pytest.mark.parametrize(
    "backup_id",
    [
        "../../etc",
        "pre-upgrade",
        "a/b-ea6b49f5-79a8-4767-ae78-3f874c90e3da",
        "..x-ea6b49f5-79a8-4767-ae78-3f874c90e3da",
        "pre-upgrade-ea6b49f5-79a8-4767-ae78-3f874c90e3dA",
        "",
    ],
)
def test_malformed_ids_name_no_backup(backup_id):
    with pytest.raises(NotFound):
        validate_backup_id(backup_id)


def test_seed_example_id_is_valid():
    assert validate_backup_id("backup-label-ea6b49f5-79a8-4767-ae78-3f874c90e3da")
