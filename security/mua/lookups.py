"""Reads: which vault a resource lies in, its MUA link, the guards a principal sees, grants and requests."""

from __future__ import annotations

import datetime as dt
import re

from django.db.models import Exists, OuterRef

from security import clock, scopes
from security.models import AccessRequest, ResourceGuard, ResourceGuardProxy
from security.mua.rules import PENDING_REQUEST_LIFETIME
from security.operations import GUARD_READ, VAULT_TYPE
from security.rbac import visible_to

_VAULT_ID_RE = re.compile(
    rf"^(/subscriptions/[^/]+/resourceGroups/[^/]+/providers/{re.escape(VAULT_TYPE)}/[^/]+)", re.I
)


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


def is_linked_expression(vault_id_field: str = "resource_id") -> Exists:
    """`is_linked` as a subquery a list of vaults is annotated with (one query for the page, not one per
    vault); ``vault_id_field`` names the vault's resource id in the outer query."""
    return Exists(ResourceGuardProxy.objects.filter(protected_resource_id__iexact=OuterRef(vault_id_field)))


def guards_visible_to(principal):
    """Resource Guards the principal may read (every guard list and picker starts here)."""
    return ResourceGuard.objects.filter(visible_to(principal, GUARD_READ).q("resource_id")).prefetch_related("approvers")


def guard_by_id(resource_id: str) -> ResourceGuard | None:
    return ResourceGuard.objects.filter(resource_id__iexact=scopes.normalize(resource_id)).first()


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
    return (AccessRequest.objects.select_related("guard", "decided_by", "role", "role_played_by")
            .filter(requester=principal))


def approvers_label(request: AccessRequest) -> str:
    """Who decided, in words (the activity log and the pages say it the same way)."""
    if request.auto_approved:
        return "Automatic approval (the Resource Guard has no approvers)"
    if not request.decided_by_id:
        return ""
    if request.role_played_by_id:
        return f"{request.decided_by.display_name} (role-played by {request.role_played_by.display_name})"
    return request.decided_by.display_name


def remaining(request: AccessRequest, moment=None) -> dt.timedelta | None:
    """Time left on an approved grant (None when not active)."""
    moment = moment or clock.now()
    if request.state != AccessRequest.State.APPROVED or not request.expires_at or request.expires_at <= moment:
        return None
    return request.expires_at - moment
