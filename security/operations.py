"""The operations catalogue: every Azure action string Strongroom checks, spelled once.

Each entry says what the activity log calls it, whether it is a data action (checked against a role's
``dataActions``), and whether a Resource Guard may protect it (its request type, whether it is mandatory,
how the Protected operations tab shows it). Services, guards, MUA, alerts and the activity log import the
names below; nothing else spells an action out. Resource types (the ``type`` of a resource id) are here
too, since actions are built on them.

The constants are plain strings (the action itself), so ``guarded(principal, VAULT_WRITE, scope)`` reads as
it always did; ``lookup(action)`` gives the whole entry.
"""

from __future__ import annotations

from dataclasses import dataclass

DATA_PROTECTION = "Microsoft.DataProtection"
AUTHORIZATION = "Microsoft.Authorization"
STRONGROOM_LAB = "Strongroom.Lab"
STRONGROOM_IDENTITY = "Strongroom.Identity"
DIRECTORY = "Microsoft.Directory"


@dataclass(frozen=True)
class Operation:
    action: str
    name: str = ""  # the activity log's operation name ("" = derived from the action)
    data_action: bool = False
    # Resource Guard (multi-user authorization, reference §1.8): "" = a guard cannot protect it.
    guard_request_type: str = ""
    guard_label: str = ""  # the Protected operations tab's friendly name
    guard_mandatory: bool = False  # cannot be excluded from a guard
    guard_by_action: bool = True  # True: protected whenever the action runs; False: when a service names it
    guard_default: bool = True  # ticked on a new guard's Protected operations tab
    guard_description: str = ""

    @property
    def protectable(self) -> bool:
        return bool(self.guard_request_type)


_CATALOGUE: dict[str, Operation] = {}


def _op(action: str, name: str = "", **fields) -> str:
    key = action.lower()
    if key in _CATALOGUE:
        raise ValueError(f"{action} is in the catalogue twice")
    _CATALOGUE[key] = Operation(action, name, **fields)
    return action


def lookup(action: str) -> Operation | None:
    return _CATALOGUE.get(action.lower())


def display_name(action: str) -> str:
    entry = lookup(action)
    return entry.name if entry else ""


def all_operations() -> list[Operation]:
    return list(_CATALOGUE.values())


def guard_protectable() -> list[Operation]:
    """The operations a Resource Guard may protect, in the order the portal lists them."""
    return [o for o in _CATALOGUE.values() if o.protectable]


# --- resource types -----------------------------------------------------------------------------------
COMPUTE = "Microsoft.Compute"
POSTGRES = "Microsoft.DBforPostgreSQL"
SUBSCRIPTION_PROVIDER = "Microsoft.Subscription"
SUBSCRIPTION_TYPE = "Microsoft.Resources/subscriptions"
RESOURCE_GROUP_TYPE = "Microsoft.Resources/resourceGroups"
VAULT_TYPE = f"{DATA_PROTECTION}/backupVaults"
POLICY_TYPE = f"{VAULT_TYPE}/backupPolicies"
INSTANCE_TYPE = f"{VAULT_TYPE}/backupInstances"
RESOURCE_GUARD_TYPE = f"{DATA_PROTECTION}/resourceGuards"
STORAGE_ACCOUNT_TYPE = "Microsoft.Storage/storageAccounts"
BLOB_SERVICE_TYPE = f"{STORAGE_ACCOUNT_TYPE}/blobServices"
CONTAINER_TYPE = f"{BLOB_SERVICE_TYPE}/containers"
ADLS_DATASOURCE_TYPE = f"{STORAGE_ACCOUNT_TYPE}/adlsBlobServices"
ELASTIC_SAN_TYPE = "Microsoft.ElasticSan/elasticSans"
VOLUME_GROUP_TYPE = f"{ELASTIC_SAN_TYPE}/volumeGroups"
VOLUME_TYPE = f"{VOLUME_GROUP_TYPE}/volumes"
VOLUME_SNAPSHOT_TYPE = f"{VOLUME_GROUP_TYPE}/snapshots"
DISK_TYPE = f"{COMPUTE}/disks"
DISK_SNAPSHOT_TYPE = f"{COMPUTE}/snapshots"
POSTGRES_SERVER_TYPE = f"{POSTGRES}/flexibleServers"
POSTGRES_DATABASE_TYPE = f"{POSTGRES_SERVER_TYPE}/databases"
NETWORK = "Microsoft.Network"
VIRTUAL_NETWORK_TYPE = f"{NETWORK}/virtualNetworks"
SUBNET_TYPE = f"{VIRTUAL_NETWORK_TYPE}/subnets"
PRIVATE_ENDPOINT_TYPE = f"{NETWORK}/privateEndpoints"
PRIVATE_DNS_ZONE_TYPE = f"{NETWORK}/privateDnsZones"
DNS_A_RECORD_TYPE = f"{PRIVATE_DNS_ZONE_TYPE}/A"
VIRTUAL_NETWORK_LINK_TYPE = f"{PRIVATE_DNS_ZONE_TYPE}/virtualNetworkLinks"
PRIVATE_ENDPOINT_CONNECTION_TYPE = f"{VAULT_TYPE}/privateEndpointConnections"
# Named only by the built-in roles' patterns: no Strongroom operation checks them.
DEPLOYMENT_TYPE = "Microsoft.Resources/deployments"
FEATURES = "Microsoft.Features"
SUPPORT = "Microsoft.Support"

# --- subscriptions and resource groups ----------------------------------------------------------------
SUBSCRIPTION_READ = _op(f"{SUBSCRIPTION_TYPE}/read")
SUBSCRIPTION_WRITE = _op(f"{SUBSCRIPTION_PROVIDER}/aliases/write", "Create subscription")
RESOURCE_GROUP_READ = _op("Microsoft.Resources/subscriptions/resourceGroups/read")
RESOURCE_GROUP_WRITE = _op("Microsoft.Resources/subscriptions/resourceGroups/write",
                           "Create or update resource group")
RESOURCE_GROUP_DELETE = _op("Microsoft.Resources/subscriptions/resourceGroups/delete", "Delete resource group")

# --- access control (RBAC and PIM's access requests) --------------------------------------------------
ROLE_ASSIGNMENT_READ = _op(f"{AUTHORIZATION}/roleAssignments/read")
ROLE_ASSIGNMENT_WRITE = _op(f"{AUTHORIZATION}/roleAssignments/write", "Create role assignment")
ROLE_ASSIGNMENT_DELETE = _op(f"{AUTHORIZATION}/roleAssignments/delete", "Delete role assignment")
ROLE_DEFINITION_READ = _op(f"{AUTHORIZATION}/roleDefinitions/read")
REQUEST_READ = _op(f"{AUTHORIZATION}/roleAssignmentScheduleRequests/read")
REQUEST_ACCESS = _op(f"{AUTHORIZATION}/roleAssignmentScheduleRequests/write", "Request Resource Guard access")
CANCEL_REQUEST = _op(f"{AUTHORIZATION}/roleAssignmentScheduleRequests/cancel/action", "Cancel access request")
APPROVE_REQUEST = _op(f"{AUTHORIZATION}/roleAssignmentApprovals/approve/action", "Approve access request")
REJECT_REQUEST = _op(f"{AUTHORIZATION}/roleAssignmentApprovals/reject/action", "Reject access request")
EXPIRE_ACCESS = _op(f"{AUTHORIZATION}/roleAssignmentSchedules/expire/action", "Resource Guard access expired")

# --- sign-in (security.signin) -------------------------------------------------------------------------
# Sign-ins and password changes are Strongroom's own identity events: recorded in the activity log, never
# authorized by a role (anyone may try to sign in, and change their own password). Sign-in lockouts are
# managed through RBAC at the root ("/"), under Microsoft.Authorization so that Owner's "*" (and User Access
# Administrator's "Microsoft.Authorization/*") holds the unlock and Contributor's notActions exclude it.
SIGN_IN = _op(f"{STRONGROOM_IDENTITY}/signIns/action", "Sign in")
PASSWORD_CHANGE = _op(f"{STRONGROOM_IDENTITY}/users/changePassword/action", "Change password")
SIGN_IN_LOCKOUT_READ = _op(f"{AUTHORIZATION}/signInLockouts/read")
SIGN_IN_LOCKOUT_DELETE = _op(f"{AUTHORIZATION}/signInLockouts/delete", "Unlock sign-in")

# --- app registrations and their service principals (security.applications) --------------------------------
# Entra ID's directory actions, checked at the root ("/"): Owner's "*" holds them, Reader's "*/read" the read.
# Contributor's notActions exclude the directory's writes (create, delete, update): in Azure, app registrations
# are Entra objects that no Azure RBAC role manages, so a Contributor cannot register one.
# A service principal's token request is logged like a sign-in, never authorized by a role.
APPLICATION_READ = _op(f"{DIRECTORY}/applications/read")
APPLICATION_CREATE = _op(f"{DIRECTORY}/applications/create", "Add application")
APPLICATION_DELETE = _op(f"{DIRECTORY}/applications/delete", "Delete application")
APPLICATION_CREDENTIALS_UPDATE = _op(f"{DIRECTORY}/applications/credentials/update",
                                     "Update application – Certificates and secrets management")
# Entra ID's "Application Developer" action: register an application and become its owner. An app's owner may
# read it, manage its secrets and delete it without a directory role (`security.guards.rbac_guard`), as in Entra
# ID, while they may still register applications; others' apps stay out of their sight.
APPLICATION_CREATE_AS_OWNER = _op(f"{DIRECTORY}/applications/createAsOwner", "Add application")
APPLICATION_OWNER_ACTIONS = (APPLICATION_READ, APPLICATION_CREDENTIALS_UPDATE, APPLICATION_DELETE)
SERVICE_PRINCIPAL_SIGN_IN = _op(f"{STRONGROOM_IDENTITY}/servicePrincipalSignIns/action", "Service principal sign-in")

# --- alerts and the lab -------------------------------------------------------------------------------
ALERT_READ = _op("Microsoft.AlertsManagement/alerts/read")
ALERT_CHANGE_STATE = _op("Microsoft.AlertsManagement/alerts/changestate/action", "Change alert state")
# The activity log's hash chain (security.chain): checking it on request (the hourly check is the system's).
ACTIVITY_LOG_VERIFY = _op("Strongroom.ActivityLog/verify/action", "Verify activity log chain")
# The lab's controls and the training labs: data actions, so that Owner's "*" does not include them (nor
# does superuser status): a trainee's own actions come with role "Lab Trainee", the instructor's (switching
# persona, moving the lab clock, acting on another trainee's lab) with role "Lab Instructor", each granted
# explicitly. Services check them with ``change={"data_action": True}``.
LAB_CLOCK_WRITE = _op(f"{STRONGROOM_LAB}/clock/write", "Move lab clock", data_action=True)
PERSONA_ASSUME = _op(f"{STRONGROOM_LAB}/personas/assume/action", "Switch lab persona", data_action=True)
WORKER_CHECK = _op(f"{STRONGROOM_LAB}/workers/check/action", "Check background workers", data_action=True)
LAB_START = _op(f"{STRONGROOM_LAB}/labs/start/action", "Start lab", data_action=True)
LAB_CHECK = _op(f"{STRONGROOM_LAB}/labs/check/action", "Check lab work", data_action=True)
LAB_SANDBOX_RESET = _op(f"{STRONGROOM_LAB}/sandboxes/reset/action", "Reset lab sandbox", data_action=True)
LAB_SECURITY_ROLE_PLAY = _op(f"{STRONGROOM_LAB}/sandboxes/securityAdmin/action",
                             "Role-play the sandbox's security admin", data_action=True)
LAB_SOLVE_FOR_TRAINEE = _op(f"{STRONGROOM_LAB}/trainees/solve/action", "Solve a trainee's lab step", data_action=True)
LAB_CLASS_READ = _op(f"{STRONGROOM_LAB}/classes/read", data_action=True)
LAB_CLASS_WRITE = _op(f"{STRONGROOM_LAB}/classes/write", "Create lab class", data_action=True)
LAB_CLASS_CLOSE = _op(f"{STRONGROOM_LAB}/classes/close/action", "Close lab class", data_action=True)
LAB_RESET_FOR_TRAINEE = _op(f"{STRONGROOM_LAB}/trainees/reset/action", "Reset a trainee's sandbox", data_action=True)

# --- Resource Guards ----------------------------------------------------------------------------------
GUARD_READ = _op(f"{RESOURCE_GUARD_TYPE}/read")
GUARD_WRITE = _op(f"{RESOURCE_GUARD_TYPE}/write", "Create or Update Resource Guard")
GUARD_DELETE = _op(f"{RESOURCE_GUARD_TYPE}/delete", "Delete Resource Guard")
PROXY_READ = _op(f"{VAULT_TYPE}/backupResourceGuardProxies/read")
PROXY_WRITE = _op(f"{VAULT_TYPE}/backupResourceGuardProxies/write", "Link Resource Guard (enable MUA)")


def guard_request_action(request_type: str) -> str:
    """The action a time-bound grant on a guard's request collection gives (`.../<type>/default/action`)."""
    return f"{RESOURCE_GUARD_TYPE}/{request_type}/default/action"


# --- backup vaults ------------------------------------------------------------------------------------
VAULT_READ = _op(f"{VAULT_TYPE}/read")
VAULT_WRITE = _op(f"{VAULT_TYPE}/write", "Create or Update Backup Vault")
VAULT_DELETE = _op(f"{VAULT_TYPE}/delete", "Delete Backup Vault")
CHECK_NAME_AVAILABILITY = _op(f"{DATA_PROTECTION}/locations/checkNameAvailability/action",
                              "Check Backup vault name availability")
VALIDATE_FOR_BACKUP = _op(f"{VAULT_TYPE}/validateForBackup/action", "Validate for backup")

# Critical operations a Resource Guard protects (reference §1.8), in the order the portal lists them.
# "#..." marks a vault write that a service names as critical (Azure's vaultCriticalOperation).
REDUCE_SOFT_DELETE = _op(
    f"{VAULT_WRITE}#reduceSoftDeleteSecurity", "Disable soft delete",
    guard_request_type="disableSoftDeleteRequests", guard_label="Disable soft delete", guard_mandatory=True,
    guard_by_action=False, guard_description="Turning soft delete off, or shortening its retention.")
PROXY_DELETE = _op(
    f"{VAULT_TYPE}/backupResourceGuardProxies/delete", "Remove MUA protection",
    guard_request_type="deleteResourceGuardProxyRequests", guard_label="Remove MUA protection",
    guard_mandatory=True, guard_description="Unlinking the Resource Guard from a vault.")
INSTANCE_DELETE = _op(
    f"{INSTANCE_TYPE}/delete", "Delete backup instance (delete backup data)",
    guard_request_type="deleteBackupInstanceRequests", guard_label="Delete backup instance",
    guard_description="Stop backup and delete backup data.")
STOP_PROTECTION = _op(
    f"{INSTANCE_TYPE}/stopProtection/action", "Stop protection (retain forever)",
    guard_request_type="deleteProtectedItemRequests", guard_label="Stop backup and retain forever",
    guard_description="Stops backups and retention; the data is kept forever.")
SUSPEND_BACKUPS = _op(
    f"{INSTANCE_TYPE}/suspendBackups/action", "Stop backup (retain as per policy)",
    guard_request_type="deleteProtectedItemRequests", guard_label="Stop backup and retain as per policy",
    guard_description="Stops backups; retention goes on as per the policy.")
REDUCE_IMMUTABILITY = _op(
    f"{VAULT_WRITE}#reduceImmutabilityState", "Disable immutability",
    guard_request_type="disableSoftDeleteRequests", guard_label="Disable immutability", guard_by_action=False,
    guard_description="Turning an enabled (not locked) immutable vault off.")
RESTORE = _op(
    f"{INSTANCE_TYPE}/restore/action", "Restore",
    guard_request_type="updateProtectedItemRequests", guard_label="Restore", guard_default=False,
    guard_description="Restoring a recovery point.")
INSTANCE_WRITE = _op(
    f"{INSTANCE_TYPE}/write", "Create or Update Backup Instance",
    guard_request_type="updateProtectionPolicyRequests", guard_label="Change policy", guard_by_action=False,
    guard_default=False, guard_description="Moving a backup instance to another policy.")
MODIFY_ENCRYPTION = _op(
    f"{VAULT_WRITE}#modifyEncryptionSettings", "Modify encryption settings",
    guard_request_type="updateProtectedItemRequests", guard_label="Modify encryption settings",
    guard_by_action=False, guard_default=False,
    guard_description="Changing the vault's encryption key settings.")
CHANGE_POLICY = INSTANCE_WRITE  # MUA's name for it: changing an instance's policy is an instance write
REMOVE_MUA = PROXY_DELETE

# --- backup policies, instances, jobs, recovery points --------------------------------------------------
POLICY_READ = _op(f"{POLICY_TYPE}/read")
POLICY_WRITE = _op(f"{POLICY_TYPE}/write", "Create or Update Backup Policy")
POLICY_DELETE = _op(f"{POLICY_TYPE}/delete", "Delete Backup Policy")
INSTANCE_READ = _op(f"{INSTANCE_TYPE}/read")
BACKUP_ACTION = _op(f"{INSTANCE_TYPE}/backup/action", "Backup now")
RESUME_PROTECTION = _op(f"{INSTANCE_TYPE}/resumeProtection/action", "Resume protection")
RESUME_BACKUPS = _op(f"{INSTANCE_TYPE}/resumeBackups/action", "Resume backups")
VALIDATE_RESTORE = _op(f"{INSTANCE_TYPE}/validateRestore/action", "Validate restore")
RECOVERY_POINT_READ = _op(f"{INSTANCE_TYPE}/recoveryPoints/read")
RECOVERY_POINT_DELETE = _op(f"{INSTANCE_TYPE}/recoveryPoints/delete", "Delete recovery point")
# archive tier (issue 21): Move to archive, and removing a rehydrated copy at the end of its duration
RECOVERY_POINT_MOVE = _op(f"{INSTANCE_TYPE}/recoveryPoints/move/action", "Move recovery point to archive")
JOB_READ = _op(f"{VAULT_TYPE}/backupJobs/read")
JOB_CANCEL = _op(f"{VAULT_TYPE}/backupJobs/cancel/action", "Cancel backup job")
DELETED_INSTANCE_READ = _op(f"{VAULT_TYPE}/deletedBackupInstances/read")
SOFT_DELETE_COMPLETE = _op(f"{VAULT_TYPE}/deletedBackupInstances/write", "Soft delete backup instance")
UNDELETE = _op(f"{VAULT_TYPE}/deletedBackupInstances/undelete/action", "Undelete backup instance")
PURGE = _op(f"{VAULT_TYPE}/deletedBackupInstances/purge/action", "Purge backup data")

# --- storage accounts and blobs ---------------------------------------------------------------------------
STORAGE_ACCOUNT_READ = _op(f"{STORAGE_ACCOUNT_TYPE}/read")
STORAGE_ACCOUNT_WRITE = _op(f"{STORAGE_ACCOUNT_TYPE}/write", "Create/Update Storage Account")
STORAGE_ACCOUNT_DELETE = _op(f"{STORAGE_ACCOUNT_TYPE}/delete", "Delete Storage Account")
STORAGE_ACCOUNT_LIST_KEYS = _op(f"{STORAGE_ACCOUNT_TYPE}/listKeys/action", "List Storage Account Keys")
CONTAINER_READ = _op(f"{CONTAINER_TYPE}/read")
CONTAINER_WRITE = _op(f"{CONTAINER_TYPE}/write", "Put blob container")
CONTAINER_DELETE = _op(f"{CONTAINER_TYPE}/delete", "Delete blob container")
BLOB_READ = _op(f"{CONTAINER_TYPE}/blobs/read", "Read blob", data_action=True)
BLOB_WRITE = _op(f"{CONTAINER_TYPE}/blobs/write", "Write blob", data_action=True)
BLOB_DELETE = _op(f"{CONTAINER_TYPE}/blobs/delete", "Delete blob", data_action=True)
OBJECT_REPLICATION_WRITE = _op(f"{STORAGE_ACCOUNT_TYPE}/objectReplicationPolicies/write")
RESTORE_POINT_MARKER_WRITE = _op(f"{STORAGE_ACCOUNT_TYPE}/objectReplicationPolicies/restorePointMarkers/write")

# --- Elastic SAN --------------------------------------------------------------------------------------------
ELASTIC_SAN_READ = _op(f"{ELASTIC_SAN_TYPE}/read")
ELASTIC_SAN_WRITE = _op(f"{ELASTIC_SAN_TYPE}/write", "Create/Update Elastic SAN")
ELASTIC_SAN_DELETE = _op(f"{ELASTIC_SAN_TYPE}/delete", "Delete Elastic SAN")
VOLUME_GROUP_READ = _op(f"{VOLUME_GROUP_TYPE}/read")
VOLUME_GROUP_WRITE = _op(f"{VOLUME_GROUP_TYPE}/write", "Create/Update Volume Group")
VOLUME_GROUP_DELETE = _op(f"{VOLUME_GROUP_TYPE}/delete", "Delete Volume Group")
VOLUME_GROUP_PRE_BACKUP = _op(f"{VOLUME_GROUP_TYPE}/preBackup/action")
VOLUME_GROUP_PRE_RESTORE = _op(f"{VOLUME_GROUP_TYPE}/preRestore/action")
VOLUME_READ = _op(f"{VOLUME_TYPE}/read", "Read Volume")
VOLUME_WRITE = _op(f"{VOLUME_TYPE}/write", "Create/Update Volume")
VOLUME_DELETE = _op(f"{VOLUME_TYPE}/delete", "Delete Volume")
VOLUME_SNAPSHOT_READ = _op(f"{VOLUME_SNAPSHOT_TYPE}/read")
VOLUME_SNAPSHOT_WRITE = _op(f"{VOLUME_SNAPSHOT_TYPE}/write", "Create/Update Volume Snapshot")
VOLUME_SNAPSHOT_DELETE = _op(f"{VOLUME_SNAPSHOT_TYPE}/delete", "Delete Volume Snapshot")
VOLUME_SNAPSHOT_GET_ACCESS = _op(f"{VOLUME_SNAPSHOT_TYPE}/beginGetAccess/action")
SNAPSHOT_READ = _op(f"{DISK_SNAPSHOT_TYPE}/read")
SNAPSHOT_WRITE = _op(f"{DISK_SNAPSHOT_TYPE}/write", "Create or update snapshot")
SNAPSHOT_DELETE = _op(f"{DISK_SNAPSHOT_TYPE}/delete", "Delete snapshot")

# --- Azure managed disks ------------------------------------------------------------------------------------
DISK_READ = _op(f"{DISK_TYPE}/read", "Get Disk")
DISK_WRITE = _op(f"{DISK_TYPE}/write", "Create or Update Disk")
DISK_DELETE = _op(f"{DISK_TYPE}/delete", "Delete Disk")
DISK_BEGIN_GET_ACCESS = _op(f"{DISK_TYPE}/beginGetAccess/action", "Get Disk SAS URI")
SNAPSHOT_BEGIN_GET_ACCESS = _op(f"{DISK_SNAPSHOT_TYPE}/beginGetAccess/action", "Get Snapshot SAS URI")
SNAPSHOT_END_GET_ACCESS = _op(f"{DISK_SNAPSHOT_TYPE}/endGetAccess/action", "Revoke Snapshot SAS URI")

# --- Azure Database for PostgreSQL flexible servers --------------------------------------------------------
POSTGRES_READ = _op(f"{POSTGRES_SERVER_TYPE}/read")
POSTGRES_WRITE = _op(f"{POSTGRES_SERVER_TYPE}/write", "Create/Update PostgreSQL Server")
POSTGRES_DELETE = _op(f"{POSTGRES_SERVER_TYPE}/delete", "Delete PostgreSQL Server")
POSTGRES_LTR_PRE_BACKUP = _op(f"{POSTGRES_SERVER_TYPE}/ltrPreBackup/action")
POSTGRES_START_LTR_BACKUP = _op(f"{POSTGRES_SERVER_TYPE}/startLtrBackup/action")
POSTGRES_DATABASE_READ = _op(f"{POSTGRES_DATABASE_TYPE}/read", "List PostgreSQL Databases")
POSTGRES_DATABASE_WRITE = _op(f"{POSTGRES_DATABASE_TYPE}/write", "Create/Update PostgreSQL Database")
POSTGRES_DATABASE_DELETE = _op(f"{POSTGRES_DATABASE_TYPE}/delete", "Delete PostgreSQL Database")
POSTGRES_USE_ADMIN_LOGIN = POSTGRES_WRITE  # reading the server admin's password is a server write in Azure


# --- networking (issue 19): virtual networks, private endpoints, private DNS, the vault's network access --------
VNET_READ = _op(f"{VIRTUAL_NETWORK_TYPE}/read")
VNET_WRITE = _op(f"{VIRTUAL_NETWORK_TYPE}/write", "Create or Update Virtual Network")
VNET_DELETE = _op(f"{VIRTUAL_NETWORK_TYPE}/delete", "Delete Virtual Network")
# Linking a private DNS zone to a VNet joins the VNet (its resolver answers from the zone from then on).
VNET_JOIN = _op(f"{VIRTUAL_NETWORK_TYPE}/join/action", "Join Virtual Network")
SUBNET_READ = _op(f"{SUBNET_TYPE}/read")
SUBNET_WRITE = _op(f"{SUBNET_TYPE}/write", "Create or Update Subnet")
SUBNET_DELETE = _op(f"{SUBNET_TYPE}/delete", "Delete Subnet")
# Putting something in a subnet (a private endpoint, a datasource's network setting) joins it.
SUBNET_JOIN = _op(f"{SUBNET_TYPE}/join/action", "Join Subnet")
PRIVATE_ENDPOINT_READ = _op(f"{PRIVATE_ENDPOINT_TYPE}/read")
PRIVATE_ENDPOINT_WRITE = _op(f"{PRIVATE_ENDPOINT_TYPE}/write", "Create or Update Private Endpoint")
PRIVATE_ENDPOINT_DELETE = _op(f"{PRIVATE_ENDPOINT_TYPE}/delete", "Delete Private Endpoint")
DNS_ZONE_READ = _op(f"{PRIVATE_DNS_ZONE_TYPE}/read")
DNS_ZONE_WRITE = _op(f"{PRIVATE_DNS_ZONE_TYPE}/write", "Create or Update Private DNS Zone")
DNS_ZONE_DELETE = _op(f"{PRIVATE_DNS_ZONE_TYPE}/delete", "Delete Private DNS Zone")
DNS_RECORD_READ = _op(f"{DNS_A_RECORD_TYPE}/read")
DNS_RECORD_WRITE = _op(f"{DNS_A_RECORD_TYPE}/write", "Create or Update Private DNS Zone A Record")
DNS_RECORD_DELETE = _op(f"{DNS_A_RECORD_TYPE}/delete", "Delete Private DNS Zone A Record")
DNS_LINK_READ = _op(f"{VIRTUAL_NETWORK_LINK_TYPE}/read")
DNS_LINK_WRITE = _op(f"{VIRTUAL_NETWORK_LINK_TYPE}/write", "Create or Update Virtual Network Link")
DNS_LINK_DELETE = _op(f"{VIRTUAL_NETWORK_LINK_TYPE}/delete", "Delete Virtual Network Link")
# The vault's side of a private endpoint: its connection, and the vault owner's approval (Owner, Contributor).
PE_CONNECTION_READ = _op(f"{PRIVATE_ENDPOINT_CONNECTION_TYPE}/read")
PE_CONNECTION_WRITE = _op(f"{PRIVATE_ENDPOINT_CONNECTION_TYPE}/write", "Update Private Endpoint Connection")
PE_CONNECTION_DELETE = _op(f"{PRIVATE_ENDPOINT_CONNECTION_TYPE}/delete", "Remove Private Endpoint Connection")
PE_CONNECTION_APPROVAL = _op(f"{VAULT_TYPE}/privateEndpointConnectionsApproval/action",
                             "Approve or Reject Private Endpoint Connection")
# Strongroom's own action for the Networking blade's Public access tab (Azure folds it into the vault's write).
VAULT_PUBLIC_ACCESS_WRITE = _op(f"{VAULT_TYPE}/publicNetworkAccess/write", "Update Backup Vault Public Network Access")
