"""The rights Strongroom's own scheduled work acts with.

Scheduled work is done by principals too, and the guards judge it like anyone else's (DESIGN §2):
the vault's managed identity reads and writes the data, and the *system principal* starts scheduled
backups, expires recovery points, purges soft-deleted ones and verifies recovery points. For each kind
of work it holds exactly one role, at the root scope, with exactly the actions that work needs — so
every guard after RBAC (immutability, soft delete, MUA) still decides about what it does, and the
activity log names it.

`ensure_system_access()` (scheduled backups, retention, soft delete and purge) and
`ensure_verify_access()` (scheduled Verify) create their role and its assignment when they are missing
(idempotent; a test database flush or a fresh install may have neither) and return the system principal.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.db import transaction

from security import clock, scopes
from security import operations as ops
from security.audit import record
from security.models import ActivityLogEntry, RoleAssignment, RoleDefinition
from security.services import system_principal

_ROLE_NAMESPACE = uuid.UUID("6f1c1b6e-3d7c-4c36-9a55-1b1f4f7f0a11")


@dataclass(frozen=True)
class SystemRole:
    """A built-in role only the system principal holds, at '/'."""

    name: str
    actions: tuple[str, ...]
    description: str
    assignment_note: str  # the assignment's description
    data_actions: tuple[str, ...] = ()

    @property
    def id(self) -> uuid.UUID:
        return uuid.uuid5(_ROLE_NAMESPACE, self.name)


SCHEDULER_ROLE = SystemRole(
    "Strongroom Scheduler and Retention",
    (
        ops.VAULT_READ,
        ops.INSTANCE_READ,
        ops.RECOVERY_POINT_READ,
        ops.POLICY_READ,
        ops.JOB_READ,
        ops.BACKUP_ACTION,  # scheduled backups
        ops.RECOVERY_POINT_DELETE,  # retention
        ops.SOFT_DELETE_COMPLETE,  # soft delete: SoftDeleting -> SoftDeleted
        ops.PURGE,  # purge (and deleting data when soft delete is off)
    ),
    "Held by the Strongroom system principal only: starts scheduled backups, expires recovery points "
    "by their retention, completes soft deletes and purges soft-deleted backup data. Do not assign it to people.",
    "Strongroom: scheduled backups and retention",
)
# Verify re-reads a recovery point to prove it can be restored: validateRestore and the reads it needs.
VERIFIER_ROLE = SystemRole(
    "Strongroom Recovery Point Verifier",
    (ops.VAULT_READ, ops.INSTANCE_READ, ops.RECOVERY_POINT_READ, ops.VALIDATE_RESTORE),
    "Held by the Strongroom system principal only: verifies recovery points on a schedule. "
    "Do not assign it to people.",
    "Strongroom: scheduled verification of recovery points",
)


def ensure_system_access():
    """The system principal, holding the scheduler role at '/' (created on first use)."""
    return _ensure_role(SCHEDULER_ROLE)


def ensure_verify_access():
    """The system principal, holding the verifier role at '/' (created on first use)."""
    return _ensure_role(VERIFIER_ROLE)


def ensure_system_role(wanted: SystemRole):
    """The system principal, holding ``wanted`` at '/' (the role and its assignment made on first use)."""
    return _ensure_role(wanted)


def _ensure_role(wanted: SystemRole):
    system = system_principal()
    actions, data_actions = list(wanted.actions), list(wanted.data_actions)
    role = RoleDefinition.objects.filter(pk=wanted.id).first()
    if role is None or sorted(role.actions) != sorted(actions) or sorted(role.data_actions) != sorted(data_actions):
        role, _ = RoleDefinition.objects.update_or_create(
            pk=wanted.id,
            defaults={"name": wanted.name, "description": wanted.description, "actions": actions,
                      "not_actions": [], "data_actions": data_actions, "not_data_actions": [], "built_in": True},
        )
    if not RoleAssignment.objects.active_at(clock.now()).filter(principal=system, role=role, scope=scopes.ROOT).exists():
        with transaction.atomic():
            RoleAssignment.objects.create(principal=system, role=role, scope=scopes.ROOT,
                                          description=wanted.assignment_note)
            # Nobody can authorize the system's own bootstrap grant (as with the first Owner): logged, not guarded.
            record(system, ops.ROLE_ASSIGNMENT_WRITE, scopes.ROOT, status=ActivityLogEntry.Status.SUCCEEDED,
                   details={"role": wanted.name, "assignee": system.display_name, "bootstrap": True})
    return system
