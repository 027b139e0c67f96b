"""Deleting a resource removes the role assignments scoped to it and below it, in the delete's own
transaction and logged, so a new resource of the same name inherits nothing."""

from __future__ import annotations

import secrets

import pytest
from django.core.exceptions import ValidationError

from portal import services as portal_services
from portal.inventory import services
from security import roles
from security import services as security_services
from security.models import ActivityLogEntry, RoleAssignment, RoleDefinition
from security.rbac import authorize

pytestmark = pytest.mark.django_db


def _give(lab, principal, role, scope):
    return security_services.assign_role(lab.trainer, assignee=principal, role=RoleDefinition.objects.get(name=role),
                                         scope=scope)


def _removed_entries(scope):
    return ActivityLogEntry.objects.filter(operation=security_services.ROLE_ASSIGNMENT_DELETE,
                                           details__deletedScope=scope, status="Succeeded")


def test_a_new_storage_account_of_the_same_name_inherits_nothing(lab):
    """GIVEN the reader with Contributor on a storage account and Storage Blob Data Contributor on one
    of its containers, and the operator with a role on a sibling account whose name merely starts the same
    WHEN the account is deleted and created again under the same name
    THEN the reader holds nothing on the new one, both removals are logged (naming the cause) and the
    sibling's assignment is untouched."""
    reader, operator = lab.personas["reader"].principal, lab.personas["backup-operator"].principal
    name = "sacleanup" + secrets.token_hex(2)
    account = services.create_storage_account(lab.trainer, resource_group=lab.lab_group, name=name, region=lab.region)
    container = services.create_container(lab.trainer, account, name="documents")
    sibling = services.create_storage_account(lab.trainer, resource_group=lab.lab_group, name=name + "x", region=lab.region)
    _give(lab, reader, roles.CONTRIBUTOR, account.resource_id)
    _give(lab, reader, roles.STORAGE_BLOB_DATA_CONTRIBUTOR, container.resource_id)
    kept = _give(lab, operator, roles.CONTRIBUTOR, sibling.resource_id)
    rid = account.resource_id

    services.delete_storage_account(lab.trainer, account)

    assert not RoleAssignment.objects.filter(principal=reader).exclude(scope__iexact=lab.lab_subscription.resource_id).exists()
    assert RoleAssignment.objects.filter(pk=kept.pk).exists()
    entries = _removed_entries(rid)
    assert entries.count() == 2
    assert {e.details["role"] for e in entries} == {roles.CONTRIBUTOR, roles.STORAGE_BLOB_DATA_CONTRIBUTOR}
    assert all(e.details["cause"] == "The storage account was deleted." for e in entries)
    delete_entry = ActivityLogEntry.objects.get(operation=services.STORAGE_ACCOUNT_DELETE, scope__iexact=rid)
    assert delete_entry.details["roleAssignmentsRemoved"] == 2
    again = services.create_storage_account(lab.trainer, resource_group=lab.lab_group, name=name, region=lab.region)
    assert not authorize(reader, services.STORAGE_ACCOUNT_DELETE, again.resource_id).allowed
    new_container = services.create_container(lab.trainer, again, name="documents")
    assert not services.can_use_blobs(reader, new_container, services.BLOB_READ)


def test_container_elastic_san_chain_and_server_deletes_remove_their_assignments(lab):
    reader = lab.personas["reader"].principal
    account = services.create_storage_account(lab.trainer, resource_group=lab.lab_group,
                                              name="sacln" + secrets.token_hex(3), region=lab.region)
    container = services.create_container(lab.trainer, account, name="logs")
    san = services.create_elastic_san(lab.trainer, resource_group=lab.lab_group, name="esan-cleanup", region=lab.region)
    group = services.create_volume_group(lab.trainer, san, name="vg-cleanup")
    volume = services.create_volume(lab.trainer, group, name="vol-cleanup", size_gib=1)
    server = services.create_postgres_server(lab.trainer, resource_group=lab.lab_group, name="pg-cleanup",
                                             region=lab.region, host="127.0.0.1", port=1, admin_user="postgres")
    steps = [
        (container.resource_id, lambda: services.delete_container(lab.trainer, container)),
        (volume.resource_id, lambda: services.delete_volume(lab.trainer, volume)),
        (group.resource_id, lambda: services.delete_volume_group(lab.trainer, group)),
        (san.resource_id, lambda: services.delete_elastic_san(lab.trainer, san)),
        (server.resource_id, lambda: services.delete_postgres_server(lab.trainer, server)),
    ]
    for scope, _delete in steps:
        _give(lab, reader, roles.CONTRIBUTOR, scope)
    _give(lab, reader, roles.READER, f"{server.resource_id}/databases/sales")  # below the server
    for scope, delete in steps:
        delete()
        assert not RoleAssignment.objects.filter(scope__iexact=scope).exists(), scope
        assert _removed_entries(scope).exists(), scope
    assert not RoleAssignment.objects.filter(scope__istartswith=server.resource_id).exists()
    assert _removed_entries(server.resource_id).count() == 2


def test_a_refused_delete_keeps_the_assignments(lab):
    """A delete that fails (the Elastic SAN still has a volume group) rolls the removals back with it."""
    reader = lab.personas["reader"].principal
    san = services.create_elastic_san(lab.trainer, resource_group=lab.lab_group, name="esan-keep", region=lab.region)
    services.create_volume_group(lab.trainer, san, name="vg-keep")
    assignment = _give(lab, reader, roles.CONTRIBUTOR, san.resource_id)
    with pytest.raises(ValidationError):
        services.delete_elastic_san(lab.trainer, san)
    assert RoleAssignment.objects.filter(pk=assignment.pk).exists()
    assert not _removed_entries(san.resource_id).exists()


def test_a_resource_group_delete_logs_the_assignments_it_removes(lab):
    reader = lab.personas["reader"].principal
    group = portal_services.create_resource_group(lab.trainer, subscription=lab.lab_subscription, name="rg-cleanup",
                                                  region=lab.region)
    _give(lab, reader, roles.CONTRIBUTOR, group.resource_id)
    _give(lab, reader, roles.READER, f"{group.resource_id}/providers/Microsoft.Storage/storageAccounts/gone")
    portal_services.delete_resource_group(lab.trainer, group)
    assert _removed_entries(group.resource_id).count() == 2
    again = portal_services.create_resource_group(lab.trainer, subscription=lab.lab_subscription, name="rg-cleanup",
                                                  region=lab.region)
    assert not authorize(reader, portal_services.RESOURCE_GROUP_WRITE, again.resource_id).allowed


def test_a_database_delete_removes_its_assignments(lab, pg_name):
    reader = lab.personas["reader"].principal
    server = services.create_postgres_server(lab.trainer, resource_group=lab.lab_group, name="pg-db-cleanup",
                                             region=lab.region, host="127.0.0.1", admin_user="postgres")
    database = services.create_database(lab.trainer, server, name=pg_name())
    _give(lab, reader, roles.CONTRIBUTOR, database.resource_id)
    services.delete_database(lab.trainer, database)
    assert not RoleAssignment.objects.filter(scope__iexact=database.resource_id).exists()
    assert _removed_entries(database.resource_id).get().details["cause"] == "The database was deleted."
