"""The guard registry and `evaluate`, the one decision every service asks for.

A guard is a function ``guard(principal, operation, target, change) -> Refusal | None``. `evaluate`
runs RBAC first, then every registered guard in order (MUA, immutability, soft delete, deletion
rules, ...) and returns the first refusal, or an allowing decision. Services act on the decision; a
"what would happen if I..." preview calls the same function without acting. Upper apps register
their guards when they load, so `security` never imports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from security import operations as ops
from security.conditions import AssignmentRequest
from security.rbac import authorize
from security.scopes import ROOT, normalize


@dataclass(frozen=True)
class Refusal:
    guard: str  # "RBAC", "MUA", "Immutability", "Soft delete", "Deletion rules", ...
    code: str  # Azure-style error code, e.g. "AuthorizationFailed"
    reason: str  # what blocked it, as the user will read it
    remedy: str = ""  # what would lift it
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Note:
    """What a guard that *allows* wants the activity log to say (e.g. which MUA grant was used).

    A guard may return a Note instead of None; `evaluate` keeps going and the allowing Decision
    carries the notes, which `security.audit.guarded` writes into the operation's entry.
    """

    guard: str
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    operation: str
    scope: str
    principal_name: str
    refusal: Refusal | None = None
    notes: tuple = ()

    @property
    def guard(self) -> str:
        return self.refusal.guard if self.refusal else ""

    @property
    def code(self) -> str:
        return self.refusal.code if self.refusal else ""

    @property
    def reason(self) -> str:
        return self.refusal.reason if self.refusal else ""

    @property
    def remedy(self) -> str:
        return self.refusal.remedy if self.refusal else ""


class GuardDenied(Exception):
    """A guard refused an operation. Carries the decision for the page to explain."""

    def __init__(self, decision: Decision):
        self.decision = decision
        super().__init__(decision.reason)


GuardFn = Callable[[Any, str, Any, dict], "Refusal | Note | None"]


@dataclass(frozen=True)
class _Registered:
    name: str
    order: int
    fn: GuardFn


_registry: dict[str, _Registered] = {}


def register_guard(name: str, fn: GuardFn, *, order: int) -> None:
    """Register (or replace) a guard. Lower ``order`` runs first; RBAC is 0."""
    _registry[name] = _Registered(name, order, fn)


def unregister_guard(name: str) -> None:
    _registry.pop(name, None)


def registered_guards() -> list[str]:
    return [g.name for g in sorted(_registry.values(), key=lambda g: g.order)]


def target_scope(target) -> str:
    """A resource id for ``target``: a string, or an object with ``resource_id``."""
    if isinstance(target, str):
        return normalize(target)
    resource_id = getattr(target, "resource_id", None)
    if not resource_id:
        raise TypeError(f"Cannot tell the scope of {target!r}: give a resource id.")
    return normalize(resource_id)


def rbac_guard(principal, operation, target, change) -> Refusal | None:
    scope = target_scope(target)
    result = authorize(principal, operation, scope, data_action=bool(change.get("data_action")),
                       request=AssignmentRequest.from_change(change))
    if result.allowed or _owner_may(principal, operation, target):
        return None
    if result.unfulfilled:
        return Refusal(
            guard="RBAC",
            code="AuthorizationFailed",
            reason=result.message(),
            remedy=_condition_remedy(result, operation),
            extra={"conditions": [label for label, _ in result.unfulfilled]},
        )
    return Refusal(
        guard="RBAC",
        code="AuthorizationFailed",
        reason=result.message(),
        remedy=(
            "Ask someone who can assign roles at this scope (Owner, User Access Administrator or "
            "Role Based Access Control Administrator) for a role that includes "
            f"'{operation}'."
        ),
    )


def _owner_may(principal, operation: str, target) -> bool:
    """Entra ID's app owners: the principal who registered an app (its ``owned_by``) may read it, manage its
    secrets and delete it without a directory role, while they may still register applications as owners."""
    owned_by = getattr(target, "owned_by", None)
    if owned_by is None or operation.lower() not in _OWNER_ACTIONS or not owned_by(principal):
        return False
    return authorize(principal, ops.APPLICATION_CREATE_AS_OWNER, ROOT).allowed


_OWNER_ACTIONS = frozenset(a.lower() for a in ops.APPLICATION_OWNER_ACTIONS)


def _condition_remedy(result, operation: str) -> str:
    """What the conditions that refused allow, in words, and who could do the rest."""
    from security.models import RoleDefinition

    ids = {r for _, condition in result.unfulfilled for r in condition.role_ids}
    names = {str(pk).lower(): name for pk, name in RoleDefinition.objects.filter(pk__in=ids).values_list("pk", "name")}
    allowed = " ".join(f"Your {label.replace(' @ ', ' assignment at ', 1)} carries a condition: "
                       f"{condition.describe(names)}" for label, condition in result.unfulfilled)
    return (f"{allowed} This request is outside it. Ask an Owner (or a delegate whose condition allows it) to "
            f"make this change, or to change the condition of your role assignment ('{operation}').")


def register_builtin_guards() -> None:
    register_guard("RBAC", rbac_guard, order=0)


def evaluate(principal, operation: str, target, change: dict | None = None, *, skip=()) -> Decision:
    """Decide whether ``principal`` may perform ``operation`` on ``target`` with ``change``.

    ``change`` describes what the operation would do (e.g. ``{"retention_days": 7}``) for guards
    that judge the change, not only the operation. ``skip`` names guards that do not apply (the MUA
    request/approval workflow is authorized by the Resource Guard's own rules instead of RBAC, but
    every other guard still decides).
    """
    change = change or {}
    scope = target_scope(target)
    name = getattr(principal, "display_name", "anonymous")
    notes = []
    for guard in sorted(_registry.values(), key=lambda g: g.order):
        if guard.name in skip:
            continue
        result = guard.fn(principal, operation, target, change)
        if isinstance(result, Note):
            notes.append(result)
        elif result is not None:
            return Decision(False, operation, scope, name, result)
    return Decision(True, operation, scope, name, notes=tuple(notes))
