"""Role assignment conditions: Azure's "constrain roles" delegation (Azure ABAC, condition version 2.0).

An assignment of Role Based Access Control Administrator or User Access Administrator may carry a
condition that limits which role assignments its holder may add (``roleAssignments/write``) and remove
(``roleAssignments/delete``): only the roles it names ("Constrain roles"), optionally only to the principal
types it names ("Constrain roles and principal types"), or every role except the ones it names ("Allow all
except specific roles", which the portal's recommended choice uses for the privileged administrator
roles). It is kept as structured data on the assignment:

    {"kind": "allowRoles" | "excludeRoles",
     "roleDefinitionIds": ["5e467623-…", …],
     "principalTypes": ["ServicePrincipal"],     # empty: any type of principal
     "actions": ["write", "delete"]}             # the actions it constrains

`Condition.render` writes the expression Azure shows for it (the Code view of the condition editor);
`Condition.allows` judges one request: the role being assigned or removed and the assignee's type (for a
write, Azure's ``@Request`` attributes; for a delete, the ``@Resource`` attributes of the assignment being
removed). An action the condition does not constrain is not limited by it, as in Azure, where each clause
reads "not this action, or the expression holds".
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from security import operations as ops
from security import roles

CONDITION_VERSION = "2.0"

ALLOW_ROLES = "allowRoles"  # only these roles
EXCLUDE_ROLES = "excludeRoles"  # every role but these
KINDS = (ALLOW_ROLES, EXCLUDE_ROLES)

WRITE = "write"
DELETE = "delete"
_ACTIONS = {WRITE: ops.ROLE_ASSIGNMENT_WRITE, DELETE: ops.ROLE_ASSIGNMENT_DELETE}
_SOURCES = {WRITE: "@Request", DELETE: "@Resource"}  # Azure's attribute source for each action

# Azure's principal types, as the "Constrain roles and principal types" template offers them. Strongroom
# has users and managed identities (Azure counts a managed identity as a service principal); no groups.
USER = "User"
SERVICE_PRINCIPAL = "ServicePrincipal"
PRINCIPAL_TYPES = {USER: "Users", SERVICE_PRINCIPAL: "Service principals (managed identities)"}
_KIND_TO_TYPE = {"User": USER, "ManagedIdentity": SERVICE_PRINCIPAL, "ServicePrincipal": SERVICE_PRINCIPAL,
                 "System": SERVICE_PRINCIPAL}

_ATTRIBUTE = "Microsoft.Authorization/roleAssignments"


def principal_type(kind: str) -> str:
    """Azure's principal type for a Strongroom principal kind (``Principal.Kind``)."""
    return _KIND_TO_TYPE.get(kind, kind)


class ConditionError(ValueError):
    """A condition that cannot be kept: the message says what was wrong and what to do."""


@dataclass(frozen=True)
class AssignmentRequest:
    """What a condition judges: the role being assigned (or removed) and the assignee's principal type."""

    role_definition_id: str
    principal_type: str

    def as_change(self) -> dict:
        """The ``change`` entry a service passes to `evaluate` (plain data, as every change is)."""
        return {"roleAssignment": {"roleDefinitionId": self.role_definition_id, "principalType": self.principal_type}}

    @classmethod
    def from_change(cls, change: dict | None) -> AssignmentRequest | None:
        data = (change or {}).get("roleAssignment")
        if not isinstance(data, dict) or not data.get("roleDefinitionId"):
            return None
        return cls(str(data["roleDefinitionId"]).lower(), str(data.get("principalType") or ""))


def request_for(role, assignee) -> AssignmentRequest:
    """The request for assigning (or removing) ``role`` (a RoleDefinition) to ``assignee`` (a Principal)."""
    return AssignmentRequest(str(role.id).lower(), principal_type(getattr(assignee, "kind", "")))


@dataclass(frozen=True)
class Condition:
    kind: str
    role_ids: tuple[str, ...]
    principal_types: tuple[str, ...] = ()
    actions: tuple[str, ...] = (WRITE, DELETE)

    # --- as data ------------------------------------------------------------------------------------

    @classmethod
    def parse(cls, data) -> Condition:
        """A condition from its stored data; `ConditionError` naming what is wrong."""
        if not isinstance(data, dict):
            raise ConditionError("A condition is a set of roles (and optionally principal types): none was given.")
        kind = data.get("kind", ALLOW_ROLES)
        if kind not in KINDS:
            raise ConditionError(f"Unknown condition kind {kind!r}: use {ALLOW_ROLES} or {EXCLUDE_ROLES}.")
        role_ids = tuple(dict.fromkeys(str(r).lower() for r in data.get("roleDefinitionIds") or ()))
        for role_id in role_ids:
            try:
                uuid.UUID(role_id)
            except ValueError:
                raise ConditionError(f"{role_id!r} is not a role definition id (a GUID): select the roles "
                                     "from the list.") from None
        if not role_ids:
            raise ConditionError("Select at least one role for the condition."
                                 if kind == ALLOW_ROLES else "Select at least one role to exclude.")
        types = tuple(dict.fromkeys(data.get("principalTypes") or ()))
        unknown = [t for t in types if t not in PRINCIPAL_TYPES]
        if unknown:
            raise ConditionError(f"Unknown principal type {unknown[0]!r}: choose among "
                                 f"{', '.join(PRINCIPAL_TYPES.values())}.")
        actions = tuple(a for a in (WRITE, DELETE) if a in (data.get("actions") or (WRITE, DELETE)))
        if not actions or any(a not in _ACTIONS for a in data.get("actions") or ()):
            raise ConditionError("A condition constrains adding role assignments, removing them, or both.")
        return cls(kind, role_ids, types, actions)

    def to_data(self) -> dict:
        return {"kind": self.kind, "roleDefinitionIds": list(self.role_ids),
                "principalTypes": list(self.principal_types), "actions": list(self.actions)}

    # --- judging ------------------------------------------------------------------------------------

    def constrains(self, action: str) -> bool:
        return any(action.lower() == _ACTIONS[a].lower() for a in self.actions)

    def allows(self, request: AssignmentRequest | None) -> bool:
        """Whether the request fulfils the condition. Without a request (nothing to judge) it does not."""
        if request is None:
            return False
        listed = request.role_definition_id.lower() in self.role_ids
        if listed is not (self.kind == ALLOW_ROLES):
            return False
        return not self.principal_types or any(
            request.principal_type.lower() == t.lower() for t in self.principal_types)

    # --- Azure's expression -------------------------------------------------------------------------

    def render(self) -> str:
        """The condition as Azure's code editor shows it, one clause per constrained action."""
        return " AND ".join(self._clause(action) for action in self.actions)

    def _clause(self, action: str) -> str:
        source = _SOURCES[action]
        ids = ", ".join(self.role_ids)
        if self.kind == ALLOW_ROLES:
            expressions = [f"{source}[{_ATTRIBUTE}:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {{{ids}}}"]
        else:
            expressions = [f"{source}[{_ATTRIBUTE}:RoleDefinitionId] ForAnyOfAllValues:GuidNotEquals {{{ids}}}"]
        if self.principal_types:
            types = ", ".join(f"'{t}'" for t in self.principal_types)
            expressions.append(f"{source}[{_ATTRIBUTE}:PrincipalType] ForAnyOfAnyValues:StringEqualsIgnoreCase {{{types}}}")
        return f"((!(ActionMatches{{'{_ACTIONS[action]}'}})) OR ({' AND '.join(expressions)}))"

    # --- words --------------------------------------------------------------------------------------

    def describe(self, role_names: dict[str, str]) -> str:
        """In words, with ``role_names`` (id -> name): "Add or remove only Reader, Backup Reader, to
        Service principals (managed identities)"."""
        names = ", ".join(role_names.get(r, r) for r in self.role_ids)
        verbs = {(WRITE, DELETE): "Add or remove", (WRITE,): "Add", (DELETE,): "Remove"}[self.actions]
        if self.kind == ALLOW_ROLES:
            text = f"{verbs} only role assignments of {names}"
        else:
            text = f"{verbs} role assignments of every role except {names}"
        if self.principal_types:
            text += ", for " + " or ".join(PRINCIPAL_TYPES[t].lower() for t in self.principal_types) + " only"
        return text + "."


def parse_stored(data) -> Condition | None:
    """The condition an assignment carries, or None. A stored condition that no longer parses constrains
    to nothing (no role), as an unreadable Azure condition refuses rather than allows."""
    if not data:
        return None
    try:
        return Condition.parse(data)
    except ConditionError:
        return Condition(ALLOW_ROLES, ())


def vault_identity_delegation() -> dict:
    """The condition of a backup admin's delegation: only the roles a Backup vault's identity needs
    (`roles.VAULT_IDENTITY_ROLES`, what "Assign missing roles" grants), to service principals (managed
    identities) only, for adding and removing alike. The seeded lab and the training sandboxes use it."""
    ids = tuple(roles.role_id(name) for name in roles.VAULT_IDENTITY_ROLES)
    return Condition(ALLOW_ROLES, ids, (SERVICE_PRINCIPAL,)).to_data()


def all_but_privileged_administrators() -> dict:
    """The portal's recommended condition: every role except Owner, User Access Administrator and Role
    Based Access Control Administrator."""
    ids = tuple(roles.role_id(name) for name in roles.PRIVILEGED_ADMINISTRATOR_ROLES)
    return Condition(EXCLUDE_ROLES, ids).to_data()
