"""Restore rights of the vault's managed identity (reference §2.2 "Restore" column, decision 2).

| Restore | Role | Where |
|---|---|---|
| Azure Data Lake Storage | Storage Account Backup Contributor | the target storage account |
| Elastic SAN | Elastic SAN Volume Importer | the target Elastic SAN instance |
|  | Reader | the snapshot resource group |
| PostgreSQL as files | Storage Blob Data Contributor | the target storage account |
| PostgreSQL as a database | Contributor | the target server (decision 2) |
| Azure Disk | Disk Restore Operator | the target resource group |
|  | Disk Snapshot Contributor | the snapshot resource group (its access must still be there) |

This module only says which roles a restore target needs; the check and "Assign missing roles" are
backup readiness's own (`protection.readiness`): nothing looks for role *names*, `authorize` is asked
for the actions each role stands for, so an inherited or broader assignment counts and a revoked or
expired one does not; missing roles are assigned through `security.services.assign_role` as the
signed-in user, at the chosen scope.
"""

from __future__ import annotations

from protection import readiness as shared
from protection.readiness import (  # the shared vocabulary: a restore's readiness speaks it too
    IDENTITY_OFF, INSUFFICIENT_PERMISSION, ROLE_ASSIGNMENT_NOT_DONE, SCOPE_LEVELS, SCOPE_RESOURCE,
    SCOPE_RESOURCE_GROUP, SCOPE_SUBSCRIPTION, SUCCESS, Readiness, RoleNeed, missing,
)
from protection.restores import layout, targets
from security import roles, scopes
from security import operations as ops

__all__ = [
    "IDENTITY_OFF", "INSUFFICIENT_PERMISSION", "ROLE_ASSIGNMENT_NOT_DONE", "SCOPE_LEVELS", "SCOPE_RESOURCE",
    "SCOPE_RESOURCE_GROUP", "SCOPE_SUBSCRIPTION", "SUCCESS", "Readiness", "RoleNeed", "assign_missing", "check",
    "missing", "needs_for",
]

# The actions that stand for each role at its check scope.
RESTORE_ROLE_ACTIONS = {
    roles.STORAGE_ACCOUNT_BACKUP_CONTRIBUTOR: (ops.OBJECT_REPLICATION_WRITE, ops.CONTAINER_WRITE, ops.CONTAINER_READ),
    roles.ELASTIC_SAN_VOLUME_IMPORTER: (ops.VOLUME_GROUP_PRE_RESTORE, ops.VOLUME_WRITE, ops.VOLUME_DELETE),
    roles.READER: (ops.SNAPSHOT_READ, ops.RESOURCE_GROUP_READ),
    roles.STORAGE_BLOB_DATA_CONTRIBUTOR: (ops.BLOB_WRITE,),  # a data action
    roles.CONTRIBUTOR: (ops.POSTGRES_DATABASE_WRITE, ops.POSTGRES_DATABASE_DELETE),
    roles.DISK_RESTORE_OPERATOR: (ops.DISK_WRITE, ops.DISK_READ),
    roles.DISK_SNAPSHOT_CONTRIBUTOR: (ops.SNAPSHOT_READ, ops.SNAPSHOT_BEGIN_GET_ACCESS),
}


def _restore_need(role: str, check_scope: str, resource_scope: str, where: str) -> RoleNeed:
    return shared.vault_identity_need(role, check_scope, resource_scope, where, RESTORE_ROLE_ACTIONS[role])


def _snapshot_group_needs(point, role: str) -> list[RoleNeed]:
    """``role`` on the point's snapshot resource group, where it has one."""
    rg = scopes.normalize(layout.snapshot_group_id(point))
    if not rg or rg == scopes.ROOT:
        return []
    name = rg.rstrip("/").rsplit("/", 1)[-1]
    return [_restore_need(role, rg, rg, f"snapshot resource group {name}")]


def needs_for(point, target, resolved) -> list[RoleNeed]:
    """The roles the vault identity needs for restoring ``point`` to ``target`` (``resolved`` holds
    the target rows `validation.resolve` found)."""
    if isinstance(target, targets.AdlsTarget):
        account = resolved["account"]
        return [_restore_need(roles.STORAGE_ACCOUNT_BACKUP_CONTRIBUTOR, account.resource_id, account.resource_id,
                              f"target storage account {account.name}")]
    if isinstance(target, targets.VolumeTarget):
        group = resolved["volume_group"]
        san = group.elastic_san
        return [_restore_need(roles.ELASTIC_SAN_VOLUME_IMPORTER, group.resource_id, san.resource_id,
                              f"target Elastic SAN {san.name}"), *_snapshot_group_needs(point, roles.READER)]
    if isinstance(target, targets.DiskTarget):
        group = resolved["resource_group"]
        return [_restore_need(roles.DISK_RESTORE_OPERATOR, group.resource_id, group.resource_id,
                              f"target resource group {group.name}"),
                *_snapshot_group_needs(point, roles.DISK_SNAPSHOT_CONTRIBUTOR)]
    if isinstance(target, targets.PgFilesTarget):
        container = resolved["container"]
        account = container.account
        return [_restore_need(roles.STORAGE_BLOB_DATA_CONTRIBUTOR, container.resource_id, account.resource_id,
                              f"target storage account {account.name}")]
    if isinstance(target, targets.PgDatabaseTarget):
        server = resolved["server"]
        return [_restore_need(roles.CONTRIBUTOR, server.resource_id, server.resource_id, f"target server {server.name}")]
    raise ValueError(f"Unknown target {target!r}")


def check(user, vault, needs) -> Readiness:
    return shared.assess(user, vault, needs, subject="this restore", then="validate again")


def assign_missing(principal, vault, needs, level: str) -> list:
    """Assign the vault identity the restore roles it lacks, at ``level``, as ``principal``."""
    return shared.assign_missing(principal, vault, needs, level, purpose="restore")
