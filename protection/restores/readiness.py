"""Restore rights of the vault's managed identity (reference §2.2 "Restore" column, decision 2).

| Restore | Role | Where |
|---|---|---|
| Azure Data Lake Storage | Storage Account Backup Contributor | the target storage account |
| Elastic SAN | Elastic SAN Volume Importer | the target Elastic SAN instance |
|  | Reader | the snapshot resource group |
| PostgreSQL as files | Storage Blob Data Contributor | the target storage account |
| PostgreSQL as a database | Contributor | the target server (decision 2) |

As for backup readiness (`protection.readiness`), nothing looks for role *names*: `authorize` is asked
for the actions each role stands for, so an inherited or broader assignment counts and a revoked or
expired one does not. "Assign missing roles" assigns the named built-in role through
`security.services.assign_role` as the signed-in user, at the chosen scope.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction

from protection import readiness as backup_readiness
from security import clock, roles, scopes
from security import services as security_services
from security.guards import evaluate
from security.models import RoleAssignment, RoleDefinition
from security.rbac import authorize

ROLE_ASSIGNMENT_WRITE = backup_readiness.ROLE_ASSIGNMENT_WRITE
SUCCESS = backup_readiness.SUCCESS
ROLE_ASSIGNMENT_NOT_DONE = backup_readiness.ROLE_ASSIGNMENT_NOT_DONE
INSUFFICIENT_PERMISSION = backup_readiness.INSUFFICIENT_PERMISSION
IDENTITY_OFF = backup_readiness.IDENTITY_OFF
SCOPE_RESOURCE = backup_readiness.SCOPE_RESOURCE
SCOPE_RESOURCE_GROUP = backup_readiness.SCOPE_RESOURCE_GROUP
SCOPE_SUBSCRIPTION = backup_readiness.SCOPE_SUBSCRIPTION
SCOPE_LEVELS = backup_readiness.SCOPE_LEVELS

BLOB_WRITE = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write"

# (action, is a data action) pairs that stand for each role at its check scope.
ROLE_ACTIONS = {
    roles.STORAGE_ACCOUNT_BACKUP_CONTRIBUTOR: (
        ("Microsoft.Storage/storageAccounts/objectReplicationPolicies/write", False),
        ("Microsoft.Storage/storageAccounts/blobServices/containers/write", False),
        ("Microsoft.Storage/storageAccounts/blobServices/containers/read", False),
    ),
    roles.ELASTIC_SAN_VOLUME_IMPORTER: (
        ("Microsoft.ElasticSan/elasticSans/volumeGroups/preRestore/action", False),
        ("Microsoft.ElasticSan/elasticSans/volumeGroups/volumes/write", False),
        ("Microsoft.ElasticSan/elasticSans/volumeGroups/volumes/delete", False),
    ),
    roles.READER: (
        ("Microsoft.Compute/snapshots/read", False),
        ("Microsoft.Resources/subscriptions/resourceGroups/read", False),
    ),
    roles.STORAGE_BLOB_DATA_CONTRIBUTOR: ((BLOB_WRITE, True),),
    roles.CONTRIBUTOR: (
        ("Microsoft.DBforPostgreSQL/flexibleServers/databases/write", False),
        ("Microsoft.DBforPostgreSQL/flexibleServers/databases/delete", False),
    ),
}


@dataclass(frozen=True)
class RestoreNeed:
    role: str
    check_scope: str
    resource_scope: str
    where: str

    @property
    def actions(self):
        return ROLE_ACTIONS[self.role]

    def scope_for(self, level: str) -> str:
        if level == SCOPE_RESOURCE:
            return self.resource_scope
        if level == SCOPE_RESOURCE_GROUP:
            return scopes.resource_group_of(self.resource_scope) or self.resource_scope
        if level == SCOPE_SUBSCRIPTION:
            return scopes.subscription_of(self.resource_scope) or self.resource_scope
        raise ValueError(f"Unknown scope level {level!r}.")


def _name(resource_id: str) -> str:
    return resource_id.rstrip("/").rsplit("/", 1)[-1]


def needs_for(point, target, resolved) -> list[RestoreNeed]:
    """The roles the vault identity needs for restoring ``point`` to ``target`` (``resolved`` holds
    the target rows `validation.resolve` found)."""
    from protection.restores import layout, targets

    if isinstance(target, targets.AdlsTarget):
        account = resolved["account"]
        return [RestoreNeed(roles.STORAGE_ACCOUNT_BACKUP_CONTRIBUTOR, account.resource_id, account.resource_id,
                            f"target storage account {account.name}")]
    if isinstance(target, targets.VolumeTarget):
        group = resolved["volume_group"]
        san = group.elastic_san
        needs = [RestoreNeed(roles.ELASTIC_SAN_VOLUME_IMPORTER, group.resource_id, san.resource_id,
                             f"target Elastic SAN {san.name}")]
        rg = scopes.normalize(layout.snapshot_group_id(point))
        if rg and rg != scopes.ROOT:
            needs.append(RestoreNeed(roles.READER, rg, rg, f"snapshot resource group {_name(rg)}"))
        return needs
    if isinstance(target, targets.PgFilesTarget):
        container = resolved["container"]
        account = container.account
        return [RestoreNeed(roles.STORAGE_BLOB_DATA_CONTRIBUTOR, container.resource_id, account.resource_id,
                            f"target storage account {account.name}")]
    if isinstance(target, targets.PgDatabaseTarget):
        server = resolved["server"]
        return [RestoreNeed(roles.CONTRIBUTOR, server.resource_id, server.resource_id, f"target server {server.name}")]
    raise ValueError(f"Unknown target {target!r}")


def identity_has(identity, need: RestoreNeed) -> bool:
    if identity is None:
        return False
    return all(authorize(identity, action, need.check_scope, data_action=data).allowed for action, data in need.actions)


def missing(identity, needs) -> list[RestoreNeed]:
    return [n for n in needs if not identity_has(identity, n)]


@dataclass(frozen=True)
class RestoreReadiness:
    status: str
    needs: tuple = ()
    missing: tuple = ()
    message: str = ""
    can_assign: bool = False
    assignable_levels: tuple = field(default=())

    @property
    def ok(self) -> bool:
        return self.status == SUCCESS

    @property
    def status_class(self) -> str:
        return {SUCCESS: "status-ok", ROLE_ASSIGNMENT_NOT_DONE: "status-warn"}.get(self.status, "status-failed")


def check(user, vault, needs) -> RestoreReadiness:
    identity = vault.identity if vault.identity_id else None
    if identity is None or not identity.enabled:
        return RestoreReadiness(IDENTITY_OFF, tuple(needs), tuple(needs),
                                "The vault's system-assigned identity is off. Turn it on in the vault's Identity blade, "
                                "then validate again.")
    lacking = tuple(missing(identity, needs))
    if not lacking:
        return RestoreReadiness(SUCCESS, tuple(needs), (), "The vault's identity holds every role this restore needs.")
    wanted = "; ".join(f"{n.role} on the {n.where}" for n in lacking)
    levels = tuple(level for level in SCOPE_LEVELS
                   if all(authorize(user, ROLE_ASSIGNMENT_WRITE, n.scope_for(level)).allowed for n in lacking))
    if SCOPE_RESOURCE not in levels:
        return RestoreReadiness(
            INSUFFICIENT_PERMISSION, tuple(needs), lacking,
            f"The vault's identity needs: {wanted}. You cannot create role assignments there "
            "(Microsoft.Authorization/roleAssignments/write); ask an Owner, User Access Administrator or Role Based "
            "Access Control Administrator to assign these roles to the vault's identity.", False, levels)
    return RestoreReadiness(ROLE_ASSIGNMENT_NOT_DONE, tuple(needs), lacking, f"The vault's identity needs: {wanted}.",
                            True, levels)


def assign_missing(principal, vault, needs, level: str) -> list[RoleAssignment]:
    """Assign the vault identity the restore roles it lacks, at ``level``, as ``principal``.
    All or nothing: every assignment is authorized before the first is made."""
    if level not in SCOPE_LEVELS:
        raise ValidationError({"scope": "Choose the scope: Resource, Resource group or Subscription."})
    identity = vault.identity if vault.identity_id else None
    if identity is None or not identity.enabled:
        raise ValidationError("The vault's system-assigned identity is off: turn it on in the vault's Identity blade first.")
    now = clock.now()
    plan, seen = [], set()
    for need in missing(identity, needs):
        scope = scopes.normalize(need.scope_for(level))
        key = (need.role, scope.lower())
        if key in seen:
            continue
        seen.add(key)
        role = RoleDefinition.objects.get(name=need.role)
        if RoleAssignment.objects.active_at(now).filter(principal=identity, role=role, scope__iexact=scope).exists():
            continue
        plan.append((role, scope, need))
    for role, scope, _need in plan:  # refusals first, so nothing is half-assigned
        if not evaluate(principal, ROLE_ASSIGNMENT_WRITE, scope).allowed:
            security_services.assign_role(principal, assignee=identity, role=role, scope=scope)  # logs and raises
    created = []
    with transaction.atomic():
        for role, scope, need in plan:
            created.append(security_services.assign_role(
                principal, assignee=identity, role=role, scope=scope,
                description=f"Backup vault '{vault.name}': {need.role} for restore ({level} scope)"))
    return created
