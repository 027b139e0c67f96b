"""Backup readiness and "Assign missing roles" (reference §2.2–2.3): readiness asks `authorize` for the
vault identity, so inherited and custom roles count and revoked or expired ones do not; the roles
assigned per scope are exactly the reference's."""

import datetime as dt

import pytest

from protection import datasource_types, readiness
from protection.instances import services as svc
from security import clock, roles
from security import services as security_services
from security.guards import GuardDenied
from security.models import ActivityLogEntry, RoleAssignment, RoleDefinition
from tests.protection._protection_fixtures import (  # noqa: F401  (fixtures)
    grant, inventory, principal_with, vault,
)

ADLS, ESAN, PG = datasource_types.ADLS, datasource_types.ELASTIC_SAN, datasource_types.POSTGRES_FLEX


def ds_for(kind, inventory, snapshot_rg=""):
    if kind == ADLS:
        a = inventory.account
        return readiness.Datasource(ADLS, a.resource_id, a.name)
    if kind == ESAN:
        v = inventory.volumes[0]
        return readiness.Datasource(ESAN, v.resource_id, v.name, inventory.san.resource_id,
                                    snapshot_rg or inventory.san.resource_group.resource_id)
    s = inventory.server
    return readiness.Datasource(PG, s.resource_id, s.name)


def identity_roles(vault):
    return {(a.role.name, a.scope) for a in RoleAssignment.objects.filter(principal=vault.identity).select_related("role")}


# --- outcomes -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [ADLS, ESAN, PG])
def test_a_new_vault_needs_roles_and_the_backup_admin_may_assign_them(kind, lab, vault, inventory, backup_admin):
    result = readiness.check(backup_admin, vault, ds_for(kind, inventory))
    assert result.status == "Role assignment not done"
    assert result.can_assign
    # The backup admin is RBAC administrator on the lab resource group only.
    assert result.assignable_levels == ("Resource", "Resource group")


@pytest.mark.parametrize("kind", [ADLS, ESAN, PG])
def test_the_backup_operator_sees_insufficient_permission(kind, lab, vault, inventory, backup_operator):
    result = readiness.check(backup_operator, vault, ds_for(kind, inventory))
    assert result.status == "Insufficient permission for role assignment"
    assert not result.can_assign
    assert "Microsoft.Authorization/roleAssignments/write" in result.message


def test_the_roles_needed_per_datasource_are_the_references(lab, vault, inventory):
    def needs(kind):
        return [(n.role, n.where) for n in readiness.needs_for(ds_for(kind, inventory))]

    assert needs(ADLS) == [(roles.STORAGE_ACCOUNT_BACKUP_CONTRIBUTOR, f"storage account {inventory.account.name}")]
    assert needs(ESAN) == [(roles.ELASTIC_SAN_SNAPSHOT_EXPORTER, "Elastic SAN esan-test"),
                           (roles.DISK_SNAPSHOT_CONTRIBUTOR, "snapshot resource group rg-backup-lab")]
    assert needs(PG) == [(roles.POSTGRES_LTR_BACKUP_ROLE, f"server {inventory.server.name}"),
                         (roles.READER, "resource group rg-backup-lab")]


@pytest.mark.parametrize("scope_of", [
    lambda lab, inv: inv.account.resource_id,
    lambda lab, inv: lab.lab_group.resource_id,  # inherited from the resource group
    lambda lab, inv: lab.lab_subscription.resource_id,  # inherited from the subscription
], ids=["resource", "resource group", "subscription"])
def test_an_inherited_assignment_counts(scope_of, lab, vault, inventory, backup_admin):
    grant(lab, vault.identity, roles.STORAGE_ACCOUNT_BACKUP_CONTRIBUTOR, scope_of(lab, inventory))
    assert readiness.check(backup_admin, vault, ds_for(ADLS, inventory)).status == "Success"


def test_a_custom_role_with_the_same_actions_counts(lab, vault, inventory, backup_admin):
    custom = RoleDefinition.objects.create(
        id="11111111-2222-3333-4444-555555555555", name="Lab backup helper",
        actions=["Microsoft.Storage/storageAccounts/*"],
    )
    security_services.assign_role(lab.trainer, assignee=vault.identity, role=custom, scope=lab.lab_group.resource_id)
    assert readiness.check(backup_admin, vault, ds_for(ADLS, inventory)).status == "Success"


def test_a_role_without_the_actions_does_not_count(lab, vault, inventory, backup_admin):
    grant(lab, vault.identity, roles.BACKUP_CONTRIBUTOR, lab.lab_group.resource_id)  # not a storage role
    assert readiness.check(backup_admin, vault, ds_for(ADLS, inventory)).status == "Role assignment not done"


def test_a_revoked_assignment_stops_counting(lab, vault, inventory, backup_admin):
    assignment = grant(lab, vault.identity, roles.STORAGE_ACCOUNT_BACKUP_CONTRIBUTOR, inventory.account.resource_id)
    assert readiness.check(backup_admin, vault, ds_for(ADLS, inventory)).ok
    security_services.remove_role_assignment(lab.trainer, assignment)
    assert readiness.check(backup_admin, vault, ds_for(ADLS, inventory)).status == "Role assignment not done"


def test_an_expired_assignment_stops_counting(lab, vault, inventory, backup_admin):
    security_services.assign_role(
        lab.trainer, assignee=vault.identity, role=RoleDefinition.objects.get(name=roles.STORAGE_ACCOUNT_BACKUP_CONTRIBUTOR),
        scope=inventory.account.resource_id, ends_at=clock.now() + dt.timedelta(hours=1),
    )
    assert readiness.check(backup_admin, vault, ds_for(ADLS, inventory)).ok
    security_services.move_lab_clock(lab.trainer, forward=dt.timedelta(hours=2))
    assert not readiness.check(backup_admin, vault, ds_for(ADLS, inventory)).ok


def test_elastic_san_needs_the_snapshot_group_role_where_the_snapshots_go(lab, vault, inventory, backup_admin):
    grant(lab, vault.identity, roles.ELASTIC_SAN_SNAPSHOT_EXPORTER, inventory.san.resource_id)
    grant(lab, vault.identity, roles.DISK_SNAPSHOT_CONTRIBUTOR, lab.lab_group.resource_id)
    assert readiness.check(backup_admin, vault, ds_for(ESAN, inventory)).ok
    elsewhere = ds_for(ESAN, inventory, snapshot_rg=lab.target_group.resource_id)
    result = readiness.check(backup_admin, vault, elsewhere)
    assert result.status == "Role assignment not done"
    assert [(n.role, n.resource_scope) for n in result.missing] == [
        (roles.DISK_SNAPSHOT_CONTRIBUTOR, lab.target_group.resource_id)]


def test_postgres_needs_reader_on_the_servers_resource_group(lab, vault, inventory, backup_admin):
    grant(lab, vault.identity, roles.POSTGRES_LTR_BACKUP_ROLE, inventory.server.resource_id)
    result = readiness.check(backup_admin, vault, ds_for(PG, inventory))
    assert [n.role for n in result.missing] == [roles.READER]
    grant(lab, vault.identity, roles.READER, lab.lab_group.resource_id)
    assert readiness.check(backup_admin, vault, ds_for(PG, inventory)).ok


def test_an_identity_that_is_off_is_reported(lab, vault, inventory, backup_admin):
    from vaults import services as vault_services

    grant(lab, vault.identity, roles.STORAGE_ACCOUNT_BACKUP_CONTRIBUTOR, inventory.account.resource_id)
    vault_services.set_identity_enabled(lab.trainer, vault, enabled=False)
    result = readiness.check(backup_admin, vault, ds_for(ADLS, inventory))
    assert result.status == readiness.IDENTITY_OFF
    assert "Identity" in result.message


# --- assign missing roles: exactly these assignments per scope -------------------------------------

SA, EXP, DSC, LTR, RDR = (roles.STORAGE_ACCOUNT_BACKUP_CONTRIBUTOR, roles.ELASTIC_SAN_SNAPSHOT_EXPORTER,
                          roles.DISK_SNAPSHOT_CONTRIBUTOR, roles.POSTGRES_LTR_BACKUP_ROLE, roles.READER)

# (type, level) -> the (role, scope) pairs created; scopes: "res" = the datasource's resource (storage
# account, Elastic SAN instance, PostgreSQL server), "rg" = the lab resource group, "sub" = its subscription.
EXPECTED = [
    (ADLS, "Resource", {(SA, "res")}),
    (ADLS, "Resource group", {(SA, "rg")}),
    (ADLS, "Subscription", {(SA, "sub")}),
    (ESAN, "Resource", {(EXP, "res"), (DSC, "rg")}),
    (ESAN, "Resource group", {(EXP, "rg"), (DSC, "rg")}),
    (ESAN, "Subscription", {(EXP, "sub"), (DSC, "sub")}),
    (PG, "Resource", {(LTR, "res"), (RDR, "rg")}),
    (PG, "Resource group", {(LTR, "rg"), (RDR, "rg")}),
    (PG, "Subscription", {(LTR, "sub"), (RDR, "sub")}),
]


@pytest.mark.parametrize("kind,level,expected", EXPECTED, ids=[f"{k.split('/')[1]}-{lv}" for k, lv, _ in EXPECTED])
def test_assign_missing_roles_creates_exactly_the_references_roles(kind, level, expected, lab, vault, inventory, trainer):
    resource = {ADLS: inventory.account.resource_id, ESAN: inventory.san.resource_id, PG: inventory.server.resource_id}[kind]
    where = {"res": resource, "rg": lab.lab_group.resource_id, "sub": lab.lab_subscription.resource_id}
    ds = ds_for(kind, inventory)
    created = svc.assign_missing_roles(trainer, vault=vault, datasources=[ds], level=level)
    assert {(a.role.name, a.scope) for a in created} == {(r, where[s]) for r, s in expected}
    assert identity_roles(vault) == {(r, where[s]) for r, s in expected}
    assert readiness.check(trainer, vault, ds).ok
    # Nothing is left to assign the second time.
    assert svc.assign_missing_roles(trainer, vault=vault, datasources=[ds], level=level) == []


def test_assignments_are_made_as_the_signed_in_user(lab, vault, inventory, backup_admin):
    svc.assign_missing_roles(backup_admin, vault=vault, datasources=[ds_for(PG, inventory)], level="Resource group")
    entries = ActivityLogEntry.objects.filter(operation="Microsoft.Authorization/roleAssignments/write",
                                              details__assignee=vault.identity.display_name)
    assert sorted(e.details["role"] for e in entries) == sorted([LTR, RDR])
    assert {e.caller for e in entries} == {"Ben Admin"}


def test_a_scope_the_user_cannot_assign_at_creates_nothing(lab, vault, inventory, backup_admin):
    """The backup admin may assign roles in the lab resource group, not on the subscription: asking for
    the subscription is refused (and logged) and no role is assigned at all."""
    with pytest.raises(GuardDenied) as info:
        svc.assign_missing_roles(backup_admin, vault=vault, datasources=[ds_for(ESAN, inventory)], level="Subscription")
    assert info.value.decision.scope == lab.lab_subscription.resource_id
    assert identity_roles(vault) == set()
    assert ActivityLogEntry.objects.filter(operation="Microsoft.Authorization/roleAssignments/write",
                                           status=ActivityLogEntry.Status.FAILED).exists()


def test_only_the_missing_roles_are_assigned(lab, vault, inventory, trainer):
    grant(lab, vault.identity, RDR, lab.lab_subscription.resource_id)  # Reader inherited from the subscription
    created = svc.assign_missing_roles(trainer, vault=vault, datasources=[ds_for(PG, inventory)], level="Resource")
    assert [(a.role.name, a.scope) for a in created] == [(LTR, inventory.server.resource_id)]


def test_several_datasources_share_an_assignment_at_a_wide_scope(lab, vault, inventory, trainer):
    volumes = [readiness.Datasource(ESAN, v.resource_id, v.name, inventory.san.resource_id,
                                    lab.lab_group.resource_id) for v in inventory.volumes]
    created = svc.assign_missing_roles(trainer, vault=vault, datasources=volumes, level="Resource group")
    assert sorted(a.role.name for a in created) == sorted([EXP, DSC])
