"""The authorization matrix: expected outcomes written by hand from the reference's role
definitions (section 2.1), not computed by `authorize`. Each row is checked through `authorize`,
and the write rows also through the services and the HTTP views.
"""

import pytest

from security import roles
from security.rbac import authorize

DP = "Microsoft.DataProtection/backupVaults"
VAULT_WRITE = f"{DP}/write"
VAULT_DELETE = f"{DP}/delete"
VAULT_READ = f"{DP}/read"
BI_WRITE = f"{DP}/backupInstances/write"
BI_DELETE = f"{DP}/backupInstances/delete"
BACKUP_NOW = f"{DP}/backupInstances/backup/action"
RESTORE = f"{DP}/backupInstances/restore/action"
POLICY_WRITE = f"{DP}/backupPolicies/write"
UNDELETE = f"{DP}/deletedBackupInstances/undelete/action"
RA_WRITE = "Microsoft.Authorization/roleAssignments/write"
RA_DELETE = "Microsoft.Authorization/roleAssignments/delete"
RG_WRITE = "Microsoft.Resources/subscriptions/resourceGroups/write"
RG_READ = "Microsoft.Resources/subscriptions/resourceGroups/read"
SA_BACKUP = "Microsoft.Storage/storageAccounts/restoreBlobRanges/action"
ESAN_SNAPSHOT = "Microsoft.ElasticSan/elasticSans/volumeGroups/snapshots/write"
PG_LTR = "Microsoft.DBforPostgreSQL/flexibleServers/startLtrBackup/action"
# Starting work on a datasource (Compute checksum; Test connection with the server's admin login) and
# reading blob data with the account key: never a read-only role's.
VOLUME_WRITE = "Microsoft.ElasticSan/elasticSans/volumeGroups/volumes/write"
PG_WRITE = "Microsoft.DBforPostgreSQL/flexibleServers/write"
LIST_KEYS = "Microsoft.Storage/storageAccounts/listKeys/action"
BLOB_READ = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"

A, D = True, False  # allowed, denied

# role -> {action: expected}; literal, from the reference's role descriptions.
MATRIX = {
    roles.OWNER: {VAULT_WRITE: A, VAULT_DELETE: A, VAULT_READ: A, BI_WRITE: A, BACKUP_NOW: A,
                  RA_WRITE: A, RA_DELETE: A, RG_WRITE: A, VOLUME_WRITE: A, PG_WRITE: A, LIST_KEYS: A},
    roles.CONTRIBUTOR: {VAULT_WRITE: A, VAULT_DELETE: A, VAULT_READ: A, BI_WRITE: A, RA_WRITE: D,
                        RA_DELETE: D, RG_WRITE: A, VOLUME_WRITE: A, PG_WRITE: A, LIST_KEYS: A},
    roles.READER: {VAULT_READ: A, RG_READ: A, VAULT_WRITE: D, VAULT_DELETE: D, BACKUP_NOW: D,
                   RA_WRITE: D, RG_WRITE: D, VOLUME_WRITE: D, PG_WRITE: D, LIST_KEYS: D, RESTORE: D},
    roles.USER_ACCESS_ADMINISTRATOR: {RA_WRITE: A, RA_DELETE: A, VAULT_READ: A, VAULT_WRITE: D,
                                      RG_WRITE: D},
    roles.RBAC_ADMINISTRATOR: {RA_WRITE: A, RA_DELETE: A, VAULT_READ: A, VAULT_WRITE: D, RG_WRITE: D},
    # "Lets you manage backups, but can't delete vaults and give access to others"
    roles.BACKUP_CONTRIBUTOR: {VAULT_WRITE: A, VAULT_READ: A, VAULT_DELETE: D, BI_WRITE: A,
                               BI_DELETE: A, BACKUP_NOW: A, RESTORE: A, POLICY_WRITE: A, UNDELETE: A,
                               RA_WRITE: D, RG_WRITE: D, LIST_KEYS: D, PG_WRITE: D, VOLUME_WRITE: D},
    # "...except removal of backup, vault creation and giving access to others"
    roles.BACKUP_OPERATOR: {VAULT_READ: A, BACKUP_NOW: A, RESTORE: A, BI_WRITE: D, BI_DELETE: D,
                            POLICY_WRITE: D, VAULT_WRITE: D, VAULT_DELETE: D, UNDELETE: D,
                            RA_WRITE: D, LIST_KEYS: D, VOLUME_WRITE: D},
    # "Can view backup services, but can't make changes"
    roles.BACKUP_READER: {VAULT_READ: A, BACKUP_NOW: D, RESTORE: D, VAULT_WRITE: D, BI_WRITE: D},
    # Operator on the guard: reads and actions of DataProtection; cannot delete the guard.
    roles.BACKUP_MUA_OPERATOR: {VAULT_READ: A, BACKUP_NOW: A,
                                "Microsoft.DataProtection/resourceGuards/delete": D,
                                VAULT_DELETE: D, RA_WRITE: D},
    roles.BACKUP_MUA_ADMIN: {"Microsoft.DataProtection/resourceGuards/delete": A,
                             "Microsoft.DataProtection/resourceGuards/write": A, VAULT_WRITE: D},
    roles.STORAGE_ACCOUNT_BACKUP_CONTRIBUTOR: {SA_BACKUP: A, "Microsoft.Storage/storageAccounts/read": A,
                                               "Microsoft.Storage/storageAccounts/delete": D, VAULT_READ: D},
    roles.ELASTIC_SAN_SNAPSHOT_EXPORTER: {ESAN_SNAPSHOT: A,
                                          "Microsoft.ElasticSan/elasticSans/volumeGroups/read": A,
                                          "Microsoft.ElasticSan/elasticSans/delete": D},
    roles.ELASTIC_SAN_VOLUME_IMPORTER: {VOLUME_WRITE: A, ESAN_SNAPSHOT: D},
    roles.POSTGRES_LTR_BACKUP_ROLE: {PG_LTR: A, "Microsoft.DBforPostgreSQL/flexibleServers/delete": D},
    roles.DISK_SNAPSHOT_CONTRIBUTOR: {"Microsoft.Compute/snapshots/write": A,
                                      "Microsoft.Compute/disks/write": D},
    roles.DISK_BACKUP_READER: {"Microsoft.Compute/disks/beginGetAccess/action": A,
                               "Microsoft.Compute/snapshots/write": D},
    roles.DISK_RESTORE_OPERATOR: {"Microsoft.Compute/disks/write": A,
                                  "Microsoft.Compute/snapshots/write": D},
    roles.STORAGE_BLOB_DATA_CONTRIBUTOR: {
        "Microsoft.Storage/storageAccounts/blobServices/containers/write": A,
        "Microsoft.Storage/storageAccounts/delete": D},
}

ROWS = [(role, action, expected) for role, actions in MATRIX.items() for action, expected in actions.items()]

# Data actions (reading blobs with Microsoft Entra ID): only data roles hold them; Owner and Contributor
# reach blob data through the account key (listKeys) instead, as in Azure.
DATA_MATRIX = {
    roles.STORAGE_BLOB_DATA_CONTRIBUTOR: {BLOB_READ: A},
    roles.OWNER: {BLOB_READ: D},
    roles.CONTRIBUTOR: {BLOB_READ: D},
    roles.READER: {BLOB_READ: D},
    roles.BACKUP_OPERATOR: {BLOB_READ: D},
    roles.STORAGE_ACCOUNT_BACKUP_CONTRIBUTOR: {BLOB_READ: D},
}
DATA_ROWS = [(r, a, e) for r, actions in DATA_MATRIX.items() for a, e in actions.items()]


@pytest.fixture
def subject(db):
    from security.models import Principal

    return Principal.objects.create(kind=Principal.Kind.USER, display_name="Matrix subject")


@pytest.mark.parametrize("role_name,action,expected", ROWS, ids=[f"{r}|{a.split('/', 1)[-1]}" for r, a, _ in ROWS])
def test_matrix_row(subject, role_name, action, expected):
    from security.models import RoleAssignment, RoleDefinition

    scope = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-matrix"
    RoleAssignment.objects.create(principal=subject, role=RoleDefinition.objects.get(name=role_name), scope=scope)
    target = f"{scope}/providers/Microsoft.DataProtection/backupVaults/bv1"
    assert authorize(subject, action, target).allowed is expected


@pytest.mark.parametrize("role_name,action,expected", DATA_ROWS, ids=[f"{r}|data" for r, _a, _e in DATA_ROWS])
def test_data_matrix_row(subject, role_name, action, expected):
    from security.models import RoleAssignment, RoleDefinition

    scope = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-matrix"
    RoleAssignment.objects.create(principal=subject, role=RoleDefinition.objects.get(name=role_name), scope=scope)
    target = f"{scope}/providers/Microsoft.Storage/storageAccounts/sa1/blobServices/default/containers/c1"
    assert authorize(subject, action, target, data_action=True).allowed is expected


def test_every_built_in_role_of_the_issue_is_seeded(db):
    from security.models import RoleDefinition

    expected = {
        "Owner", "Contributor", "Reader", "User Access Administrator",
        "Role Based Access Control Administrator", "Backup Contributor", "Backup Operator",
        "Backup Reader", "Backup MUA Admin", "Backup MUA Operator", "Disk Snapshot Contributor",
        "Disk Backup Reader", "Disk Restore Operator", "Storage Account Backup Contributor",
        "Elastic SAN Snapshot Exporter", "Elastic SAN Volume Importer",
        "PostgreSQL Flexible Server Long Term Retention Backup Role", "Storage Blob Data Contributor",
    }
    assert expected <= set(RoleDefinition.objects.filter(built_in=True).values_list("name", flat=True))
    assert str(RoleDefinition.objects.get(name="Backup Contributor").id) == "5e467623-bb1f-42f4-a55d-6e525e11384b"
    assert str(RoleDefinition.objects.get(name="Backup MUA Operator").id) == "f54b6d04-23c6-443e-b462-9c16ab7b4a52"


# --- through the services and the views ------------------------------------------------------

# persona -> can create a resource group in the lab subscription / can give a user (the outsider) Reader on
# the lab resource group. Literal, from the seeded roles.
SERVICE_MATRIX = [
    ("trainer", True, True),  # Owner at /
    # Backup Contributor + RBAC Administrator on the lab RG, constrained to the roles a vault identity needs,
    # for managed identities only: a user is refused (tests/security/test_constrained_delegation.py)
    ("backup-admin", False, False),
    ("backup-operator", False, False),  # Backup Operator + Reader on the lab RG
    ("security-admin", False, False),  # Owner of the Security subscription only
    ("reader", False, False),  # Reader on the lab subscription
    ("outsider", False, False),
]


def _principal(lab, key):
    return lab.trainer if key == "trainer" else lab.personas[key].principal


@pytest.mark.parametrize("persona,can_create_group,can_assign", SERVICE_MATRIX)
def test_service_matrix(lab, persona, can_create_group, can_assign):
    from django.core.exceptions import ValidationError

    from portal import services
    from security.guards import GuardDenied
    from security.models import RoleDefinition
    from security.services import assign_role

    principal = _principal(lab, persona)
    try:
        services.create_resource_group(principal, subscription=lab.lab_subscription, name=f"rg-{persona}", region=lab.region)
        created = True
    except GuardDenied:
        created = False
    assert created is can_create_group

    try:
        assign_role(principal, assignee=lab.personas["outsider"].principal,
                    role=RoleDefinition.objects.get(name=roles.READER), scope=lab.lab_group.resource_id)
        assigned = True
    except GuardDenied:
        assigned = False
    except ValidationError:  # already assigned by an earlier row: the guard let it through
        assigned = True
    assert assigned is can_assign


@pytest.mark.parametrize("persona,can_create_group,can_assign", SERVICE_MATRIX)
def test_view_matrix(lab, client, persona, can_create_group, can_assign):
    from portal.models import ResourceGroup
    from security.models import RoleDefinition

    client.force_login(_principal(lab, persona).user)
    response = client.post(
        "/resource-groups/create/",
        {"subscription": lab.lab_subscription.pk, "name": f"rg-view-{persona}", "region": "eastus"},
    )
    exists = ResourceGroup.objects.filter(name=f"rg-view-{persona}").exists()
    assert exists is can_create_group
    if not can_create_group:
        # Either refused with the explained 403, or the subscription is not even offered (form error).
        assert response.status_code in (403, 200)

    response = client.post(
        "/iam/add/",
        {"scope": lab.lab_group.resource_id, "role": RoleDefinition.objects.get(name=roles.READER).pk,
         "member": lab.personas["outsider"].principal.pk},
    )
    if can_assign:
        assert response.status_code == 302
    elif persona == "outsider" or persona == "security-admin":
        assert response.status_code == 404  # cannot even read the lab resource group
    elif persona == "backup-admin":  # its delegation condition refused it
        assert response.status_code == 403
        assert b"does not have authorization or an ABAC condition not fulfilled to perform action" in response.content
    else:
        assert response.status_code == 403
        assert b"does not have authorization to perform action" in response.content


# persona -> (start Compute checksum on a volume, Test connection of a PostgreSQL server, delete a
# storage account). Read-only roles start no work. Literal, from the seeded roles.
WORK_MATRIX = {
    "trainer": (True, True, True),
    "backup-admin": (False, False, False),
    "backup-operator": (False, False, False),
    "security-admin": (False, False, False),
    "reader": (False, False, False),
    "outsider": (False, False, False),
}


def test_work_matrix_through_the_services(lab, monkeypatch):
    from portal.inventory import services as inv
    from portal.inventory import tasks
    from portal.inventory.models import Volume
    from security.guards import GuardDenied

    monkeypatch.setattr(tasks.run_volume_job, "delay", lambda *a: None)
    t = lab.trainer
    san = inv.create_elastic_san(t, resource_group=lab.lab_group, name="esan-matrix", region=lab.region)
    volume = inv.create_volume(t, inv.create_volume_group(t, san, name="vg-matrix"), name="vol-matrix", size_gib=1)
    server = inv.create_postgres_server(t, resource_group=lab.lab_group, name="pg-matrix", region=lab.region,
                                        host="127.0.0.1", port=1, admin_user="postgres")

    def outcome(call) -> bool:
        try:
            call()
        except GuardDenied:
            return False
        return True

    got = {}
    for persona in WORK_MATRIX:
        principal = _principal(lab, persona)
        account = inv.create_storage_account(t, resource_group=lab.lab_group, name=f"samx{persona.replace('-', '')[:10]}",
                                             region=lab.region)
        checksum = outcome(lambda: inv.start_volume_job(principal, volume, Volume.Activity.COMPUTE_CHECKSUM))
        Volume.objects.filter(pk=volume.pk).update(activity_status="")  # let the next one start
        got[persona] = (checksum, outcome(lambda: inv.refresh_postgres_server(principal, server)),
                        outcome(lambda: inv.delete_storage_account(principal, account)))
    assert got == WORK_MATRIX
