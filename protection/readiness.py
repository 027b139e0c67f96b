"""Backup readiness: does the vault's managed identity hold what a datasource needs? (reference §2.2–2.3)

For each datasource type the reference names the built-in roles the vault identity needs and where:

| Datasource | Role | Where |
|---|---|---|
| Azure Data Lake Storage | Storage Account Backup Contributor | the storage account |
| Elastic SAN | Elastic SAN Snapshot Exporter | the Elastic SAN instance |
|  | Disk Snapshot Contributor | the snapshot resource group |
| PostgreSQL flexible server | PostgreSQL Flexible Server Long Term Retention Backup Role | the server |
|  | Reader | the server's resource group |
| Azure Disk | Disk Backup Reader | the disk |
|  | Disk Snapshot Contributor | the snapshot resource group |

Readiness never looks for those role *names*: it asks `security.rbac.authorize(identity, action, scope)`
for the actions each role stands for, so an inherited assignment (on the resource group or the
subscription) or a custom role with the same actions counts, and a revoked or expired one does not.

The pieces both readiness checks share live here: a role need (`RoleNeed`), whether the identity
holds it, the outcome for the signed-in user (`assess`) and **Assign missing roles** (`assign_missing`).
Restore readiness (`protection.restores.readiness`) only says which roles a restore target needs.

Outcomes per row, as the portal words them: ``Success``; ``Role assignment not done`` (the identity
lacks something and the signed-in user may fix it); ``Insufficient permission for role assignment``
(the identity lacks something and the user cannot write role assignments where it is needed).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction

from protection import datasource_types
from security import clock, roles, scopes
from security import operations as ops
from security import services as security_services
from security.conditions import SERVICE_PRINCIPAL, AssignmentRequest
from security.guards import evaluate
from security.models import RoleAssignment, RoleDefinition
from security.rbac import authorize

SUCCESS = "Success"
ROLE_ASSIGNMENT_NOT_DONE = "Role assignment not done"
INSUFFICIENT_PERMISSION = "Insufficient permission for role assignment"
IDENTITY_OFF = "Vault identity is off"
NETWORK_DENIED = "Network access denied"

# Scope levels of the "Grant missing permissions" pane.
SCOPE_RESOURCE = "Resource"
SCOPE_RESOURCE_GROUP = "Resource group"
SCOPE_SUBSCRIPTION = "Subscription"
SCOPE_LEVELS = (SCOPE_RESOURCE, SCOPE_RESOURCE_GROUP, SCOPE_SUBSCRIPTION)

# The actions that stand for each role when backup readiness asks `authorize` (a subset of the role's
# own actions that only that role, or a broader one, grants).
BACKUP_ROLE_ACTIONS = {
    roles.STORAGE_ACCOUNT_BACKUP_CONTRIBUTOR: (
        ops.OBJECT_REPLICATION_WRITE, ops.RESTORE_POINT_MARKER_WRITE, ops.CONTAINER_READ,
    ),
    roles.ELASTIC_SAN_SNAPSHOT_EXPORTER: (
        ops.VOLUME_SNAPSHOT_WRITE, ops.VOLUME_SNAPSHOT_GET_ACCESS, ops.VOLUME_GROUP_PRE_BACKUP,
    ),
    roles.DISK_SNAPSHOT_CONTRIBUTOR: (ops.SNAPSHOT_WRITE, ops.SNAPSHOT_READ, ops.SNAPSHOT_DELETE),
    roles.DISK_BACKUP_READER: (ops.DISK_READ, ops.DISK_BEGIN_GET_ACCESS),
    roles.POSTGRES_LTR_BACKUP_ROLE: (ops.POSTGRES_LTR_PRE_BACKUP, ops.POSTGRES_START_LTR_BACKUP),
    roles.READER: (ops.POSTGRES_READ,),
}


@dataclass(frozen=True)
class RoleNeed:
    """One role the vault identity needs, where it is checked and where "Resource" assigns it."""

    role: str
    check_scope: str  # where `authorize` is asked (the datasource, the target, or a resource group)
    resource_scope: str  # the scope the "Resource" choice assigns at
    where: str  # words for the page: "storage account contosolabsource"
    actions: tuple[str, ...]  # what stands for the role at ``check_scope``

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
    """What backup readiness needs to know of a datasource (no model import: ids are enough)."""

    datasource_type: str
    resource_id: str  # storage account, Elastic SAN volume or PostgreSQL server
    name: str
    set_resource_id: str = ""  # the Elastic SAN instance of a volume
    snapshot_resource_group_id: str = ""  # Elastic SAN and Azure Disk


def vault_identity_need(role: str, check_scope: str, resource_scope: str, where: str, actions) -> RoleNeed:
    """A role the vault identity needs; only `roles.VAULT_IDENTITY_ROLES` (what "Assign missing roles" may
    grant, and what the seeded backup admin's delegation condition allows) can be one."""
    if role not in roles.VAULT_IDENTITY_ROLES:
        raise ValueError(f"{role} is not a vault identity role (security.roles.VAULT_IDENTITY_ROLES).")
    return RoleNeed(role, check_scope, resource_scope, where, tuple(actions))


def _backup_need(role: str, check_scope: str, resource_scope: str, where: str) -> RoleNeed:
    return vault_identity_need(role, check_scope, resource_scope, where, BACKUP_ROLE_ACTIONS[role])


def _snapshot_group_need(resource_group_id: str) -> RoleNeed:
    rg = scopes.normalize(resource_group_id)
    return _backup_need(roles.DISK_SNAPSHOT_CONTRIBUTOR, rg, rg, f"snapshot resource group {rg.rsplit('/', 1)[-1]}")


def needs_for(ds: Datasource) -> list[RoleNeed]:
    """The roles of reference §2.2 (backup column) for ``ds``."""
    if ds.datasource_type == datasource_types.ADLS:
        return [_backup_need(roles.STORAGE_ACCOUNT_BACKUP_CONTRIBUTOR, ds.resource_id, ds.resource_id,
                             f"storage account {ds.name}")]
    if ds.datasource_type == datasource_types.ELASTIC_SAN:
        san = ds.set_resource_id or ds.resource_id
        san_name = san.rstrip("/").rsplit("/", 1)[-1]
        needs = [_backup_need(roles.ELASTIC_SAN_SNAPSHOT_EXPORTER, ds.resource_id, san, f"Elastic SAN {san_name}")]
        if ds.snapshot_resource_group_id:
            needs.append(_snapshot_group_need(ds.snapshot_resource_group_id))
        return needs
    if ds.datasource_type == datasource_types.AZURE_DISK:
        needs = [_backup_need(roles.DISK_BACKUP_READER, ds.resource_id, ds.resource_id, f"disk {ds.name}")]
        if ds.snapshot_resource_group_id:
            needs.append(_snapshot_group_need(ds.snapshot_resource_group_id))
        return needs
    if ds.datasource_type == datasource_types.POSTGRES_FLEX:
        rg = scopes.resource_group_of(ds.resource_id) or ds.resource_id
        return [
            _backup_need(roles.POSTGRES_LTR_BACKUP_ROLE, ds.resource_id, ds.resource_id, f"server {ds.name}"),
            _backup_need(roles.READER, rg, rg, f"resource group {rg.rsplit('/', 1)[-1]}"),
        ]
    raise ValueError(f"Unknown datasource type {ds.datasource_type!r}.")


def _is_data_action(action: str) -> bool:
    entry = ops.lookup(action)
    return entry is not None and entry.data_action


def identity_has(identity, need: RoleNeed) -> bool:
    """True when ``identity`` may perform every action ``need`` stands for, at its scope."""
    if identity is None:
        return False
    return all(authorize(identity, action, need.check_scope, data_action=_is_data_action(action)).allowed
               for action in need.actions)


def missing(identity, needs) -> list[RoleNeed]:
    return [need for need in needs if not identity_has(identity, need)]


def missing_needs(identity, ds: Datasource) -> list[RoleNeed]:
    return missing(identity, needs_for(ds))


def describe(needs) -> str:
    """"Storage Account Backup Contributor on the storage account x; ..." for messages."""
    return "; ".join(f"{n.role} on the {n.where}" for n in needs)


@dataclass(frozen=True)
class Readiness:
    status: str
    missing: tuple[RoleNeed, ...] = ()
    message: str = ""
    can_assign: bool = False  # the signed-in user may assign every missing role (at "Resource" at least)
    assignable_levels: tuple[str, ...] = field(default=())  # the scope levels the user may assign at
    needs: tuple[RoleNeed, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == SUCCESS

    @property
    def status_class(self) -> str:
        return {SUCCESS: "status-ok", ROLE_ASSIGNMENT_NOT_DONE: "status-warn"}.get(self.status, "status-failed")


def _request(need: RoleNeed) -> AssignmentRequest:
    """What a delegation condition judges: this role, for the vault's managed identity (a service principal)."""
    return AssignmentRequest(roles.role_id(need.role), SERVICE_PRINCIPAL)


def user_may_assign(user, need: RoleNeed, level: str = SCOPE_RESOURCE) -> bool:
    """Whether ``user`` may assign ``need``'s role to the vault identity at ``level`` (conditions included)."""
    return authorize(user, ops.ROLE_ASSIGNMENT_WRITE, need.scope_for(level), request=_request(need)).allowed


def assess(user, vault, needs, *, subject: str, then: str) -> Readiness:
    """Whether ``vault``'s identity holds ``needs``, and what ``user`` may do about it (see the module
    docstring). ``subject`` and ``then`` word the messages ("this datasource", "revalidate")."""
    needs = tuple(needs)
    identity = vault.identity if vault.identity_id else None
    if identity is None or not identity.enabled:
        return Readiness(IDENTITY_OFF, needs, f"The vault's system-assigned identity is off. Turn it on in the vault's "
                                              f"Identity blade, then {then}.", needs=needs)
    lacking = tuple(missing(identity, needs))
    if not lacking:
        return Readiness(SUCCESS, (), f"The vault's identity holds every role {subject} needs.", needs=needs)
    levels = tuple(level for level in SCOPE_LEVELS if all(user_may_assign(user, n, level) for n in lacking))
    wanted = describe(lacking)
    if SCOPE_RESOURCE not in levels:
        return Readiness(
            INSUFFICIENT_PERMISSION, lacking,
            f"The vault's identity needs: {wanted}. You cannot create role assignments there "
            f"({ops.ROLE_ASSIGNMENT_WRITE}); ask an Owner, User Access Administrator or Role Based "
            "Access Control Administrator to assign these roles to the vault's identity.",
            False, levels, needs,
        )
    return Readiness(ROLE_ASSIGNMENT_NOT_DONE, lacking, f"The vault's identity needs: {wanted}.", True, levels, needs)


def check(user, vault, ds: Datasource) -> Readiness:
    """Backup readiness of ``ds`` for ``vault`` as ``user`` sees it: the identity's roles, then the vault's
    network (a vault that denies public access backs up only datasources its private endpoints reach)."""
    ready = assess(user, vault, needs_for(ds), subject="this datasource", then="revalidate")
    refusal = network_refusal(vault, ds)
    if refusal is None:
        return ready
    words = f"{refusal.code}: {refusal.reason} What would lift it: {refusal.remedy}"
    if not ready.ok:
        return Readiness(ready.status, ready.missing, f"{ready.message} {words}", ready.can_assign,
                         ready.assignable_levels, ready.needs)
    return Readiness(NETWORK_DENIED, (), words, needs=ready.needs)


def network_refusal(vault, ds: Datasource):
    """The network guard's refusal of backing ``ds`` up into ``vault`` (None: its network lets it through)."""
    from protection.network import BACKUP_WHAT, datasource_for
    from vaults.networking.guard import data_path_refusal

    return data_path_refusal(vault, datasource_for(ds.resource_id), what=BACKUP_WHAT)


def assign_missing(principal, vault, needs, level: str, *, purpose: str) -> list[RoleAssignment]:
    """**Assign missing roles**: the roles of ``needs`` the vault identity lacks, at ``level`` (Resource /
    Resource group / Subscription), as ``principal`` (each assignment is its own logged write, described
    as being "for ``purpose``"). All or nothing: every assignment is authorized before the first is made."""
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
    # Refusals first, outside any transaction, so the refusal is logged and nothing is half-assigned.
    for role, scope, need in plan:
        if not evaluate(principal, ops.ROLE_ASSIGNMENT_WRITE, scope, _request(need).as_change()).allowed:
            security_services.assign_role(principal, assignee=identity, role=role, scope=scope)  # logs, raises
    created = []
    with transaction.atomic():
        for role, scope, need in plan:
            created.append(security_services.assign_role(
                principal, assignee=identity, role=role, scope=scope,
                description=f"Backup vault '{vault.name}': {need.role} for {purpose} ({level} scope)"))
    return created
