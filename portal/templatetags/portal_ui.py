"""Small presentation helpers for the shell's templates: scope names, breadcrumbs, statuses.

Everything here only reads; nothing decides access (the views and services do that).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from django import template
from django.utils.safestring import mark_safe

from portal import resources
from security import scopes
from security.audit import operation_name as _operation_name

register = template.Library()


@dataclass(frozen=True)
class ScopeInfo:
    resource_id: str
    name: str  # "rg-backup-lab", "Contoso Lab", "Root (all subscriptions)"
    level: str  # "Subscription", "Resource group", "Backup vault", "Root"
    url: str  # the resource's page, "" when it has none (or no longer exists)


def describe_scope(resource_id: str) -> ScopeInfo:
    """A readable name, kind and page for a resource id (one query at most)."""
    scope = scopes.normalize(resource_id)
    if scope == scopes.ROOT:
        return ScopeInfo(scope, "All subscriptions", "Root scope", "")
    rtype = resources.type_of(scope)
    obj = resources.resolve(scope) if rtype else None
    if obj is not None:
        return ScopeInfo(obj.resource_id, str(obj), rtype.label, rtype.url_for(obj))
    label = rtype.label if rtype else scopes.level_of(scope)
    return ScopeInfo(scope, scope.rstrip("/").rsplit("/", 1)[-1], label, "")


def describe_scopes(resource_ids) -> dict[str, ScopeInfo]:
    """``describe_scope`` for many ids, each distinct id resolved once (keys lower-cased)."""
    found: dict[str, ScopeInfo] = {}
    for rid in resource_ids:
        key = scopes.normalize(rid).lower()
        if key not in found:
            found[key] = describe_scope(rid)
    return found


def resource_trail(resource_id: str) -> list[ScopeInfo]:
    """Breadcrumb steps above a resource (not the resource itself), outermost first."""
    scope = scopes.normalize(resource_id)
    above = [s for s in scopes.ancestors(scope) if s != scopes.ROOT and s.lower() != scope.lower()]
    level = scopes.level_of(scope)
    if level == "Subscription":
        return []
    if level == "Resource group":
        return []
    # A resource: its resource group (and parents, for nested resources), not the subscription.
    return [describe_scope(s) for s in reversed(above) if scopes.level_of(s) != "Subscription"]


@register.filter
def scope_info(resource_id):
    return describe_scope(resource_id or "/")


@register.simple_tag
def trail_for(resource_id):
    return resource_trail(resource_id or "/")


@register.filter
def operation_label(action: str) -> str:
    return _operation_name(action or "")


@register.filter
def pretty_json(value) -> str:
    return json.dumps(value or {}, indent=2, sort_keys=True, default=str)


STATUS_CLASSES = {
    "succeeded": "status-ok",
    "failed": "status-failed",
    "inprogress": "status-running",
    "in progress": "status-running",
    "new": "status-warn",
    "acknowledged": "status-info",
    "closed": "status-ok",
    "pending": "status-warn",
    "approved": "status-ok",
    "rejected": "status-failed",
    "expired": "status-info",
}


@register.filter
def status_class(value: str) -> str:
    return STATUS_CLASSES.get(str(value or "").lower(), "status-info")


SEVERITY_CLASSES = {"Sev0": "status-failed", "Sev1": "status-failed", "Sev2": "status-warn"}


@register.filter
def severity_class(value: str) -> str:
    return SEVERITY_CLASSES.get(str(value or ""), "status-info")


@register.simple_tag(takes_context=True)
def querystring_with(context, **changes):
    """The current query string with some keys replaced (None/'' removes a key); keeps 'page' out."""
    request = context["request"]
    params = request.GET.copy()
    params.pop("page", None)
    for key, value in changes.items():
        if value in (None, ""):
            params.pop(key, None)
        else:
            params[key] = value
    encoded = params.urlencode()
    return mark_safe("?" + encoded if encoded else "?")


GUARD_LABELS = {"RBAC": "Role-based access control (RBAC)", "MUA": "Multi-user authorization (Resource Guard)",
                "MUA approvals": "the Resource Guard's approval rules", "Immutability": "Immutable vault",
                "Vault deletion rules": "the vault deletion rules"}


@register.filter
def guard_label(name: str) -> str:
    return GUARD_LABELS.get(name, name or "A guard")


@register.simple_tag
def roles_allowing(action: str, limit: int = 8) -> list[str]:
    """Names of the roles whose actions include ``action`` (what an admin could assign)."""
    from security.models import RoleDefinition
    from security.rbac import role_allows

    names = [role.name for role in RoleDefinition.objects.all() if role_allows(role, action)]
    return names[:limit]


@register.simple_tag(takes_context=True)
def back_url(context, fallback: str = "/") -> str:
    """Where "Go back" leads: the referring page of this site, else ``fallback``."""
    from django.utils.http import url_has_allowed_host_and_scheme

    request = context.get("request")
    referer = request.META.get("HTTP_REFERER", "") if request is not None else ""
    if referer and url_has_allowed_host_and_scheme(
        referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return referer
    return fallback


@register.filter
def took(started, ended) -> str:
    """How long something ran, in words: "less than a minute", "3 minutes", "1 hour, 5 minutes"."""
    from django.utils.timesince import timesince

    if not started or not ended:
        return ""
    if (ended - started).total_seconds() < 60:
        return "less than a minute"
    return timesince(started, ended, depth=2)
