"""The lists under load (issue 22): backup instances are matched to a principal's scopes through their vault
(the same rows as matching every instance id), the instance lists fetch a page in two steps in the same
order, jobs lists name the visible vaults by id, a GET reads the principal's role assignments once, and
the instance lists stay within a query budget however many rows there are."""

from __future__ import annotations

import pytest

from portal.shortcuts import visible
from protection import selectors
from protection.models import BackupInstance, Job
from security import clock, rbac
from security.operations import INSTANCE_READ
from tests.protection._backups_fixtures import (  # noqa: F401  (fixtures)
    ADLS, filled, grant, inventory, make_policy, principal_with, protect, vault,
)
from vaults import services as vault_services

pytestmark = pytest.mark.django_db


def _copies(instance, vault, policy, names):
    """Rows like ``instance`` under other names (the page lists rows, it runs no backup)."""
    made = []
    for name in names:
        copy = BackupInstance(vault=vault, policy=policy, name=name, datasource_type=instance.datasource_type,
                              datasource_resource_id=f"{instance.datasource_resource_id}-{name}",
                              datasource_name=name, datasource_location=instance.datasource_location,
                              protection_state=instance.protection_state)
        copy.save()
        made.append(copy)
    return made


@pytest.fixture
def two_vaults(lab, vault, make_policy, filled):
    first = protect(lab, vault, make_policy(ADLS, "q-adls"), filled.account, name="bi-q-000")
    _copies(first, vault, first.policy, [f"bi-q-{n:03d}" for n in range(1, 30)])
    other = vault_services.create_vault(lab.trainer, name="bv-q-other", region=lab.region, resource_group=lab.lab_group)
    other_policy = make_policy(ADLS, "q-other", in_vault=other)
    _copies(first, other, other_policy, [f"bi-q-o{n:02d}" for n in range(5)])
    return vault, other, first


def test_instances_visible_through_their_vault_are_the_rows_their_ids_match(lab, two_vaults, principal_with):
    vault, other, first = two_vaults
    everything = BackupInstance.objects.all()
    cases = [(lab.lab_group.resource_id, 35), (other.resource_id, 5), (first.resource_id.upper(), 1),
             (first.policy.resource_id, 0), (None, 0)]  # a group, a vault, an instance, a policy, nowhere
    for scope, count in cases:
        principal = principal_with("Backup Reader", scope) if scope else principal_with(None)
        expected = set(visible(principal, everything, INSTANCE_READ).values_list("pk", flat=True))
        got = set(selectors.visible_instances(principal, everything).values_list("pk", flat=True))
        assert got == expected and len(got) == count, scope


def test_the_instance_lists_keep_their_order_and_a_query_budget(lab, two_vaults, client, django_assert_max_num_queries):
    vault, other, _ = two_vaults
    client.force_login(lab.personas["backup-admin"].principal.user)
    client.get("/backup/instances/")  # warm caches (the clock offset, sessions)
    with django_assert_max_num_queries(18):
        page = client.get("/backup/instances/").content.decode()
    expected = [i.name for i in BackupInstance.objects.order_by("vault__name", "name")[:25]]
    assert [n for n in expected if f'data-instance="{n}"' in page] == expected
    assert page.index(f'data-instance="{expected[0]}"') < page.index(f'data-instance="{expected[-1]}"')
    assert "of 35 backup instances" in page
    with django_assert_max_num_queries(22):
        blade = client.get(f"/backup/vaults/{other.pk}/instances/").content.decode()
    assert blade.count("data-instance=") == 5 and "bi-q-000" not in blade
    second = client.get(f"/backup/vaults/{vault.pk}/instances/?page=2").content.decode()
    assert [f"bi-q-{n:03d}" for n in range(25, 30)] == [n for n in (f"bi-q-{m:03d}" for m in range(30))
                                                          if f'data-instance="{n}"' in second]


def test_jobs_for_names_the_vaults_the_principal_may_read(lab, two_vaults, principal_with):
    vault, other, first = two_vaults
    Job.objects.create(vault=vault, instance=first, instance_name=first.name, operation="Backup", category="Backup",
                       start_time=clock.now())
    Job.objects.create(vault=other, instance_name="x", operation="Backup", category="Backup",
                       start_time=clock.now())
    reader = principal_with("Backup Reader", other.resource_id)
    assert set(selectors.jobs_for(reader).values_list("vault_id", flat=True)) == {other.pk}
    assert selectors.jobs_for(principal_with(None)).count() == 0
    assert selectors.jobs_for(lab.personas["backup-admin"].principal).count() == Job.objects.count() >= 2


def test_a_get_reads_role_assignments_once_and_a_change_is_seen_by_the_next_read(lab, two_vaults, principal_with, request,
                                                                                 django_assert_num_queries):
    _, other, _ = two_vaults
    principal = principal_with("Backup Reader", other.resource_id)
    with rbac.reading():
        rbac.visible_to(principal, INSTANCE_READ)
        request.getfixturevalue("steady_clock")  # the lab clock's offset is not what is counted
        with django_assert_num_queries(0):
            rbac.visible_to(principal, INSTANCE_READ)
            assert rbac.authorize(principal, INSTANCE_READ, other.resource_id).allowed
    grant(lab, principal, "Backup Reader", lab.lab_group.resource_id)  # outside reading(): read afresh
    assert lab.lab_group.resource_id.lower() in [s.lower() for s in rbac.visible_to(principal, INSTANCE_READ).scopes]
