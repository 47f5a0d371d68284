"""DC/OS's label rules (the seed's, and the API's pattern) and the backup id format."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dcos_backup.catalog.ids import LABEL_PATTERN, is_backup_id, new_backup_id, validate_backup_id, validate_label
from dcos_backup.errors import NotFound, UsageError

GOOD = ["abc", "pre-upgrade", "a" * 25, "v1.2_rc-3", "a_.", "__-", "A9_"]
BAD = {
    "starts with .": ".a.",
    "starts with -": "-x-",
    "second is -": "a-b",
    "second is .": "a.b",
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
    assert re.fullmatch(LABEL_PATTERN, label)  # the API's documented pattern
    assert not label.startswith("..")  # the seed's rule
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
    assert not is_backup_id(backup_id)
    with pytest.raises(NotFound):
        validate_backup_id(backup_id)


def test_a_restore_id_is_not_a_backup_id():
    assert not is_backup_id("ea6b49f5-79a8-4767-ae78-3f874c90e3da")


def test_ids_of_labels_the_seed_allowed_stay_valid():
    """Backups labelled before DC/OS's stricter pattern applied can still be named."""
    assert is_backup_id(".a.-ea6b49f5-79a8-4767-ae78-3f874c90e3da")


def test_seed_example_id_is_valid():
    assert validate_backup_id("backup-label-ea6b49f5-79a8-4767-ae78-3f874c90e3da")
