"""Built-in role definitions, as data, from the product reference (section 2.1).

Ids are the reference's where it gives them, else a UUID5 of the role's name (decision 8).
Roles are seeded idempotently after every migrate (and after test flushes).
"""

import uuid

DP = "Microsoft.DataProtection"
ROLE_NAMESPACE = uuid.UUID("6f1c1b6e-3d7c-4c36-9a55-1b1f4f7f0a11")


def _name_id(name: str) -> str:
    return str(uuid.uuid5(ROLE_NAMESPACE, name))


OWNER = "Owner"
CONTRIBUTOR = "Contributor"
READER = "Reader"
USER_ACCESS_ADMINISTRATOR = "User Access Administrator"
RBAC_ADMINISTRATOR = "Role Based Access Control Administrator"
BACKUP_CONTRIBUTOR = "Backup Contributor"
BACKUP_OPERATOR = "Backup Operator"
BACKUP_READER = "Backup Reader"
BACKUP_MUA_ADMIN = "Backup MUA Admin"
BACKUP_MUA_OPERATOR = "Backup MUA Operator"
DISK_SNAPSHOT_CONTRIBUTOR = "Disk Snapshot Contributor"
DISK_BACKUP_READER = "Disk Backup Reader"
DISK_RESTORE_OPERATOR = "Disk Restore Operator"
STORAGE_ACCOUNT_BACKUP_CONTRIBUTOR = "Storage Account Backup Contributor"
ELASTIC_SAN_SNAPSHOT_EXPORTER = "Elastic SAN Snapshot Exporter"
ELASTIC_SAN_VOLUME_IMPORTER = "Elastic SAN Volume Importer"
POSTGRES_LTR_BACKUP_ROLE = "PostgreSQL Flexible Server Long Term Retention Backup Role"
STORAGE_BLOB_DATA_CONTRIBUTOR = "Storage Blob Data Contributor"

_BACKUP_READS = [
    "Microsoft.Authorization/*/read",
    "Microsoft.Resources/subscriptions/read",
    "Microsoft.Resources/subscriptions/resourceGroups/read",
    "Microsoft.Storage/storageAccounts/read",
    "Microsoft.AlertsManagement/alerts/read",
    f"{DP}/backupVaults/read",
    f"{DP}/backupVaults/backupInstances/read",
    f"{DP}/backupVaults/backupInstances/recoveryPoints/read",
    f"{DP}/backupVaults/backupPolicies/read",
    f"{DP}/backupVaults/backupJobs/read",
    f"{DP}/backupVaults/deletedBackupInstances/read",
    f"{DP}/backupVaults/operationResults/read",
    f"{DP}/backupVaults/operationStatus/read",
    f"{DP}/backupVaults/backupResourceGuardProxies/read",
    f"{DP}/locations/operationStatus/read",
    f"{DP}/locations/operationResults/read",
    f"{DP}/locations/getBackupStatus/action",
    f"{DP}/subscriptions/providers/resourceGuards/read",
    f"{DP}/providers/operations/read",
]

BUILT_IN_ROLES = [
    {
        "name": OWNER,
        "id": _name_id(OWNER),
        "description": "Grants full access to manage all resources, including the ability to "
        "assign roles in Azure RBAC.",
        "actions": ["*"],
    },
    {
        "name": CONTRIBUTOR,
        "id": _name_id(CONTRIBUTOR),
        "description": "Grants full access to manage all resources, but does not allow you to "
        "assign roles in Azure RBAC.",
        "actions": ["*"],
        "not_actions": [
            "Microsoft.Authorization/*/Delete",
            "Microsoft.Authorization/*/Write",
            "Microsoft.Authorization/elevateAccess/Action",
            "Microsoft.Subscription/cancel/action",
            "Microsoft.Subscription/enable/action",
        ],
    },
    {
        "name": READER,
        "id": _name_id(READER),
        "description": "View all resources, but does not allow you to make any changes.",
        "actions": ["*/read"],
    },
    {
        "name": USER_ACCESS_ADMINISTRATOR,
        "id": _name_id(USER_ACCESS_ADMINISTRATOR),
        "description": "Lets you manage user access to Azure resources.",
        "actions": ["*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"],
    },
    {
        "name": RBAC_ADMINISTRATOR,
        "id": _name_id(RBAC_ADMINISTRATOR),
        "description": "Manage access to Azure resources by assigning roles using Azure RBAC. "
        "This role does not allow you to manage access using other ways, such as Azure Policy.",
        "actions": [
            "Microsoft.Authorization/roleAssignments/write",
            "Microsoft.Authorization/roleAssignments/delete",
            "*/read",
            "Microsoft.Support/*",
        ],
    },
    {
        "name": BACKUP_CONTRIBUTOR,
        "id": "5e467623-bb1f-42f4-a55d-6e525e11384b",
        "description": "Lets you manage backups, but can't delete vaults and give access to "
        "others",
        "actions": _BACKUP_READS
        + [
            "Microsoft.Resources/deployments/*",
            f"{DP}/backupVaults/write",
            f"{DP}/backupVaults/backupInstances/write",
            f"{DP}/backupVaults/backupInstances/delete",
            f"{DP}/backupVaults/backupInstances/backup/action",
            f"{DP}/backupVaults/backupInstances/validateRestore/action",
            f"{DP}/backupVaults/backupInstances/restore/action",
            f"{DP}/backupVaults/backupInstances/stopProtection/action",
            f"{DP}/backupVaults/backupInstances/suspendBackups/action",
            f"{DP}/backupVaults/backupInstances/resumeProtection/action",
            f"{DP}/backupVaults/backupInstances/resumeBackups/action",
            f"{DP}/backupVaults/backupInstances/sync/action",
            f"{DP}/backupVaults/backupInstances/validateForModifyBackup/action",
            f"{DP}/backupVaults/deletedBackupInstances/undelete/action",
            f"{DP}/backupVaults/backupPolicies/write",
            f"{DP}/backupVaults/backupPolicies/delete",
            f"{DP}/backupVaults/validateForBackup/action",
            f"{DP}/backupVaults/backupResourceGuardProxies/write",
            f"{DP}/backupVaults/backupResourceGuardProxies/delete",
            f"{DP}/backupVaults/backupJobs/cancel/action",
            f"{DP}/locations/checkNameAvailability/action",
            f"{DP}/locations/checkFeatureSupport/action",
            f"{DP}/locations/crossRegionRestore/action",
            f"{DP}/locations/validateCrossRegionRestore/action",
            f"{DP}/locations/fetchSecondaryRecoveryPoints/action",
            f"{DP}/locations/fetchCrossRegionRestoreJobs/action",
            f"{DP}/locations/fetchCrossRegionRestoreJob/action",
            "Microsoft.AlertsManagement/alerts/changestate/action",
        ],
    },
    {
        "name": BACKUP_OPERATOR,
        "id": "00c29273-979b-4161-815c-10b084fb9324",
        "description": "Lets you manage backup services, except removal of backup, vault creation "
        "and giving access to others",
        "actions": _BACKUP_READS
        + [
            f"{DP}/backupVaults/validateForBackup/action",
            f"{DP}/backupVaults/backupInstances/backup/action",
            f"{DP}/backupVaults/backupInstances/validateRestore/action",
            f"{DP}/backupVaults/backupInstances/restore/action",
            f"{DP}/backupVaults/backupInstances/findRestorableTimeRanges/action",
            f"{DP}/locations/checkNameAvailability/action",
            f"{DP}/locations/crossRegionRestore/action",
            f"{DP}/locations/validateCrossRegionRestore/action",
            f"{DP}/locations/fetchSecondaryRecoveryPoints/action",
        ],
    },
    {
        "name": BACKUP_READER,
        "id": "a795c7a0-d4a2-40c1-ae25-d81f01202912",
        "description": "Can view backup services, but can't make changes",
        "actions": list(_BACKUP_READS),
    },
    {
        "name": BACKUP_MUA_ADMIN,
        "id": _name_id(BACKUP_MUA_ADMIN),
        "description": "Backup MUA Admin can manage Resource Guard, including deleting it.",
        "actions": [
            "Microsoft.Authorization/*/read",
            "Microsoft.Resources/subscriptions/read",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
            f"{DP}/resourceGuards/*",
            f"{DP}/subscriptions/providers/resourceGuards/*",
        ],
    },
    {
        "name": BACKUP_MUA_OPERATOR,
        "id": "f54b6d04-23c6-443e-b462-9c16ab7b4a52",
        "description": "Allows user to perform critical operation protected by resourceguard",
        "actions": [
            "Microsoft.Authorization/*/read",
            f"{DP}/*/read",
            f"{DP}/*/action",
        ],
    },
    {
        "name": DISK_BACKUP_READER,
        "id": "3e5e47e6-65f7-47ef-90b5-e5dd4d455f24",
        "description": "Provides permission to backup vault to perform disk backup.",
        "actions": [
            "Microsoft.Authorization/*/read",
            "Microsoft.Compute/disks/read",
            "Microsoft.Compute/disks/beginGetAccess/action",
        ],
    },
    {
        "name": DISK_SNAPSHOT_CONTRIBUTOR,
        "id": "7efff54f-a5b4-42b5-a1c5-5411624893ce",
        "description": "Provides permission to backup vault to manage disk snapshots.",
        "actions": [
            "Microsoft.Compute/snapshots/delete",
            "Microsoft.Compute/snapshots/write",
            "Microsoft.Compute/snapshots/read",
            "Microsoft.Compute/snapshots/beginGetAccess/action",
            "Microsoft.Compute/snapshots/endGetAccess/action",
            "Microsoft.Compute/disks/beginGetAccess/action",
            "Microsoft.Storage/storageAccounts/listkeys/action",
            "Microsoft.Storage/storageAccounts/write",
            "Microsoft.Storage/storageAccounts/read",
            "Microsoft.Storage/storageAccounts/delete",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
        ],
    },
    {
        "name": DISK_RESTORE_OPERATOR,
        "id": "b50d9833-a0cb-478e-945f-707fcc997c13",
        "description": "Provides permission to backup vault to perform disk restore.",
        "actions": [
            "Microsoft.Compute/disks/write",
            "Microsoft.Compute/disks/read",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
        ],
    },
    {
        "name": STORAGE_ACCOUNT_BACKUP_CONTRIBUTOR,
        "id": "e5e2a7ff-d759-4cd2-bb51-3152d37e2eb1",
        "description": "Lets you perform backup and restore operations using Azure Backup on the "
        "storage account.",
        "actions": [
            "Microsoft.Authorization/locks/read",
            "Microsoft.Authorization/locks/write",
            "Microsoft.Authorization/locks/delete",
            "Microsoft.Features/features/read",
            "Microsoft.Storage/storageAccounts/objectReplicationPolicies/delete",
            "Microsoft.Storage/storageAccounts/objectReplicationPolicies/read",
            "Microsoft.Storage/storageAccounts/objectReplicationPolicies/write",
            "Microsoft.Storage/storageAccounts/objectReplicationPolicies/restorePointMarkers/write",
            "Microsoft.Storage/storageAccounts/blobServices/containers/read",
            "Microsoft.Storage/storageAccounts/blobServices/containers/write",
            "Microsoft.Storage/storageAccounts/blobServices/read",
            "Microsoft.Storage/storageAccounts/blobServices/write",
            "Microsoft.Storage/storageAccounts/read",
            "Microsoft.Storage/storageAccounts/restoreBlobRanges/action",
        ],
    },
    {
        "name": ELASTIC_SAN_SNAPSHOT_EXPORTER,
        "id": "1c4770c0-34f7-4110-a1ea-a5855cc7a939",
        "description": "Allows for creating and exporting Snapshot of Elastic San Volume",
        "actions": [
            "Microsoft.ElasticSan/elasticSans/read",
            "Microsoft.ElasticSan/elasticSans/*/read",
            "Microsoft.ElasticSan/elasticSans/volumeGroups/snapshots/write",
            "Microsoft.ElasticSan/elasticSans/volumeGroups/snapshots/delete",
            "Microsoft.ElasticSan/elasticSans/volumeGroups/snapshots/beginGetAccess/action",
            "Microsoft.ElasticSan/elasticSans/volumeGroups/preBackup/action",
            "Microsoft.Compute/disks/read",
            "Microsoft.Compute/disks/write",
            "Microsoft.Compute/disks/delete",
            "Microsoft.Compute/snapshots/read",
            "Microsoft.Compute/snapshots/write",
            "Microsoft.Compute/snapshots/delete",
        ],
    },
    {
        "name": ELASTIC_SAN_VOLUME_IMPORTER,
        "id": "90e8b822-3e73-47b5-868a-787dc80c008f",
        "description": "Allows for Importing Elastic San Volume",
        "actions": [
            "Microsoft.ElasticSan/elasticSans/read",
            "Microsoft.ElasticSan/elasticSans/*/read",
            "Microsoft.ElasticSan/elasticSans/volumeGroups/preRestore/action",
            "Microsoft.ElasticSan/elasticSans/volumeGroups/volumes/write",
            "Microsoft.ElasticSan/elasticSans/volumeGroups/volumes/delete",
            "Microsoft.Compute/disks/read",
            "Microsoft.Compute/disks/beginGetAccess/action",
            "Microsoft.Compute/disks/endGetAccess/action",
            "Microsoft.Compute/snapshots/read",
            "Microsoft.Compute/snapshots/beginGetAccess/action",
            "Microsoft.Compute/snapshots/endGetAccess/action",
        ],
    },
    {
        "name": POSTGRES_LTR_BACKUP_ROLE,
        "id": "c088a766-074b-43ba-90d4-1fb21feae531",
        "description": "Role to allow backup vault to access PostgreSQL Flexible Server "
        "Resource APIs for Long Term Retention Backup.",
        "actions": [
            "Microsoft.DBforPostgreSQL/flexibleServers/ltrPreBackup/action",
            "Microsoft.DBforPostgreSQL/flexibleServers/startLtrBackup/action",
            "Microsoft.DBforPostgreSQL/flexibleServers/ltrBackupOperations/read",
            "Microsoft.DBforPostgreSQL/locations/azureAsyncOperation/read",
            "Microsoft.Resources/subscriptions/read",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
        ],
    },
    {
        "name": STORAGE_BLOB_DATA_CONTRIBUTOR,
        "id": _name_id(STORAGE_BLOB_DATA_CONTRIBUTOR),
        "description": "Read, write, and delete Azure Storage containers and blobs.",
        "actions": [
            "Microsoft.Storage/storageAccounts/blobServices/containers/delete",
            "Microsoft.Storage/storageAccounts/blobServices/containers/read",
            "Microsoft.Storage/storageAccounts/blobServices/containers/write",
            "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action",
        ],
        "data_actions": [
            "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete",
            "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read",
            "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write",
            "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/move/action",
            "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/add/action",
        ],
    },
]


def seed_builtin_roles(sender=None, **kwargs):
    """Create or refresh the built-in roles. Idempotent; safe to run after every migrate."""
    from security.models import RoleDefinition

    for spec in BUILT_IN_ROLES:
        RoleDefinition.objects.update_or_create(
            id=spec["id"],
            defaults={
                "name": spec["name"],
                "description": spec["description"],
                "actions": spec.get("actions", []),
                "not_actions": spec.get("not_actions", []),
                "data_actions": spec.get("data_actions", []),
                "not_data_actions": spec.get("not_data_actions", []),
                "built_in": True,
            },
        )
