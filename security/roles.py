"""Built-in role definitions, as data, from the product reference (section 2.1).

Ids are the reference's where it gives them, else a UUID5 of the role's name (decision 8).
Roles are seeded idempotently after every migrate (and after test flushes).
"""

import uuid

from security import operations as ops

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
NETWORK_CONTRIBUTOR = "Network Contributor"
LAB_TRAINEE = "Lab Trainee"
LAB_INSTRUCTOR = "Lab Instructor"

# Patterns are built from the operations catalogue's names; the strings are the reference's, letter for letter.
_READ_ACCESS_CONTROL = f"{ops.AUTHORIZATION}/*/read"
_DP_LOCATIONS = f"{ops.DATA_PROTECTION}/locations"
_DP_GUARDS_LIST = f"{ops.DATA_PROTECTION}/subscriptions/providers/resourceGuards"

_BACKUP_READS = [
    _READ_ACCESS_CONTROL,
    ops.SUBSCRIPTION_READ,
    ops.RESOURCE_GROUP_READ,
    ops.STORAGE_ACCOUNT_READ,
    ops.ALERT_READ,
    ops.VAULT_READ,
    ops.INSTANCE_READ,
    ops.RECOVERY_POINT_READ,
    ops.POLICY_READ,
    ops.JOB_READ,
    ops.DELETED_INSTANCE_READ,
    f"{ops.VAULT_TYPE}/operationResults/read",
    f"{ops.VAULT_TYPE}/operationStatus/read",
    ops.PROXY_READ,
    f"{_DP_LOCATIONS}/operationStatus/read",
    f"{_DP_LOCATIONS}/operationResults/read",
    f"{_DP_LOCATIONS}/getBackupStatus/action",
    f"{_DP_GUARDS_LIST}/read",
    f"{ops.DATA_PROTECTION}/providers/operations/read",
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
            f"{ops.AUTHORIZATION}/*/Delete",
            f"{ops.AUTHORIZATION}/*/Write",
            f"{ops.AUTHORIZATION}/elevateAccess/Action",
            f"{ops.SUBSCRIPTION_PROVIDER}/cancel/action",
            f"{ops.SUBSCRIPTION_PROVIDER}/enable/action",
            # Not in Azure's definition, because there Entra ID's objects are outside Azure RBAC altogether:
            # Contributor (at any scope) cannot register or delete applications nor add their secrets. Here
            # the directory's actions are checked by the same evaluator, so its writes are excluded by name;
            # reading them stays (as Reader's "*/read" reads them).
            f"{ops.DIRECTORY}/*/create",
            f"{ops.DIRECTORY}/*/delete",
            f"{ops.DIRECTORY}/*/update",
            f"{ops.DIRECTORY}/*/createAsOwner",
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
        "actions": ["*/read", f"{ops.AUTHORIZATION}/*", f"{ops.SUPPORT}/*"],
    },
    {
        "name": RBAC_ADMINISTRATOR,
        "id": _name_id(RBAC_ADMINISTRATOR),
        "description": "Manage access to Azure resources by assigning roles using Azure RBAC. "
        "This role does not allow you to manage access using other ways, such as Azure Policy.",
        "actions": [
            ops.ROLE_ASSIGNMENT_WRITE,
            ops.ROLE_ASSIGNMENT_DELETE,
            "*/read",
            f"{ops.SUPPORT}/*",
        ],
    },
    {
        "name": BACKUP_CONTRIBUTOR,
        "id": "5e467623-bb1f-42f4-a55d-6e525e11384b",
        "description": "Lets you manage backups, but can't delete vaults and give access to "
        "others",
        "actions": _BACKUP_READS
        + [
            f"{ops.DEPLOYMENT_TYPE}/*",
            ops.VAULT_WRITE,
            ops.INSTANCE_WRITE,
            ops.INSTANCE_DELETE,
            ops.BACKUP_ACTION,
            ops.VALIDATE_RESTORE,
            ops.RESTORE,
            ops.STOP_PROTECTION,
            ops.SUSPEND_BACKUPS,
            ops.RESUME_PROTECTION,
            ops.RESUME_BACKUPS,
            ops.RECOVERY_POINT_MOVE,  # archive tier (issue 21): Move to archive
            f"{ops.INSTANCE_TYPE}/sync/action",
            f"{ops.INSTANCE_TYPE}/validateForModifyBackup/action",
            ops.UNDELETE,
            ops.POLICY_WRITE,
            ops.POLICY_DELETE,
            ops.VALIDATE_FOR_BACKUP,
            ops.PROXY_WRITE,
            ops.PROXY_DELETE,
            ops.JOB_CANCEL,
            ops.CHECK_NAME_AVAILABILITY,
            f"{_DP_LOCATIONS}/checkFeatureSupport/action",
            f"{_DP_LOCATIONS}/crossRegionRestore/action",
            f"{_DP_LOCATIONS}/validateCrossRegionRestore/action",
            f"{_DP_LOCATIONS}/fetchSecondaryRecoveryPoints/action",
            f"{_DP_LOCATIONS}/fetchCrossRegionRestoreJobs/action",
            f"{_DP_LOCATIONS}/fetchCrossRegionRestoreJob/action",
            ops.ALERT_CHANGE_STATE,
        ],
    },
    {
        "name": BACKUP_OPERATOR,
        "id": "00c29273-979b-4161-815c-10b084fb9324",
        "description": "Lets you manage backup services, except removal of backup, vault creation "
        "and giving access to others",
        "actions": _BACKUP_READS
        + [
            ops.VALIDATE_FOR_BACKUP,
            ops.BACKUP_ACTION,
            ops.VALIDATE_RESTORE,
            ops.RESTORE,
            f"{ops.INSTANCE_TYPE}/findRestorableTimeRanges/action",
            ops.CHECK_NAME_AVAILABILITY,
            f"{_DP_LOCATIONS}/crossRegionRestore/action",
            f"{_DP_LOCATIONS}/validateCrossRegionRestore/action",
            f"{_DP_LOCATIONS}/fetchSecondaryRecoveryPoints/action",
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
            _READ_ACCESS_CONTROL,
            ops.SUBSCRIPTION_READ,
            ops.RESOURCE_GROUP_READ,
            f"{ops.RESOURCE_GUARD_TYPE}/*",
            f"{_DP_GUARDS_LIST}/*",
        ],
    },
    {
        "name": BACKUP_MUA_OPERATOR,
        "id": "f54b6d04-23c6-443e-b462-9c16ab7b4a52",
        "description": "Allows user to perform critical operation protected by resourceguard",
        "actions": [
            _READ_ACCESS_CONTROL,
            f"{ops.DATA_PROTECTION}/*/read",
            f"{ops.DATA_PROTECTION}/*/action",
        ],
    },
    {
        "name": DISK_BACKUP_READER,
        "id": "3e5e47e6-65f7-47ef-90b5-e5dd4d455f24",
        "description": "Provides permission to backup vault to perform disk backup.",
        "actions": [
            _READ_ACCESS_CONTROL,
            f"{ops.DISK_TYPE}/read",
            f"{ops.DISK_TYPE}/beginGetAccess/action",
        ],
    },
    {
        "name": DISK_SNAPSHOT_CONTRIBUTOR,
        "id": "7efff54f-a5b4-42b5-a1c5-5411624893ce",
        "description": "Provides permission to backup vault to manage disk snapshots.",
        "actions": [
            _READ_ACCESS_CONTROL,
            ops.SNAPSHOT_DELETE,
            ops.SNAPSHOT_WRITE,
            ops.SNAPSHOT_READ,
            f"{ops.DISK_SNAPSHOT_TYPE}/beginGetAccess/action",
            f"{ops.DISK_SNAPSHOT_TYPE}/endGetAccess/action",
            f"{ops.DISK_TYPE}/beginGetAccess/action",
            f"{ops.STORAGE_ACCOUNT_TYPE}/listkeys/action",  # the reference's casing (actions match case-blind)
            ops.STORAGE_ACCOUNT_WRITE,
            ops.STORAGE_ACCOUNT_READ,
            ops.STORAGE_ACCOUNT_DELETE,
            ops.RESOURCE_GROUP_READ,
        ],
    },
    {
        "name": DISK_RESTORE_OPERATOR,
        "id": "b50d9833-a0cb-478e-945f-707fcc997c13",
        "description": "Provides permission to backup vault to perform disk restore.",
        "actions": [
            _READ_ACCESS_CONTROL,
            f"{ops.DISK_TYPE}/write",
            f"{ops.DISK_TYPE}/read",
            ops.RESOURCE_GROUP_READ,
        ],
    },
    {
        "name": STORAGE_ACCOUNT_BACKUP_CONTRIBUTOR,
        "id": "e5e2a7ff-d759-4cd2-bb51-3152d37e2eb1",
        "description": "Lets you perform backup and restore operations using Azure Backup on the "
        "storage account.",
        "actions": [
            f"{ops.AUTHORIZATION}/locks/read",
            f"{ops.AUTHORIZATION}/locks/write",
            f"{ops.AUTHORIZATION}/locks/delete",
            f"{ops.FEATURES}/features/read",
            f"{ops.STORAGE_ACCOUNT_TYPE}/objectReplicationPolicies/delete",
            f"{ops.STORAGE_ACCOUNT_TYPE}/objectReplicationPolicies/read",
            ops.OBJECT_REPLICATION_WRITE,
            ops.RESTORE_POINT_MARKER_WRITE,
            ops.CONTAINER_READ,
            ops.CONTAINER_WRITE,
            f"{ops.BLOB_SERVICE_TYPE}/read",
            f"{ops.BLOB_SERVICE_TYPE}/write",
            ops.STORAGE_ACCOUNT_READ,
            f"{ops.STORAGE_ACCOUNT_TYPE}/restoreBlobRanges/action",
        ],
    },
    {
        "name": ELASTIC_SAN_SNAPSHOT_EXPORTER,
        "id": "1c4770c0-34f7-4110-a1ea-a5855cc7a939",
        "description": "Allows for creating and exporting Snapshot of Elastic San Volume",
        "actions": [
            ops.ELASTIC_SAN_READ,
            f"{ops.ELASTIC_SAN_TYPE}/*/read",
            ops.VOLUME_SNAPSHOT_WRITE,
            ops.VOLUME_SNAPSHOT_DELETE,
            ops.VOLUME_SNAPSHOT_GET_ACCESS,
            ops.VOLUME_GROUP_PRE_BACKUP,
            f"{ops.DISK_TYPE}/read",
            f"{ops.DISK_TYPE}/write",
            f"{ops.DISK_TYPE}/delete",
            ops.SNAPSHOT_READ,
            ops.SNAPSHOT_WRITE,
            ops.SNAPSHOT_DELETE,
        ],
    },
    {
        "name": ELASTIC_SAN_VOLUME_IMPORTER,
        "id": "90e8b822-3e73-47b5-868a-787dc80c008f",
        "description": "Allows for Importing Elastic San Volume",
        "actions": [
            ops.ELASTIC_SAN_READ,
            f"{ops.ELASTIC_SAN_TYPE}/*/read",
            ops.VOLUME_GROUP_PRE_RESTORE,
            ops.VOLUME_WRITE,
            ops.VOLUME_DELETE,
            f"{ops.DISK_TYPE}/read",
            f"{ops.DISK_TYPE}/beginGetAccess/action",
            f"{ops.DISK_TYPE}/endGetAccess/action",
            ops.SNAPSHOT_READ,
            f"{ops.DISK_SNAPSHOT_TYPE}/beginGetAccess/action",
            f"{ops.DISK_SNAPSHOT_TYPE}/endGetAccess/action",
        ],
    },
    {
        "name": POSTGRES_LTR_BACKUP_ROLE,
        "id": "c088a766-074b-43ba-90d4-1fb21feae531",
        "description": "Role to allow backup vault to access PostgreSQL Flexible Server "
        "Resource APIs for Long Term Retention Backup.",
        "actions": [
            ops.POSTGRES_LTR_PRE_BACKUP,
            ops.POSTGRES_START_LTR_BACKUP,
            f"{ops.POSTGRES_SERVER_TYPE}/ltrBackupOperations/read",
            f"{ops.POSTGRES}/locations/azureAsyncOperation/read",
            ops.SUBSCRIPTION_READ,
            ops.RESOURCE_GROUP_READ,
        ],
    },
    {
        "name": STORAGE_BLOB_DATA_CONTRIBUTOR,
        "id": _name_id(STORAGE_BLOB_DATA_CONTRIBUTOR),
        "description": "Read, write, and delete Azure Storage containers and blobs.",
        "actions": [
            ops.CONTAINER_DELETE,
            ops.CONTAINER_READ,
            ops.CONTAINER_WRITE,
            f"{ops.BLOB_SERVICE_TYPE}/generateUserDelegationKey/action",
        ],
        "data_actions": [
            ops.BLOB_DELETE,
            ops.BLOB_READ,
            ops.BLOB_WRITE,
            f"{ops.CONTAINER_TYPE}/blobs/move/action",
            f"{ops.CONTAINER_TYPE}/blobs/add/action",
        ],
    },
]


BUILT_IN_ROLES += [
    {
        "name": NETWORK_CONTRIBUTOR,
        "id": "4d97b98b-1d4f-4787-a291-c67834d212e7",
        "description": "Lets you manage networks, but not access to them.",
        "actions": [
            f"{ops.AUTHORIZATION}/*/read",
            f"{ops.NETWORK}/*",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
        ],
    },
]


# Strongroom's own training roles (no Azure counterpart): held at '/', granted explicitly.
BUILT_IN_ROLES += [
    {
        "name": LAB_TRAINEE,
        "id": _name_id(LAB_TRAINEE),
        "description": "Lets you start training labs in lab mode, check your work and reset your own sandboxes, "
        "and register applications of your own (their owner: no one else's).",
        "actions": [ops.APPLICATION_CREATE_AS_OWNER],
        "data_actions": [ops.LAB_START, ops.LAB_CHECK, ops.LAB_SANDBOX_RESET, ops.LAB_SECURITY_ROLE_PLAY],
    },
    {
        "name": LAB_INSTRUCTOR,
        "id": _name_id(LAB_INSTRUCTOR),
        "description": "Runs training in lab mode: plays lab personas, moves the lab clock, solves a trainee's "
        "lab step and resets a trainee's sandbox. Owner does not include it.",
        "data_actions": [f"{ops.STRONGROOM_LAB}/*"],
    },
]


# The roles a Backup vault's managed identity may need, as "Assign missing roles" grants them for backup
# and for restore (reference §2.2; `protection.readiness` and `protection.restores.readiness` assign only
# these). The seeded lab constrains the backup admin's delegation to them.
VAULT_IDENTITY_BACKUP_ROLES = (
    STORAGE_ACCOUNT_BACKUP_CONTRIBUTOR,
    ELASTIC_SAN_SNAPSHOT_EXPORTER,
    DISK_SNAPSHOT_CONTRIBUTOR,
    POSTGRES_LTR_BACKUP_ROLE,
    READER,
    DISK_BACKUP_READER,  # Azure Disk: on the source disk
)
VAULT_IDENTITY_RESTORE_ROLES = (
    STORAGE_ACCOUNT_BACKUP_CONTRIBUTOR,
    ELASTIC_SAN_VOLUME_IMPORTER,
    READER,
    STORAGE_BLOB_DATA_CONTRIBUTOR,
    CONTRIBUTOR,  # restoring a PostgreSQL database into the target server (decision 2)
    DISK_RESTORE_OPERATOR,  # Azure Disk: on the target resource group
    DISK_SNAPSHOT_CONTRIBUTOR,  # Azure Disk: the snapshot resource group's access must still be there
)
VAULT_IDENTITY_ROLES = tuple(dict.fromkeys(VAULT_IDENTITY_BACKUP_ROLES + VAULT_IDENTITY_RESTORE_ROLES))

# Azure's "privileged administrator roles": assigning one raises "Privileged role assigned", and the
# recommended delegation condition lets a delegate assign every role but these.
PRIVILEGED_ADMINISTRATOR_ROLES = (OWNER, USER_ACCESS_ADMINISTRATOR, RBAC_ADMINISTRATOR)

# The roles whose assignments may carry a delegation condition ("constrain roles").
DELEGATION_ROLES = (RBAC_ADMINISTRATOR, USER_ACCESS_ADMINISTRATOR)

_IDS = {spec["name"]: spec["id"] for spec in BUILT_IN_ROLES}


def role_id(name: str) -> str:
    """The id of a built-in role, from the data above (no database)."""
    return _IDS[name]


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
