"""Resource Guards and multi-user authorization (MUA): reference §1.8 and §3.3, decision 3, DESIGN §7.

A security admin owns a **Resource Guard** (Backup MUA Admin on it) and is its approver. A backup
admin with Reader on the guard **links** it to a vault (a `ResourceGuardProxy`). From then on the
**MUA guard** (registered with `security.guards` as "MUA", order 10) refuses the guard's protected
operations on that vault unless the caller is authorized on the guard's *request resource*
(``<guard id>/<requestType>/default``, action ``Microsoft.DataProtection/resourceGuards/<requestType>/
default/action``): Backup MUA Operator (``Microsoft.DataProtection/*/action``), Backup MUA Admin,
Contributor and Owner on the guard pass; Reader does not. A refused caller **requests access**: a
time-bound Backup MUA Operator grant on the guard, which one of the guard's approvers (never the
requester) approves or rejects with a comment. Without approvers a request is approved
automatically (a lesson kept from PIM). The grant is a RoleAssignment with ``ends_at``: it counts as
absent the moment it ends, and `close_expired_grants` (a periodic task) marks it Expired and logs it.

How services name what they do, so that this guard sees it:

* an operation whose action string *is* a critical operation is protected by the action alone:
  ``backupInstances/delete``, ``stopProtection/action``, ``suspendBackups/action``,
  ``restore/action``, ``backupResourceGuardProxies/delete``;
* an operation whose action is shared with harmless changes (a vault PATCH is ``backupVaults/write``;
  configuring protection and changing an instance's policy are both ``backupInstances/write``) names
  its critical operation in ``change["critical_operation"]`` (or a list in
  ``change["critical_operations"]``): ``backupVaults/write#reduceSoftDeleteSecurity``,
  ``#reduceImmutabilityState``, ``#modifyEncryptionSettings``, ``backupInstances/write``.

The guard finds the vault from the target's resource id (``.../backupVaults/<name>`` prefix), so an
instance, a policy or a recovery point of a linked vault is covered too.

Every step is in the activity log naming both people: the request (requester), approval or rejection
(approver and requester), the use (the protected operation's own entry carries ``guards.MUA`` with the
grant, its requester and approver) and the expiry (requester and approver).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
from dataclasses import dataclass
from typing import Callable

from django.core.exceptions import ValidationError
from django.db import transaction

from security import clock, scopes
from security.audit import (
    GuardedOperation,
    _validation_text,
    guarded,
    record,
    record_denial,
    register_operation_name,
)
from security.guards import Decision, GuardDenied, Note, Refusal, evaluate, register_guard, target_scope
from security.models import (
    AccessRequest,
    ActivityLogEntry,
    Alert,
    Principal,
    ResourceGuard,
    ResourceGuardProxy,
    RoleAssignment,
    RoleDefinition,
)
from security.rbac import authorize, visible_to
from security.roles import BACKUP_MUA_OPERATOR

logger = logging.getLogger(__name__)

DP = "Microsoft.DataProtection"
GUARD_TYPE = ResourceGuard.RESOURCE_TYPE
GUARD_READ = f"{DP}/resourceGuards/read"
GUARD_WRITE = f"{DP}/resourceGuards/write"
GUARD_DELETE = f"{DP}/resourceGuards/delete"
PROXY_READ = f"{DP}/backupVaults/backupResourceGuardProxies/read"
PROXY_WRITE = f"{DP}/backupVaults/backupResourceGuardProxies/write"
PROXY_DELETE = f"{DP}/backupVaults/backupResourceGuardProxies/delete"

# The access-request workflow (PIM's activation requests and approvals).
REQUEST_ACCESS = "Microsoft.Authorization/roleAssignmentScheduleRequests/write"
CANCEL_REQUEST = "Microsoft.Authorization/roleAssignmentScheduleRequests/cancel/action"
APPROVE_REQUEST = "Microsoft.Authorization/roleAssignmentApprovals/approve/action"
REJECT_REQUEST = "Microsoft.Authorization/roleAssignmentApprovals/reject/action"
EXPIRE_ACCESS = "Microsoft.Authorization/roleAssignmentSchedules/expire/action"

GUARD_NAME = "MUA"
GUARD_ORDER = 10
APPROVALS_GUARD = "MUA approvals"

# Critical operations (reference §1.8).
REDUCE_SOFT_DELETE = f"{DP}/backupVaults/write#reduceSoftDeleteSecurity"
REMOVE_MUA = PROXY_DELETE
DELETE_INSTANCE = f"{DP}/backupVaults/backupInstances/delete"
STOP_PROTECTION = f"{DP}/backupVaults/backupInstances/stopProtection/action"
SUSPEND_BACKUPS = f"{DP}/backupVaults/backupInstances/suspendBackups/action"
REDUCE_IMMUTABILITY = f"{DP}/backupVaults/write#reduceImmutabilityState"
MODIFY_ENCRYPTION = f"{DP}/backupVaults/write#modifyEncryptionSettings"
CHANGE_POLICY = f"{DP}/backupVaults/backupInstances/write"
RESTORE = f"{DP}/backupVaults/backupInstances/restore/action"


@dataclass(frozen=True)
class CriticalOperation:
    action: str  # the API's vaultCriticalOperation
    label: str  # the portal's friendly name
    mandatory: bool  # cannot be excluded
    request_type: str  # the guard's request collection that authorizes it
    by_action: bool  # True: protected whenever this action runs; False: only when a service names it
    default_protected: bool = True  # ticked on a new guard's Protected operations tab
    description: str = ""


CRITICAL_OPERATIONS: list[CriticalOperation] = [
    CriticalOperation(REDUCE_SOFT_DELETE, "Disable soft delete", True, "disableSoftDeleteRequests", False,
                      description="Turning soft delete off, or shortening its retention."),
    CriticalOperation(REMOVE_MUA, "Remove MUA protection", True, "deleteResourceGuardProxyRequests", True,
                      description="Unlinking the Resource Guard from a vault."),
    CriticalOperation(DELETE_INSTANCE, "Delete backup instance", False, "deleteBackupInstanceRequests", True,
                      description="Stop backup and delete backup data."),
    CriticalOperation(STOP_PROTECTION, "Stop backup and retain forever", False, "deleteProtectedItemRequests", True,
                      description="Stops backups and retention; the data is kept forever."),
    CriticalOperation(SUSPEND_BACKUPS, "Stop backup and retain as per policy", False, "deleteProtectedItemRequests",
                      True, description="Stops backups; retention goes on as per the policy."),
    CriticalOperation(REDUCE_IMMUTABILITY, "Disable immutability", False, "disableSoftDeleteRequests", False,
                      description="Turning an enabled (not locked) immutable vault off."),
    CriticalOperation(RESTORE, "Restore", False, "updateProtectedItemRequests", True, default_protected=False,
                      description="Restoring a recovery point."),
    CriticalOperation(CHANGE_POLICY, "Change policy", False, "updateProtectionPolicyRequests", False,
                      default_protected=False, description="Moving a backup instance to another policy."),
    CriticalOperation(MODIFY_ENCRYPTION, "Modify encryption settings", False, "updateProtectedItemRequests", False,
                      default_protected=False, description="Changing the vault's encryption key settings."),
]
_BY_ACTION = {c.action.lower(): c for c in CRITICAL_OPERATIONS}
MANDATORY_OPERATIONS = [c.action for c in CRITICAL_OPERATIONS if c.mandatory]
DEFAULT_EXCLUSIONS = [c.action for c in CRITICAL_OPERATIONS if not c.default_protected]

ACCESS_DURATIONS_HOURS = (1, 2, 4, 8)
PENDING_REQUEST_LIFETIME = dt.timedelta(hours=24)  # PIM: a request nobody decides expires in a day
JUSTIFICATION_MAX = 500

GUARD_NAME_RE = re.compile(r"^[A-Za-z][-A-Za-z0-9]*[A-Za-z0-9]$")
GUARD_NAME_MAX = 50
GUARD_NAME_RULE = (
    "A Resource Guard name must be 2 to 50 characters long, start with a letter, end with a letter or a "
    "digit, and contain only letters, digits and hyphens."
)
GUARD_HAS_VAULTS_MESSAGE = "Cannot delete the Resource Guard while vaults are linked to it."
AUTO_APPROVAL_WARNING = (
    "This Resource Guard has no approvers: every access request is approved automatically, so anyone "
    "with Reader on the guard can give themselves access to its protected operations."
)

_VAULT_ID_RE = re.compile(r"^(/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.DataProtection/"
                          r"backupVaults/[^/]+)", re.I)

OPERATION_NAMES = {
    GUARD_WRITE: "Create or Update Resource Guard",
    GUARD_DELETE: "Delete Resource Guard",
    PROXY_WRITE: "Link Resource Guard (enable MUA)",
    PROXY_DELETE: "Remove MUA protection",
    REQUEST_ACCESS: "Request Resource Guard access",
    CANCEL_REQUEST: "Cancel access request",
    APPROVE_REQUEST: "Approve access request",
    REJECT_REQUEST: "Reject access request",
    EXPIRE_ACCESS: "Resource Guard access expired",
}


def register_operation_names() -> None:
    for action, name in OPERATION_NAMES.items():
        register_operation_name(action, name)
    for c in CRITICAL_OPERATIONS:
        if "#" in c.action:
            register_operation_name(c.action, c.label)


# --- notifications (portal registers how to deliver them) -----------------------------------------

Notifier = Callable[..., None]
_notifiers: list[Notifier] = []


def register_notifier(fn: Notifier) -> None:
    """``fn(principal, *, title, message, resource_id, page, state)`` delivers a notification (portal's panel).

    ``page`` is "my-requests" or "approvals": where the notification should lead. ``state`` is the
    access request's state the notification reports (`AccessRequest.State`: Pending, Approved,
    Rejected, Expired), so a request waiting for approval is never shown as a success.
    """
    if fn not in _notifiers:
        _notifiers.append(fn)


def _notify(principal, *, title: str, message: str, resource_id: str, page: str, state: str = "") -> None:
    def deliver():
        for fn in list(_notifiers):
            try:
                fn(principal, title=title, message=message, resource_id=resource_id, page=page, state=state)
            except Exception:  # a notification is best effort; the request itself is recorded
                logger.exception("Could not deliver the MUA notification %r", title)

    transaction.on_commit(deliver)


# --- lookups --------------------------------------------------------------------------------------


def critical_operation(action: str) -> CriticalOperation | None:
    return _BY_ACTION.get((action or "").lower())


def vault_id_of(resource_id: str) -> str | None:
    """The Backup vault a resource id lies in (the vault itself, an instance, a policy, ...)."""
    match = _VAULT_ID_RE.match(scopes.normalize(resource_id))
    return match.group(1) if match else None


def proxy_for(resource_id: str) -> ResourceGuardProxy | None:
    """The MUA link of the vault that ``resource_id`` lies in, or None."""
    vault_id = vault_id_of(resource_id)
    if not vault_id:
        return None
    return ResourceGuardProxy.objects.select_related("guard").filter(protected_resource_id__iexact=vault_id).first()


def is_linked(resource_id: str) -> bool:
    vault_id = vault_id_of(resource_id)
    return bool(vault_id) and ResourceGuardProxy.objects.filter(protected_resource_id__iexact=vault_id).exists()


def guards_visible_to(principal):
    """Resource Guards the principal may read (every guard list and picker starts here)."""
    return ResourceGuard.objects.filter(visible_to(principal, GUARD_READ).q("resource_id")).prefetch_related("approvers")


def guard_by_id(resource_id: str) -> ResourceGuard | None:
    return ResourceGuard.objects.filter(resource_id__iexact=scopes.normalize(resource_id)).first()


def protected_operations(guard: ResourceGuard) -> list[dict]:
    """Each critical operation with whether this guard protects it (mandatory ones always)."""
    excluded = {e.lower() for e in guard.vault_critical_operation_exclusions or []}
    return [
        {"operation": c, "protected": c.mandatory or c.action.lower() not in excluded}
        for c in CRITICAL_OPERATIONS
    ]


def is_protected_by(guard: ResourceGuard, critical: CriticalOperation) -> bool:
    if critical.mandatory:
        return True
    return critical.action.lower() not in {e.lower() for e in guard.vault_critical_operation_exclusions or []}


def request_resource_id(guard: ResourceGuard, request_type: str) -> str:
    """The guard's request resource, e.g. ``<guard id>/deleteResourceGuardProxyRequests/default``."""
    return f"{guard.resource_id}/{request_type}/default"


def request_action(request_type: str) -> str:
    return f"{DP}/resourceGuards/{request_type}/default/action"


def active_grant(principal, guard: ResourceGuard, moment=None) -> AccessRequest | None:
    """The approved, unexpired access request of ``principal`` on ``guard`` (if any)."""
    moment = moment or clock.now()
    return (
        AccessRequest.objects.select_related("decided_by", "role_assignment")
        .filter(guard=guard, requester=principal, state=AccessRequest.State.APPROVED, expires_at__gt=moment)
        .order_by("-expires_at")
        .first()
    )


def pending_request(principal, guard: ResourceGuard) -> AccessRequest | None:
    return (
        AccessRequest.objects.filter(guard=guard, requester=principal, state=AccessRequest.State.PENDING,
                                     created_at__gt=clock.now() - PENDING_REQUEST_LIFETIME)
        .order_by("-created_at")
        .first()
    )


def approvals_for(principal):
    """Pending requests on guards where ``principal`` is an approver (not their own)."""
    return (
        AccessRequest.objects.select_related("guard", "requester", "role")
        .filter(state=AccessRequest.State.PENDING, guard__approvers=principal,
                created_at__gt=clock.now() - PENDING_REQUEST_LIFETIME)
        .exclude(requester=principal)
        .order_by("created_at")
    )


def requests_of(principal):
    return AccessRequest.objects.select_related("guard", "decided_by", "role").filter(requester=principal)


def approvers_label(request: AccessRequest) -> str:
    """Who decided, in words (the activity log and the pages say it the same way)."""
    if request.auto_approved:
        return "Automatic approval (the Resource Guard has no approvers)"
    return request.decided_by.display_name if request.decided_by_id else ""


# --- the MUA guard -----------------------------------------------------------------------------------


def _criticals_named(operation: str, change: dict) -> list[CriticalOperation]:
    named = []
    for action in [change.get("critical_operation"), *(change.get("critical_operations") or [])]:
        c = critical_operation(action) if action else None
        if c is not None and c not in named:
            named.append(c)
    c = critical_operation(operation)
    if c is not None and c.by_action and c not in named:
        named.append(c)
    return named


def _link_check(principal, guard_id: str) -> Refusal | None:
    """Linking a guard needs Reader on it (reference §3.3 step 4)."""
    result = authorize(principal, GUARD_READ, guard_id)
    if result.allowed:
        return None
    return Refusal(
        guard=GUARD_NAME,
        code="LinkedAuthorizationFailed",
        reason=(
            "To protect a vault with a Resource Guard you need Reader on the guard. " + result.message()
        ),
        remedy=(
            "Ask the Resource Guard's owner (the security admin) to give you Reader on the guard in its "
            "Access control (IAM); then link it again."
        ),
        extra={"resource_guard_id": "", "linked_guard": scopes.normalize(guard_id)},
    )


def _use_details(principal, guard, critical, result) -> dict:
    details = {
        "resourceGuard": guard.name,
        "resourceGuardId": guard.resource_id,
        "criticalOperation": critical.action,
    }
    grant = active_grant(principal, guard)
    if grant is not None:
        details.update(
            {
                "accessRequestId": str(grant.pk),
                "requester": grant.requester.display_name if grant.requester_id else "",
                "approvedBy": approvers_label(grant),
                "accessEndsAt": grant.expires_at.isoformat(),
            }
        )
    else:
        details["authorizedBy"] = list(result.granted_by)
    return details


def mua_guard(principal, operation, target, change) -> Refusal | Note | None:
    """Refuse a guard-protected operation on a linked vault unless the caller may act on the guard."""
    change = change or {}
    if operation.lower() == PROXY_WRITE.lower() and change.get("resource_guard_id"):
        return _link_check(principal, change["resource_guard_id"])
    criticals = _criticals_named(operation, change)
    if not criticals:
        return None
    proxy = proxy_for(target_scope(target))
    if proxy is None:
        return None
    guard = proxy.guard
    used = []
    for critical in criticals:
        if not is_protected_by(guard, critical):
            continue
        scope = request_resource_id(guard, critical.request_type)
        result = authorize(principal, request_action(critical.request_type), scope)
        if result.allowed:
            used.append(_use_details(principal, guard, critical, result))
            continue
        name = getattr(principal, "display_name", "anonymous")
        remedy = (
            f"Request access: ask for {BACKUP_MUA_OPERATOR} on the Resource Guard '{guard.name}' for a "
            "limited time; one of its approvers must approve the request."
        )
        if not guard.approvers.exists():
            remedy = (
                f"Request access: ask for {BACKUP_MUA_OPERATOR} on the Resource Guard '{guard.name}' for a "
                "limited time. This guard has no approvers, so the request is approved automatically."
            )
        if guard.description:
            remedy += f" The guard's owner says: “{guard.description}”"
        return Refusal(
            guard=GUARD_NAME,
            code="LinkedAuthorizationFailed",
            reason=(
                f"The operation '{critical.label}' is protected by the Resource Guard '{guard.name}' "
                f"(multi-user authorization) linked to the vault '{proxy.protected_resource_name}'. "
                f"You don't have sufficient permissions on the Resource Guard to perform this operation: "
                f"the client '{name}' with object id '{getattr(principal, 'id', '')}' does not have "
                f"authorization to perform action '{request_action(critical.request_type)}' over scope "
                f"'{scope}'."
            ),
            remedy=remedy,
            extra={
                "resource_guard_id": guard.resource_id,
                "resource_guard_name": guard.name,
                "resource_guard_pk": guard.pk,
                "critical_operation": critical.action,
                "critical_operation_label": critical.label,
                "protected_resource_id": proxy.protected_resource_id,
                "request_resource_id": scope,
            },
        )
    if not used:
        return None
    return Note(GUARD_NAME, used[0] if len(used) == 1 else {"uses": used})


def register_mua_guard() -> None:
    """Called from `SecurityConfig.ready()`."""
    register_guard(GUARD_NAME, mua_guard, order=GUARD_ORDER)
    register_operation_names()


# --- Resource Guard services -------------------------------------------------------------------------


def _guard_id(resource_group_id: str, name: str) -> str:
    return f"{scopes.normalize(resource_group_id)}/providers/{GUARD_TYPE}/{name}"


def _clean_exclusions(exclusions) -> list[str]:
    clean = []
    for action in exclusions or []:
        c = critical_operation(action)
        if c is None:
            raise ValidationError(
                {"vault_critical_operation_exclusions": f"'{action}' is not an operation a Resource Guard protects."}
            )
        if c.mandatory:
            raise ValidationError(
                {
                    "vault_critical_operation_exclusions": (
                        f"'{c.label}' is mandatory: a Resource Guard always protects it and it cannot be "
                        "disabled."
                    )
                }
            )
        if c.action not in clean:
            clean.append(c.action)
    return clean


def _clean_approvers(approvers) -> list[Principal]:
    approvers = list(approvers or [])
    for p in approvers:
        if not isinstance(p, Principal) or p.kind != Principal.Kind.USER:
            raise ValidationError({"approvers": "Approvers must be people (user accounts), not identities."})
    return approvers


def create_resource_guard(
    principal,
    *,
    resource_group_id: str,
    name: str,
    region: str,
    description: str = "",
    exclusions=None,
    approvers=(),
    tags: dict | None = None,
) -> ResourceGuard:
    """Create a Resource Guard (``resourceGuards/write`` at its new id). ``exclusions`` defaults to
    the optional operations that are off on a new guard (Restore, Change policy, Modify encryption
    settings); the mandatory ones can never be excluded."""
    name = (name or "").strip()
    description = (description or "").strip()
    exclusions = DEFAULT_EXCLUSIONS if exclusions is None else exclusions
    target = _guard_id(resource_group_id, name or "-")
    details = {"name": name, "region": region}
    with guarded(principal, GUARD_WRITE, target, details=details) as op:
        errors = {}
        if not name or len(name) > GUARD_NAME_MAX or not GUARD_NAME_RE.match(name):
            errors["name"] = GUARD_NAME_RULE
        elif ResourceGuard.objects.filter(resource_id__iexact=target).exists():
            errors["name"] = (
                f"A Resource Guard named '{name}' already exists in the resource group "
                f"'{target.split('/')[4]}'. Choose another name."
            )
        if not region or not re.fullmatch(r"[a-z0-9]+", region):
            errors["region"] = "Select a region: the guard must be in the same region as the vaults it protects."
        if scopes.level_of(resource_group_id) != "Resource group":
            errors["resource_group"] = "Select a resource group."
        if len(description) > 1000:
            errors["description"] = "Keep the description under 1,000 characters."
        if errors:
            raise ValidationError(errors)
        clean_exclusions = _clean_exclusions(exclusions)
        clean_approvers = _clean_approvers(approvers)
        guard = ResourceGuard.objects.create(
            name=name,
            resource_group_id=scopes.normalize(resource_group_id),
            region=region,
            description=description,
            tags=tags or {},
            vault_critical_operation_exclusions=clean_exclusions,
            created_by=principal if isinstance(principal, Principal) else None,
        )
        guard.approvers.set(clean_approvers)
        op.result_scope = guard.resource_id
        op.details.update(
            {
                "exclusions": clean_exclusions,
                "approvers": [p.display_name for p in clean_approvers],
                "allowAutoApprovals": not clean_approvers,
            }
        )
    return guard


def update_resource_guard(principal, guard: ResourceGuard, *, description=None, exclusions=None, tags=None):
    """Change a guard's description, protected operations (its exclusion list) or tags."""
    change = {}
    if exclusions is not None:
        change["exclusions"] = {"from": list(guard.vault_critical_operation_exclusions), "to": list(exclusions)}
    if description is not None:
        change["description"] = description
    with guarded(principal, GUARD_WRITE, guard, change=change, details=dict(change)):
        row = ResourceGuard.objects.select_for_update().get(pk=guard.pk)
        if exclusions is not None:
            row.vault_critical_operation_exclusions = _clean_exclusions(exclusions)
        if description is not None:
            description = description.strip()
            if len(description) > 1000:
                raise ValidationError({"description": "Keep the description under 1,000 characters."})
            row.description = description
        if tags is not None:
            row.tags = dict(tags)
        row.save()
    guard.refresh_from_db()
    return guard


def set_approvers(principal, guard: ResourceGuard, approvers) -> ResourceGuard:
    """Who approves access requests on this guard. None at all: requests are approved automatically."""
    approvers = list(approvers or [])
    names = [getattr(p, "display_name", str(p)) for p in approvers]
    before = [p.display_name for p in guard.approvers.all()]
    with guarded(principal, GUARD_WRITE, guard, change={"approvers": names},
                 details={"approvers": names, "previous": before, "allowAutoApprovals": not approvers}):
        ResourceGuard.objects.select_for_update().get(pk=guard.pk)
        guard.approvers.set(_clean_approvers(approvers))
    return guard


def delete_resource_guard(principal, guard: ResourceGuard) -> None:
    """Delete a guard, with the role assignments made on it. Refused while vaults are linked."""
    with guarded(principal, GUARD_DELETE, guard, details={"name": guard.name}):
        row = ResourceGuard.objects.select_for_update().get(pk=guard.pk)
        linked = list(row.proxies.values_list("protected_resource_id", flat=True))
        if linked:
            names = ", ".join(sorted(r.rsplit("/", 1)[-1] for r in linked))
            raise ValidationError(
                f"{GUARD_HAS_VAULTS_MESSAGE} Linked vaults: {names}. Remove MUA protection from each "
                "vault first (Properties > Multi-user authorization)."
            )
        from security.services import remove_assignments_of_deleted_scope

        remove_assignments_of_deleted_scope(principal, row.resource_id, cause="The Resource Guard was deleted.")
        row.delete()


# --- linking (vault side) ----------------------------------------------------------------------------


def link_resource_guard(principal, protected, *, guard_id: str, region: str) -> ResourceGuardProxy:
    """Protect a vault with a Resource Guard (``backupResourceGuardProxies/write`` on the vault).

    ``protected`` is the vault (anything with ``resource_id``), ``region`` its region name. Needs
    Reader on the guard (the MUA guard checks it); the guard must be in the vault's region.
    Linking is not itself protected: it only adds protection.
    """
    guard_id = scopes.normalize((guard_id or "").strip())
    vault_id = target_scope(protected)
    change = {"resource_guard_id": guard_id, "region": region}
    with guarded(principal, PROXY_WRITE, protected, change=change, details={"resourceGuardId": guard_id}) as op:
        if not guard_id or guard_id == scopes.ROOT:
            raise ValidationError({"resource_guard_id": "Select a Resource Guard, or paste its ARM ID."})
        guard = ResourceGuard.objects.select_for_update().filter(resource_id__iexact=guard_id).first()
        if guard is None:
            raise ValidationError(
                {
                    "resource_guard_id": (
                        f"No Resource Guard exists with the ID '{guard_id}'. Paste the guard's full ARM ID "
                        "(/subscriptions/…/providers/Microsoft.DataProtection/resourceGuards/<name>)."
                    )
                }
            )
        if guard.region != region:
            raise ValidationError(
                {
                    "resource_guard_id": (
                        f"The Resource Guard '{guard.name}' is in region '{guard.region}' but the vault is in "
                        f"'{region}': a Resource Guard must be in the same region as the vaults it protects."
                    )
                }
            )
        existing = ResourceGuardProxy.objects.select_related("guard").filter(
            protected_resource_id__iexact=vault_id
        ).first()
        if existing is not None:
            raise ValidationError(
                {
                    "resource_guard_id": (
                        f"This vault is already protected by the Resource Guard '{existing.guard.name}'. "
                        "Remove MUA protection first (a protected operation), then link another guard."
                    )
                }
            )
        proxy = ResourceGuardProxy.objects.create(
            protected_resource_id=vault_id,
            guard=guard,
            linked_by=principal if isinstance(principal, Principal) else None,
            linked_at=clock.now(),
        )
        op.result_scope = proxy.resource_id
        op.details.update({"resourceGuard": guard.name, "vault": proxy.protected_resource_name})
    return proxy


def unlink_resource_guard(principal, protected) -> None:
    """Remove MUA protection: ``backupResourceGuardProxies/delete``, a mandatory protected operation.

    Raises the "MUA Disabled" security alert (decision 7).
    """
    from security.services import raise_alert

    vault_id = target_scope(protected)
    current = proxy_for(vault_id)
    details = {"resourceGuard": current.guard.name if current else ""}
    with guarded(principal, PROXY_DELETE, protected, details=details) as op:
        proxy = ResourceGuardProxy.objects.select_for_update().filter(protected_resource_id__iexact=vault_id).first()
        if proxy is None:
            raise ValidationError("This vault is not protected by a Resource Guard: there is nothing to remove.")
        guard_name, vault_name = proxy.guard.name, proxy.protected_resource_name
        op.result_scope = proxy.resource_id
        proxy.delete()
        raise_alert(
            name="MUA Disabled",
            category=Alert.Category.SECURITY,
            severity=Alert.Severity.SEV1,
            resource_id=vault_id,
            description=(
                f"Multi-user authorization was disabled for the Backup vault '{vault_name}' by {principal}: "
                f"the Resource Guard '{guard_name}' no longer protects its critical operations."
            ),
            details={"resourceGuard": guard_name},
        )


def remove_links_of(resource_id: str) -> list[str]:
    """Forget the MUA link of a resource being deleted. Call inside the deleting service's guarded block."""
    rows = ResourceGuardProxy.objects.select_related("guard").filter(protected_resource_id__iexact=resource_id)
    names = [p.guard.name for p in rows]
    rows.delete()
    return names


# --- access requests -----------------------------------------------------------------------------------


@contextlib.contextmanager
def _workflow_step(principal, operation: str, scope: str, *, refusal: Refusal | None, details: dict):
    """Like `guarded`, for the request/approval workflow, which is authorized by the guard's own rules
    (who may read it, who its approvers are), not by RBAC actions: PIM's approvers need no role.

    A refusal is logged and raised as GuardDenied; the block runs in one transaction with its success
    entry; a validation failure is logged after the rollback.
    """
    name = getattr(principal, "display_name", "anonymous")
    if refusal is None:
        # Every registered guard but RBAC still decides (one mechanism: nothing changes state around it).
        decided = evaluate(principal, operation, scope, details, skip=("RBAC",))
        if not decided.allowed:
            refusal = decided.refusal
    if refusal is not None:
        decision = Decision(False, operation, scope, name, refusal)
        record_denial(principal, decision, details)
        raise GuardDenied(decision)
    op = GuardedOperation(principal, operation, scope, Decision(True, operation, scope, name), dict(details))
    try:
        with transaction.atomic():
            yield op
            record(principal, operation, op.result_scope or scope, status=ActivityLogEntry.Status.SUCCEEDED,
                   details=op.details)
    except ValidationError as exc:
        record(principal, operation, scope, status=ActivityLogEntry.Status.FAILED, sub_status="BadRequest",
               message=_validation_text(exc), details=op.details, level=ActivityLogEntry.Level.WARNING)
        raise


def _operator_role() -> RoleDefinition:
    return RoleDefinition.objects.get(name=BACKUP_MUA_OPERATOR)


def _grant(request: AccessRequest, approver, now) -> RoleAssignment:
    assignment = RoleAssignment.objects.create(
        principal=request.requester,
        role=request.role,
        scope=request.guard.resource_id,
        starts_at=now,
        ends_at=now + request.duration,
        description=f"Access request {request.pk}: {request.justification}"[:500],
        created_by=approver if isinstance(approver, Principal) else None,
    )
    request.role_assignment = assignment
    request.decided_at = now
    request.expires_at = assignment.ends_at
    request.state = AccessRequest.State.APPROVED
    return assignment


def _request_details(request: AccessRequest) -> dict:
    details = {
        "accessRequestId": str(request.pk),
        "resourceGuard": request.guard.name,
        "requester": request.requester.display_name,
        "role": request.role.name,
        "justification": request.justification,
        "durationHours": request.duration.total_seconds() / 3600,
    }
    if request.operation:
        details["criticalOperation"] = request.operation
    if request.target_resource_id:
        details["targetResourceId"] = request.target_resource_id
    return details


def duration_label(duration: dt.timedelta) -> str:
    """"1 hour", "8 hours"."""
    hours = duration.total_seconds() / 3600
    return f"{hours:g} hour{'s' if hours != 1 else ''}"


_hours = duration_label


def request_access(
    principal,
    guard: ResourceGuard,
    *,
    justification: str,
    hours,
    operation: str = "",
    target_resource_id: str = "",
) -> AccessRequest:
    """Ask for Backup MUA Operator on ``guard`` for ``hours`` (1, 2, 4 or 8), with a justification.

    Anyone who can read the guard may ask. With no approvers configured the request is approved at
    once (and logged as an automatic approval); otherwise the approvers are notified.
    """
    justification = (justification or "").strip()
    read = authorize(principal, GUARD_READ, guard.resource_id)
    refusal = None
    if not read.allowed:
        refusal = Refusal(
            guard=APPROVALS_GUARD,
            code="AuthorizationFailed",
            reason="Only principals who can read a Resource Guard can request access to it. " + read.message(),
            remedy="Ask the guard's owner (the security admin) for Reader on the Resource Guard.",
        )
    details = {"resourceGuard": guard.name, "requester": getattr(principal, "display_name", ""),
               "justification": justification, "hours": str(hours)}
    with _workflow_step(principal, REQUEST_ACCESS, guard.resource_id, refusal=refusal, details=details) as op:
        errors = {}
        try:
            hours_value = int(str(hours))
        except (TypeError, ValueError):
            hours_value = None
        if hours_value not in ACCESS_DURATIONS_HOURS:
            errors["hours"] = "Choose a duration of " + ", ".join(str(h) for h in ACCESS_DURATIONS_HOURS) + " hours."
        if not justification:
            errors["justification"] = "Enter a justification: the approvers read it to decide."
        elif len(justification) > JUSTIFICATION_MAX:
            errors["justification"] = f"Keep the justification under {JUSTIFICATION_MAX} characters."
        if errors:
            raise ValidationError(errors)
        ResourceGuard.objects.select_for_update().get(pk=guard.pk)  # one request at a time per guard
        now = clock.now()
        grant = active_grant(principal, guard, now)
        if grant is not None:
            raise ValidationError(
                f"You already have {grant.role.name} on the Resource Guard '{guard.name}' until "
                f"{grant.expires_at:%Y-%m-%d %H:%M} UTC: there is no need to ask again."
            )
        if pending_request(principal, guard) is not None:
            raise ValidationError(
                f"You already have a pending request on the Resource Guard '{guard.name}'. Wait for an approver "
                "to decide it, or cancel it in My access requests."
            )
        request = AccessRequest.objects.create(
            guard=guard,
            requester=principal,
            role=_operator_role(),
            justification=justification,
            duration=dt.timedelta(hours=hours_value),
            operation=operation or "",
            target_resource_id=target_resource_id or "",
            created_at=now,
        )
        op.details = _request_details(request)
        approvers = list(guard.approvers.all())
        if not approvers:
            assignment = _grant(request, None, now)
            request.auto_approved = True
            request.decision_comment = "Approved automatically: the Resource Guard has no approvers."
            request.save()
            op.details.update({"state": request.state, "approvedBy": approvers_label(request),
                               "assignmentId": str(assignment.pk), "accessEndsAt": request.expires_at.isoformat()})
            from security.services import system_principal

            record(system_principal(), APPROVE_REQUEST, guard.resource_id, status=ActivityLogEntry.Status.SUCCEEDED,
                   message=f"{request.requester.display_name}'s request was approved automatically.",
                   details={**_request_details(request), "approvedBy": approvers_label(request),
                            "assignmentId": str(assignment.pk), "accessEndsAt": request.expires_at.isoformat(),
                            "warning": AUTO_APPROVAL_WARNING})
            _notify(principal, title=f"Access to Resource Guard '{guard.name}' approved automatically",
                    message=f"You hold {request.role.name} on '{guard.name}' for {_hours(request.duration)}, until "
                            f"{request.expires_at:%Y-%m-%d %H:%M} UTC (the guard has no approvers).",
                    resource_id=guard.resource_id, page="my-requests", state=AccessRequest.State.APPROVED)
        else:
            op.details["state"] = request.state
            op.details["approvers"] = [a.display_name for a in approvers]
            _notify(principal, title=f"Access request on Resource Guard '{guard.name}' sent for approval",
                    message=f"You asked for {request.role.name} for {_hours(request.duration)}; "
                            f"{', '.join(a.display_name for a in approvers)} can approve it.",
                    resource_id=guard.resource_id, page="my-requests", state=AccessRequest.State.PENDING)
            for approver in approvers:
                if approver.pk != principal.pk:
                    _notify(approver, title=f"Access request on Resource Guard '{guard.name}' waiting for your approval",
                            message=f"{principal.display_name} asks for {request.role.name} for "
                                    f"{_hours(request.duration)}: “{justification}”",
                            resource_id=guard.resource_id, page="approvals", state=AccessRequest.State.PENDING)
    return request


def _decision_refusal(principal, request: AccessRequest, verb: str) -> Refusal | None:
    guard = request.guard
    if request.requester_id == getattr(principal, "pk", None):
        return Refusal(
            guard=APPROVALS_GUARD,
            code="SelfApprovalNotAllowed",
            reason=f"Nobody approves their own request: {principal.display_name} cannot {verb} their own "
                   f"access request on the Resource Guard '{guard.name}'.",
            remedy="Another approver of the Resource Guard must decide it.",
        )
    approvers = list(guard.approvers.all())
    if not any(a.pk == getattr(principal, "pk", None) for a in approvers):
        names = ", ".join(a.display_name for a in approvers) or "nobody"
        return Refusal(
            guard=APPROVALS_GUARD,
            code="ApproverRequired",
            reason=f"{getattr(principal, 'display_name', 'anonymous')} is not an approver of the Resource Guard "
                   f"'{guard.name}': only its approvers ({names}) can {verb} access requests on it.",
            remedy="Ask one of the guard's approvers, or the guard's owner to make you an approver.",
        )
    return None


def _load_pending(request: AccessRequest, now) -> AccessRequest:
    row = AccessRequest.objects.select_for_update().get(pk=request.pk)
    if row.state != AccessRequest.State.PENDING:
        raise ValidationError(f"This request is no longer pending: it is {row.get_state_display().lower()}.")
    if row.created_at + PENDING_REQUEST_LIFETIME <= now:
        raise ValidationError("This request expired: nobody decided it within 24 hours. The requester can ask again.")
    return row


def approve_request(principal, request: AccessRequest, *, comment: str) -> AccessRequest:
    """Approve: the requester holds Backup MUA Operator on the guard from now for the asked duration."""
    comment = (comment or "").strip()
    details = {**_request_details(request), "approvedBy": getattr(principal, "display_name", ""), "comment": comment}
    refusal = _decision_refusal(principal, request, "approve")
    with _workflow_step(principal, APPROVE_REQUEST, request.guard.resource_id, refusal=refusal, details=details) as op:
        if not comment:
            raise ValidationError({"comment": "Enter a comment: the requester sees it with your decision."})
        now = clock.now()
        row = _load_pending(request, now)
        assignment = _grant(row, principal, now)
        row.decided_by = principal
        row.decision_comment = comment
        row.save()
        op.details.update({"assignmentId": str(assignment.pk), "accessStartsAt": now.isoformat(),
                           "accessEndsAt": row.expires_at.isoformat()})
        _notify(row.requester, title=f"Access to Resource Guard '{row.guard.name}' approved",
                message=f"{principal.display_name} approved your request: you hold {row.role.name} on "
                        f"'{row.guard.name}' until {row.expires_at:%Y-%m-%d %H:%M} UTC. “{comment}”",
                resource_id=row.guard.resource_id, page="my-requests", state=AccessRequest.State.APPROVED)
    request.refresh_from_db()
    return request


def reject_request(principal, request: AccessRequest, *, comment: str) -> AccessRequest:
    comment = (comment or "").strip()
    details = {**_request_details(request), "rejectedBy": getattr(principal, "display_name", ""), "comment": comment}
    refusal = _decision_refusal(principal, request, "reject")
    with _workflow_step(principal, REJECT_REQUEST, request.guard.resource_id, refusal=refusal, details=details):
        if not comment:
            raise ValidationError({"comment": "Enter a comment: tell the requester why."})
        now = clock.now()
        row = _load_pending(request, now)
        row.state = AccessRequest.State.REJECTED
        row.decided_by = principal
        row.decided_at = now
        row.decision_comment = comment
        row.save()
        _notify(row.requester, title=f"Access to Resource Guard '{row.guard.name}' rejected",
                message=f"{principal.display_name} rejected your request: “{comment}”",
                resource_id=row.guard.resource_id, page="my-requests", state=AccessRequest.State.REJECTED)
    request.refresh_from_db()
    return request


def cancel_request(principal, request: AccessRequest) -> AccessRequest:
    """The requester withdraws a pending request."""
    refusal = None
    if request.requester_id != getattr(principal, "pk", None):
        refusal = Refusal(
            guard=APPROVALS_GUARD,
            code="AuthorizationFailed",
            reason="Only the requester can cancel an access request.",
        )
    with _workflow_step(principal, CANCEL_REQUEST, request.guard.resource_id, refusal=refusal,
                        details=_request_details(request)):
        row = AccessRequest.objects.select_for_update().get(pk=request.pk)
        if row.state != AccessRequest.State.PENDING:
            raise ValidationError(f"Only a pending request can be cancelled; this one is {row.get_state_display().lower()}.")
        row.state = AccessRequest.State.CANCELLED
        row.decided_at = clock.now()
        row.closed_at = row.decided_at
        row.save()
    request.refresh_from_db()
    return request


def close_expired_grants(now=None) -> int:
    """Mark ended grants Expired (closing their role assignments) and stale pending requests Expired.

    Run every minute by Celery beat, and by the lab clock before it moves back (`clock.settle`). The
    grant already counts as absent the moment it ends (the role assignment's ``ends_at``); this
    records the end (``closed_at``), which no later clock reading undoes, and logs it. Each row is
    claimed by a compare-and-set update, so two runs at once log each expiry once.
    """
    from security.services import system_principal

    now = now or clock.now()
    system = system_principal()
    closed = 0
    ended = AccessRequest.objects.select_related("guard", "requester", "decided_by", "role").filter(
        state=AccessRequest.State.APPROVED, expires_at__lte=now
    )
    for request in ended:
        with transaction.atomic():
            claimed = AccessRequest.objects.filter(pk=request.pk, state=AccessRequest.State.APPROVED).update(
                state=AccessRequest.State.EXPIRED, closed_at=now
            )
            if claimed != 1:
                continue
            if request.role_assignment_id:
                RoleAssignment.objects.filter(pk=request.role_assignment_id, closed_at__isnull=True).update(closed_at=now)
            record(
                system,
                EXPIRE_ACCESS,
                request.guard.resource_id,
                status=ActivityLogEntry.Status.SUCCEEDED,
                message=(
                    f"{request.requester.display_name}'s {request.role.name} access on the Resource Guard "
                    f"'{request.guard.name}' (approved by {approvers_label(request)}) ended at "
                    f"{request.expires_at:%Y-%m-%d %H:%M} UTC."
                ),
                details={**_request_details(request), "approvedBy": approvers_label(request),
                         "accessEndedAt": request.expires_at.isoformat(),
                         "assignmentId": str(request.role_assignment_id or "")},
            )
            _notify(request.requester, title=f"Access to Resource Guard '{request.guard.name}' expired",
                    message=f"Your {request.role.name} access on '{request.guard.name}' ended.",
                    resource_id=request.guard.resource_id, page="my-requests", state=AccessRequest.State.EXPIRED)
            closed += 1
    stale = AccessRequest.objects.select_related("guard", "requester", "role").filter(
        state=AccessRequest.State.PENDING, created_at__lte=now - PENDING_REQUEST_LIFETIME
    )
    for request in stale:
        with transaction.atomic():
            claimed = AccessRequest.objects.filter(pk=request.pk, state=AccessRequest.State.PENDING).update(
                state=AccessRequest.State.EXPIRED, closed_at=now
            )
            if claimed != 1:
                continue
            record(
                system,
                EXPIRE_ACCESS,
                request.guard.resource_id,
                status=ActivityLogEntry.Status.SUCCEEDED,
                message=f"{request.requester.display_name}'s access request on '{request.guard.name}' expired: "
                        "no approver decided it within 24 hours.",
                details={**_request_details(request), "approvedBy": "", "neverDecided": True},
            )
            closed += 1
    # Any other time-bound role assignment that has ended: recorded closed, so it stays ended.
    closed += RoleAssignment.objects.filter(ends_at__lte=now, closed_at__isnull=True).update(closed_at=now)
    return closed


def remaining(request: AccessRequest, moment=None) -> dt.timedelta | None:
    """Time left on an approved grant (None when not active)."""
    moment = moment or clock.now()
    if request.state != AccessRequest.State.APPROVED or not request.expires_at or request.expires_at <= moment:
        return None
    return request.expires_at - moment
