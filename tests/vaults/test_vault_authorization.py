"""Authorization matrix for every vault operation, as literal tables written from the reference's
role descriptions (§2.1), checked through the services and through the HTTP views.

"Backup Contributor: lets you manage backups, but can't delete vaults"; "Backup Operator: ... except
removal of backup, vault creation and giving access to others"; "Backup Reader: can view backup
services, but can't make changes"; Owner and Contributor may do everything here; someone without a
role sees nothing (404 on the pages).
"""

import pytest
from django.urls import reverse

from security import roles
from vaults import services
from vaults.models import BackupVault
from tests.conftest import rbac_allows as _attempt

A, D = True, False
NONE = None  # no role at all (an outsider)

# role on the lab resource group -> read, create, update, identity, delete
MATRIX = [
    # role                         read create update identity delete
    (roles.OWNER,                  A,   A,     A,     A,       A),
    (roles.CONTRIBUTOR,            A,   A,     A,     A,       A),
    (roles.BACKUP_CONTRIBUTOR,     A,   A,     A,     A,       D),
    (roles.BACKUP_OPERATOR,        A,   D,     D,     D,       D),
    (roles.BACKUP_READER,          A,   D,     D,     D,       D),
    (roles.READER,                 A,   D,     D,     D,       D),
    (NONE,                         D,   D,     D,     D,       D),
]

# checkNameAvailability (the wizard's live name check); the reference lists it for Backup Contributor.
CHECK_NAME = [
    (roles.OWNER, A),
    (roles.BACKUP_CONTRIBUTOR, A),
    (roles.BACKUP_READER, D),
    (roles.READER, D),
    (NONE, D),
]

ROWS = [pytest.param(*row, id=row[0] or "no role") for row in MATRIX]


@pytest.mark.parametrize("role,read,create,update,identity,delete", ROWS)
def test_through_the_services(role, read, create, update, identity, delete, lab, vault, principal_with,
                              django_capture_on_commit_callbacks):
    principal = principal_with(role)
    assert services.vaults_for(principal).filter(pk=vault.pk).exists() is read
    assert _attempt(lambda: services.create_vault(principal, name="bv-matrix", resource_group=lab.lab_group,
                                                  region=lab.region)) is create
    assert BackupVault.objects.filter(name="bv-matrix").exists() is create
    assert _attempt(lambda: services.update_soft_delete(principal, vault, state="On", retention_days=30)) is update
    assert _attempt(lambda: services.set_identity_enabled(principal, vault, enabled=False)) is identity
    with django_capture_on_commit_callbacks(execute=True):
        assert _attempt(lambda: services.delete_vault(principal, vault)) is delete
    assert BackupVault.objects.filter(pk=vault.pk).exists() is not delete


@pytest.mark.parametrize("role,read,create,update,identity,delete", ROWS)
def test_through_the_views(role, read, create, update, identity, delete, lab, vault, principal_with, client,
                           django_capture_on_commit_callbacks):
    principal = principal_with(role)
    client.force_login(principal.user)
    hidden = 404  # a vault the principal cannot read does not exist for them
    denied = 403

    detail = client.get(reverse("vaults:vault_detail", args=[vault.pk]))
    assert detail.status_code == (200 if read else hidden)
    listing = client.get(reverse("vaults:vault_list")).content.decode()
    assert (vault.name in listing) is read

    # Create: the wizard's Review + create then Create.
    client.get(reverse("vaults:vault_create"))
    basics = {"vault_create-current_step": "basics", "basics-subscription": lab.lab_subscription.pk,
              "basics-resource_group": lab.lab_group.pk, "basics-name": "bv-matrix", "basics-region": "eastus",
              "basics-storage_redundancy": "GeoRedundant", "wizard_goto_step": "review"}
    client.post(reverse("vaults:vault_create"), basics)
    client.post(reverse("vaults:vault_create"), {"vault_create-current_step": "review"})
    assert BackupVault.objects.filter(name="bv-matrix").exists() is create

    response = client.post(reverse("vaults:vault_soft_delete", args=[vault.pk]), {"state": "On", "retention_days": "30"})
    assert response.status_code == (302 if update else denied if read else hidden)
    response = client.post(reverse("vaults:vault_identity", args=[vault.pk]), {"status": "off"})
    assert response.status_code == (302 if identity else denied if read else hidden)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("vaults:vault_delete", args=[vault.pk]), {"confirm_name": vault.name})
    assert response.status_code == (302 if delete else denied if read else hidden)
    assert BackupVault.objects.filter(pk=vault.pk).exists() is not delete


@pytest.mark.parametrize("role,allowed", [pytest.param(*row, id=row[0] or "no role") for row in CHECK_NAME])
def test_check_name_availability(role, allowed, lab, principal_with):
    principal = principal_with(role)
    assert _attempt(lambda: services.check_name_availability(principal, name="bv-free", resource_group=lab.lab_group)) is allowed
