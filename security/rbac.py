"""Role-based access control: the single check `authorize`, and `visible_to` for lists.

An action is allowed when some role assigned to the principal, at the scope or above it and in force
now, lists an action pattern that matches it and none of that role's notActions match it. Patterns use
`*` as a wildcard and compare case-insensitively, as Azure does.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from django.db.models import Q

from security import clock
from security.scopes import ROOT, ancestors, covers, normalize


@functools.lru_cache(maxsize=4096)
def _pattern(pattern: str) -> re.Pattern:
    return re.compile("^" + ".*".join(re.escape(p) for p in pattern.split("*")) + "$", re.I)


def action_matches(pattern: str, action: str) -> bool:
    return bool(_pattern(pattern).match(action))


def role_allows(role, action: str, *, data_action: bool = False) -> bool:
    allowed, denied = (
        (role.data_actions, role.not_data_actions) if data_action else (role.actions, role.not_actions)
    )
    return any(action_matches(p, action) for p in allowed) and not any(
        action_matches(p, action) for p in denied
    )


def active_assignments(principal, moment=None):
    from security.models import RoleAssignment

    moment = moment or clock.now()
    return RoleAssignment.objects.active_at(moment).filter(principal=principal).select_related("role")


@dataclass(frozen=True)
class Authorization:
    allowed: bool
    principal_name: str
    principal_id: str
    action: str
    scope: str
    granted_by: tuple[str, ...] = ()  # "Role @ scope" of the assignments that allow it

    def message(self) -> str:
        return authorization_failed_message(self.principal_name, self.principal_id, self.action, self.scope)


def authorization_failed_message(principal_name, principal_id, action, scope) -> str:
    return (
        f"The client '{principal_name}' with object id '{principal_id}' does not have "
        f"authorization to perform action '{action}' over scope '{scope}' or the scope is "
        f"invalid. If access was recently granted, please refresh your credentials."
    )


def authorize(principal, action: str, scope: str, *, data_action: bool = False) -> Authorization:
    scope = normalize(scope)
    name = getattr(principal, "display_name", "anonymous")
    pid = str(getattr(principal, "id", ""))
    if principal is None or not getattr(principal, "enabled", False):
        return Authorization(False, name, pid, action, scope)
    scopes = {s.lower() for s in ancestors(scope)}
    grants = tuple(
        f"{a.role.name} @ {a.scope}"
        for a in active_assignments(principal)
        if normalize(a.scope).lower() in scopes and role_allows(a.role, action, data_action=data_action)
    )
    return Authorization(bool(grants), name, pid, action, scope, grants)


def is_allowed(principal, action: str, scope: str, **kwargs) -> bool:
    return authorize(principal, action, scope, **kwargs).allowed


@dataclass(frozen=True)
class ScopeSet:
    """The scopes at which a principal holds an action; turns into ORM filters on resource ids."""

    scopes: tuple[str, ...]

    @property
    def everything(self) -> bool:
        return ROOT in self.scopes

    def covers(self, resource_id: str) -> bool:
        return any(covers(s, resource_id) for s in self.scopes)

    def q(self, field: str = "resource_id", *, include_ancestors: bool = False) -> Q:
        """A filter for rows whose ``field`` lies at or below one of the scopes.

        With ``include_ancestors`` rows above a scope also match (a subscription is listed to
        someone who holds a role only on one of its resource groups, as in Azure).
        """
        if self.everything:
            return Q()
        if not self.scopes:
            return Q(pk__in=[])
        query = Q()
        for scope in self.scopes:
            query |= Q(**{f"{field}__iexact": scope}) | Q(**{f"{field}__istartswith": scope + "/"})
            if include_ancestors:
                query |= Q(**{f"{field}__in": ancestors(scope)})
        return query


def visible_to(principal, action: str, *, data_action: bool = False) -> ScopeSet:
    """Every scope at which ``principal`` may perform ``action`` (read actions, for lists)."""
    if principal is None or not getattr(principal, "enabled", False):
        return ScopeSet(())
    scopes = sorted(
        {
            normalize(a.scope)
            for a in active_assignments(principal)
            if role_allows(a.role, action, data_action=data_action)
        }
    )
    return ScopeSet(tuple(scopes))


def holds_any_role_related_to(principal, scope: str) -> bool:
    """True when the principal holds any role at, above or below ``scope``.

    Azure lists a subscription to anyone with a role somewhere inside it; pickers use this.
    """
    return any(
        covers(a.scope, scope) or covers(scope, a.scope) for a in active_assignments(principal)
    )
