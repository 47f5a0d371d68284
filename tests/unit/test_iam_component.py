"""The ``iam`` component (issue 26 item 5): in every service's registry, backed up only when named, restored
only in place, and no configured component may take its name or the service's subtree."""

from __future__ import annotations

import pytest

from dcos_backup.catalog.models import BackupRecord
from dcos_backup.components import DEFAULT_COMPONENTS, ZkSubtree, choose
from dcos_backup.errors import UsageError
from dcos_backup.jobs.plan import IAM, PRIVILEGED, components_of, plan_restore, with_iam


def test_iam_is_in_the_registry_but_backed_up_only_when_named():
    registry = with_iam(DEFAULT_COMPONENTS)
    assert [c.name for c in registry] == ["marathon", "metronome", "iam"]
    assert [c.name for c in choose(registry)] == ["marathon", "metronome"]
    assert [c.name for c in choose(registry, ["iam", "marathon"])] == ["iam", "marathon"]
    assert IAM.root == "/dcos-backup/iam"
    assert set(PRIVILEGED) == {"iam"}


@pytest.mark.parametrize("component", [ZkSubtree("iam", "/users"), ZkSubtree("mine", "/dcos-backup/iam")])
def test_no_configured_component_is_the_services_own(component):
    with pytest.raises(UsageError, match="the service's own"):
        with_iam([*DEFAULT_COMPONENTS, component])


def test_a_backup_holding_iam_restores_it_whole_or_by_path_never_moved():
    registry = with_iam(DEFAULT_COMPONENTS)
    record = BackupRecord.start("with-users", {"marathon": "/marathon", "iam": IAM.root}, "2.2.0")
    assert components_of(plan_restore(record, registry=registry)) == ["marathon", "iam"]
    assert components_of(plan_restore(record, [IAM.root], registry=registry)) == ["iam"]
    assert components_of(plan_restore(record, ["/marathon"], registry=registry)) == ["marathon"]
    with pytest.raises(UsageError, match="restored only in place"):
        plan_restore(record, mapping=f"{IAM.root}=/stolen", registry=registry)
