"""The MUA guard (registered with `security.guards` as "MUA", order 10).

It refuses a guard-protected operation on a linked vault unless the caller is authorized on the guard's
request resource, and it checks that whoever links a guard to a vault may read the guard. The vault is
found from the target's resource id, so an instance, a policy or a recovery point of a linked vault is
covered too.
"""

from __future__ import annotations

from security import scopes
from security.guards import Note, Refusal, register_guard, target_scope
from security.models import ResourceGuard, ResourceGuardProxy
from security.mua.lookups import active_grant, approvers_label, proxy_for
from security.mua.rules import (
    GUARD_NAME,
    GUARD_ORDER,
    CriticalOperation,
    critical_operation,
    is_protected_by,
    request_resource_id,
)
from security.operations import GUARD_READ, PROXY_WRITE, guard_request_action
from security.rbac import authorize
from security.roles import BACKUP_MUA_OPERATOR


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


def _request_access_remedy(guard: ResourceGuard) -> str:
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
    return remedy


def _protected_refusal(principal, proxy: ResourceGuardProxy, critical: CriticalOperation, scope: str) -> Refusal:
    guard = proxy.guard
    name = getattr(principal, "display_name", "anonymous")
    return Refusal(
        guard=GUARD_NAME,
        code="LinkedAuthorizationFailed",
        reason=(
            f"The operation '{critical.label}' is protected by the Resource Guard '{guard.name}' "
            f"(multi-user authorization) linked to the vault '{proxy.protected_resource_name}'. "
            f"You don't have sufficient permissions on the Resource Guard to perform this operation: "
            f"the client '{name}' with object id '{getattr(principal, 'id', '')}' does not have "
            f"authorization to perform action '{guard_request_action(critical.request_type)}' over scope "
            f"'{scope}'."
        ),
        remedy=_request_access_remedy(guard),
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
        result = authorize(principal, guard_request_action(critical.request_type), scope)
        if not result.allowed:
            return _protected_refusal(principal, proxy, critical, scope)
        used.append(_use_details(principal, guard, critical, result))
    if not used:
        return None
    return Note(GUARD_NAME, used[0] if len(used) == 1 else {"uses": used})


def register() -> None:
    """Called from `SecurityConfig.ready()`."""
    register_guard(GUARD_NAME, mua_guard, order=GUARD_ORDER)
