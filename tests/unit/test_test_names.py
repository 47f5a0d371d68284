"""The suite collects tests/unit, tests/e2e and tests/security together without packages: two test modules with
one basename make pytest refuse the whole run ("import file mismatch"), so each name is used once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_every_test_module_has_a_basename_of_its_own():
    names = Counter(path.name for path in TESTS.rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []
