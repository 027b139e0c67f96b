"""Role-based access control: the single check `authorize`, and `visible_to` for lists.

An action is allowed when some role assigned to the principal, at the scope or above it and in force
now, lists an action pattern that matches it and none of that role's notActions match it. Patterns use
`*` as a wildcard and compare case-insensitively, as Azure does.

An assignment may carry a condition (`security.conditions`: Azure's "constrain roles" delegation). For
the actions the condition constrains (adding and removing role assignments) that assignment counts only
when the request — the role being assigned or removed and the assignee's type — fulfils it; an
unconditioned grant (Owner's ``*``) is unaffected. Without a request to judge, a condition is not
fulfilled (Azure's condition reads attributes of the request: none, no access).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import re
from dataclasses import dataclass

from django.db.models import Q

from security import clock
from security.operations import DIRECTORY
from security.conditions import AssignmentRequest, Condition, parse_stored
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


def reaches_resources(role) -> bool:
    """Whether ``role`` is about Azure resources: it has an action (or notAction) outside the directory. A role of
    data actions only (Lab Trainee) or of Entra ID's directory actions (``Microsoft.Directory/...``: Lab Trainee's
    ``applications/createAsOwner``) shows no subscription, no resource and no activity log, as in Azure, where
    Entra's roles are not Azure RBAC's."""
    directory = DIRECTORY.lower() + "/"
    return any(not p.lower().startswith(directory) for p in (*role.actions, *role.not_actions))


def active_assignments(principal, moment=None):
    from security.models import RoleAssignment

    moment = moment or clock.now()
    return RoleAssignment.objects.active_at(moment).filter(principal=principal).select_related("role")


# A page asks `authorize`/`visible_to` a dozen times (navigation, lists, buttons); inside `reading()` the
# principal's assignments are read once. Only a request that changes nothing reads this way (GET and HEAD:
# portal.middleware), so no assignment can change under it; the next request reads them afresh.
_reading: contextvars.ContextVar[dict | None] = contextvars.ContextVar("rbac_reading", default=None)


@contextlib.contextmanager
def reading():
    token = _reading.set({})
    try:
        yield
    finally:
        _reading.reset(token)


def _assignments(principal) -> list:
    cache = _reading.get()
    if cache is None:
        return list(active_assignments(principal))
    if principal.pk not in cache:
        cache[principal.pk] = list(active_assignments(principal))
    return cache[principal.pk]


@dataclass(frozen=True)
class Authorization:
    allowed: bool
    principal_name: str
    principal_id: str
    action: str
    scope: str
    granted_by: tuple[str, ...] = ()  # "Role @ scope" of the assignments that allow it
    # Assignments that include the action but whose condition the request did not fulfil:
    # ("Role @ scope", Condition) pairs.
    unfulfilled: tuple[tuple[str, Condition], ...] = ()

    @property
    def condition_not_fulfilled(self) -> bool:
        return not self.allowed and bool(self.unfulfilled)

    def message(self) -> str:
        return authorization_failed_message(self.principal_name, self.principal_id, self.action, self.scope,
                                            abac=bool(self.unfulfilled))


def authorization_failed_message(principal_name, principal_id, action, scope, *, abac: bool = False) -> str:
    """Azure's AuthorizationFailed text; with ``abac``, the wording Azure uses when a role assignment
    condition may be what refused it."""
    refused = "does not have authorization or an ABAC condition not fulfilled" if abac else "does not have authorization"
    return (
        f"The client '{principal_name}' with object id '{principal_id}' {refused} "
        f"to perform action '{action}' over scope '{scope}' or the scope is "
        f"invalid. If access was recently granted, please refresh your credentials."
    )


def authorize(
    principal, action: str, scope: str, *, data_action: bool = False, request: AssignmentRequest | None = None
) -> Authorization:
    """Whether ``principal`` may perform ``action`` at ``scope``. ``request`` is what a role assignment
    condition judges (the role being assigned or removed, the assignee's type); see the module docstring."""
    scope = normalize(scope)
    name = getattr(principal, "display_name", "anonymous")
    pid = str(getattr(principal, "id", ""))
    if principal is None or not getattr(principal, "enabled", False):
        return Authorization(False, name, pid, action, scope)
    scopes = {s.lower() for s in ancestors(scope)}
    grants, unfulfilled = [], []
    for a in _assignments(principal):
        if normalize(a.scope).lower() not in scopes or not role_allows(a.role, action, data_action=data_action):
            continue
        label = f"{a.role.name} @ {a.scope}"
        condition = None if data_action else parse_stored(a.condition)
        if condition is None or not condition.constrains(action):
            grants.append(label)
        elif condition.allows(request):
            grants.append(f"{label} (condition fulfilled)")
        else:
            unfulfilled.append((label, condition))
    return Authorization(bool(grants), name, pid, action, scope, tuple(grants), tuple(unfulfilled))


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
            for a in _assignments(principal)
            if role_allows(a.role, action, data_action=data_action)
        }
    )
    return ScopeSet(tuple(scopes))


def holds_any_role_related_to(principal, scope: str) -> bool:
    """True when the principal holds any role at, above or below ``scope``.

    Azure lists a subscription to anyone with a role somewhere inside it; pickers use this.
    """
    return any(
        covers(a.scope, scope) or covers(scope, a.scope) for a in _assignments(principal)
    )
