"""Backup readiness: does the vault's managed identity hold what a datasource needs? (reference §2.2–2.3)

For each datasource type the reference names the built-in roles the vault identity needs and where:

| Datasource | Role | Where |
|---|---|---|
| Azure Data Lake Storage | Storage Account Backup Contributor | the storage account |
| Elastic SAN | Elastic SAN Snapshot Exporter | the Elastic SAN instance |
|  | Disk Snapshot Contributor | the snapshot resource group |
| PostgreSQL flexible server | PostgreSQL Flexible Server Long Term Retention Backup Role | the server |
|  | Reader | the server's resource group |

Readiness never looks for those role *names*: it asks `security.rbac.authorize(identity, action, scope)`
for the actions each role stands for, so an inherited assignment (on the resource group or the
subscription) or a custom role with the same actions counts, and a revoked or expired one does not.

Outcomes per row, as the portal words them: ``Success``; ``Role assignment not done`` (the identity
lacks something and the signed-in user may fix it); ``Insufficient permission for role assignment``
(the identity lacks something and the user cannot write role assignments where it is needed).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from protection import datasource_types
from security import roles, scopes
from security.rbac import authorize

ROLE_ASSIGNMENT_WRITE = "Microsoft.Authorization/roleAssignments/write"

SUCCESS = "Success"
ROLE_ASSIGNMENT_NOT_DONE = "Role assignment not done"
INSUFFICIENT_PERMISSION = "Insufficient permission for role assignment"
IDENTITY_OFF = "Vault identity is off"

# Scope levels of the "Grant missing permissions" pane.
SCOPE_RESOURCE = "Resource"
SCOPE_RESOURCE_GROUP = "Resource group"
SCOPE_SUBSCRIPTION = "Subscription"
SCOPE_LEVELS = (SCOPE_RESOURCE, SCOPE_RESOURCE_GROUP, SCOPE_SUBSCRIPTION)

# The actions that stand for each role when readiness asks `authorize` (a subset of the role's own
# actions that only that role, or a broader one, grants).
ROLE_ACTIONS = {
    roles.STORAGE_ACCOUNT_BACKUP_CONTRIBUTOR: (
        "Microsoft.Storage/storageAccounts/objectReplicationPolicies/write",
        "Microsoft.Storage/storageAccounts/objectReplicationPolicies/restorePointMarkers/write",
        "Microsoft.Storage/storageAccounts/blobServices/containers/read",
    ),
    roles.ELASTIC_SAN_SNAPSHOT_EXPORTER: (
        "Microsoft.ElasticSan/elasticSans/volumeGroups/snapshots/write",
        "Microsoft.ElasticSan/elasticSans/volumeGroups/snapshots/beginGetAccess/action",
        "Microsoft.ElasticSan/elasticSans/volumeGroups/preBackup/action",
    ),
    roles.DISK_SNAPSHOT_CONTRIBUTOR: (
        "Microsoft.Compute/snapshots/write",
        "Microsoft.Compute/snapshots/read",
        "Microsoft.Compute/snapshots/delete",
    ),
    roles.POSTGRES_LTR_BACKUP_ROLE: (
        "Microsoft.DBforPostgreSQL/flexibleServers/ltrPreBackup/action",
        "Microsoft.DBforPostgreSQL/flexibleServers/startLtrBackup/action",
    ),
    roles.READER: ("Microsoft.DBforPostgreSQL/flexibleServers/read",),
}


@dataclass(frozen=True)
class RoleNeed:
    """One role the vault identity needs, where it is checked and where "Resource" assigns it."""

    role: str
    check_scope: str  # where `authorize` is asked (the datasource, or the resource group)
    resource_scope: str  # the scope the "Resource" choice assigns at
    where: str  # words for the page: "storage account contosolabsource"

    @property
    def actions(self) -> tuple[str, ...]:
        return ROLE_ACTIONS[self.role]

    def scope_for(self, level: str) -> str:
        """The scope an assignment at ``level`` (Resource / Resource group / Subscription) uses."""
        if level == SCOPE_RESOURCE:
            return self.resource_scope
        if level == SCOPE_RESOURCE_GROUP:
            return scopes.resource_group_of(self.resource_scope) or self.resource_scope
        if level == SCOPE_SUBSCRIPTION:
            return scopes.subscription_of(self.resource_scope) or self.resource_scope
        raise ValueError(f"Unknown scope level {level!r}: choose Resource, Resource group or Subscription.")


@dataclass(frozen=True)
class Datasource:
    """What readiness needs to know of a datasource (no model import: ids are enough)."""

    datasource_type: str
    resource_id: str  # storage account, Elastic SAN volume or PostgreSQL server
    name: str
    set_resource_id: str = ""  # the Elastic SAN instance of a volume
    snapshot_resource_group_id: str = ""  # Elastic SAN only


def needs_for(ds: Datasource) -> list[RoleNeed]:
    """The roles of reference §2.2 (backup column) for ``ds``."""
    if ds.datasource_type == datasource_types.ADLS:
        return [RoleNeed(roles.STORAGE_ACCOUNT_BACKUP_CONTRIBUTOR, ds.resource_id, ds.resource_id,
                         f"storage account {ds.name}")]
    if ds.datasource_type == datasource_types.ELASTIC_SAN:
        san = ds.set_resource_id or ds.resource_id
        san_name = san.rstrip("/").rsplit("/", 1)[-1]
        needs = [RoleNeed(roles.ELASTIC_SAN_SNAPSHOT_EXPORTER, ds.resource_id, san, f"Elastic SAN {san_name}")]
        if ds.snapshot_resource_group_id:
            rg = scopes.normalize(ds.snapshot_resource_group_id)
            needs.append(RoleNeed(roles.DISK_SNAPSHOT_CONTRIBUTOR, rg, rg,
                                  f"snapshot resource group {rg.rsplit('/', 1)[-1]}"))
        return needs
    if ds.datasource_type == datasource_types.POSTGRES_FLEX:
        rg = scopes.resource_group_of(ds.resource_id) or ds.resource_id
        return [
            RoleNeed(roles.POSTGRES_LTR_BACKUP_ROLE, ds.resource_id, ds.resource_id, f"server {ds.name}"),
            RoleNeed(roles.READER, rg, rg, f"resource group {rg.rsplit('/', 1)[-1]}"),
        ]
    raise ValueError(f"Unknown datasource type {ds.datasource_type!r}.")


def identity_has(identity, need: RoleNeed) -> bool:
    """True when ``identity`` may perform every action ``need`` stands for, at its scope."""
    if identity is None:
        return False
    return all(authorize(identity, action, need.check_scope).allowed for action in need.actions)


def missing_needs(identity, ds: Datasource) -> list[RoleNeed]:
    return [need for need in needs_for(ds) if not identity_has(identity, need)]


@dataclass(frozen=True)
class Readiness:
    status: str
    missing: tuple[RoleNeed, ...] = ()
    message: str = ""
    can_assign: bool = False  # the signed-in user may assign every missing role (at "Resource" at least)
    assignable_levels: tuple[str, ...] = field(default=())  # the scope levels the user may assign at

    @property
    def ok(self) -> bool:
        return self.status == SUCCESS

    @property
    def status_class(self) -> str:
        return {SUCCESS: "status-ok", ROLE_ASSIGNMENT_NOT_DONE: "status-warn"}.get(self.status, "status-failed")


def user_may_assign(user, need: RoleNeed, level: str = SCOPE_RESOURCE) -> bool:
    return authorize(user, ROLE_ASSIGNMENT_WRITE, need.scope_for(level)).allowed


def check(user, vault, ds: Datasource) -> Readiness:
    """Backup readiness of ``ds`` for ``vault`` as ``user`` sees it (see the module docstring)."""
    identity = vault.identity if vault.identity_id else None
    if identity is None or not identity.enabled:
        return Readiness(
            IDENTITY_OFF,
            tuple(needs_for(ds)),
            "The vault's system-assigned identity is off. Turn it on in the vault's Identity blade, then revalidate.",
        )
    missing = tuple(missing_needs(identity, ds))
    if not missing:
        return Readiness(SUCCESS, (), "The vault's identity holds every role this datasource needs.")
    levels = tuple(level for level in SCOPE_LEVELS if all(user_may_assign(user, n, level) for n in missing))
    wanted = "; ".join(f"{n.role} on the {n.where}" for n in missing)
    if SCOPE_RESOURCE not in levels:
        return Readiness(
            INSUFFICIENT_PERMISSION, missing,
            f"The vault's identity needs: {wanted}. You cannot create role assignments there "
            "(Microsoft.Authorization/roleAssignments/write); ask an Owner, User Access Administrator or Role Based "
            "Access Control Administrator to assign these roles to the vault's identity.",
            False, levels,
        )
    return Readiness(ROLE_ASSIGNMENT_NOT_DONE, missing, f"The vault's identity needs: {wanted}.", True, levels)
