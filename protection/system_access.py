"""The rights Strongroom's own scheduled work acts with.

Scheduled work is done by principals too, and the guards judge it like anyone else's (DESIGN §2):
the vault's managed identity reads and writes the data, and the *system principal* starts scheduled
backups and expires recovery points. The system principal holds exactly one role, at the root
scope, with exactly those actions — so every guard after RBAC (immutability, soft delete, MUA) still
decides about what it does, and the activity log names it.

`ensure_system_access()` creates the role and the assignment when they are missing (idempotent; a
test database flush or a fresh install may have neither) and returns the system principal.
"""

from __future__ import annotations

import uuid

from django.db import transaction

from security import clock, scopes
from security.audit import record
from security.models import ActivityLogEntry, RoleAssignment, RoleDefinition
from security.services import ROLE_ASSIGNMENT_WRITE, system_principal

DP = "Microsoft.DataProtection"
SYSTEM_ROLE_NAME = "Strongroom Scheduler and Retention"
SYSTEM_ROLE_ID = uuid.uuid5(uuid.UUID("6f1c1b6e-3d7c-4c36-9a55-1b1f4f7f0a11"), SYSTEM_ROLE_NAME)
SYSTEM_ROLE_ACTIONS = [
    f"{DP}/backupVaults/read",
    f"{DP}/backupVaults/backupInstances/read",
    f"{DP}/backupVaults/backupInstances/recoveryPoints/read",
    f"{DP}/backupVaults/backupPolicies/read",
    f"{DP}/backupVaults/backupJobs/read",
    f"{DP}/backupVaults/backupInstances/backup/action",  # scheduled backups
    f"{DP}/backupVaults/backupInstances/recoveryPoints/delete",  # retention
    f"{DP}/backupVaults/deletedBackupInstances/write",  # soft delete: SoftDeleting -> SoftDeleted
    f"{DP}/backupVaults/deletedBackupInstances/purge/action",  # purge (and deleting data when soft delete is off)
]
SYSTEM_ROLE_DESCRIPTION = (
    "Held by the Strongroom system principal only: starts scheduled backups, expires recovery points "
    "by their retention, completes soft deletes and purges soft-deleted backup data. Do not assign it to people."
)


def ensure_system_access():
    """The system principal, holding its role at '/' (created on first use)."""
    system = system_principal()
    role = RoleDefinition.objects.filter(pk=SYSTEM_ROLE_ID).first()
    if role is None or sorted(role.actions) != sorted(SYSTEM_ROLE_ACTIONS):
        role, _ = RoleDefinition.objects.update_or_create(
            pk=SYSTEM_ROLE_ID,
            defaults={"name": SYSTEM_ROLE_NAME, "description": SYSTEM_ROLE_DESCRIPTION, "actions": SYSTEM_ROLE_ACTIONS,
                      "not_actions": [], "data_actions": [], "not_data_actions": [], "built_in": True},
        )
    if not RoleAssignment.objects.active_at(clock.now()).filter(principal=system, role=role, scope=scopes.ROOT).exists():
        with transaction.atomic():
            RoleAssignment.objects.create(principal=system, role=role, scope=scopes.ROOT,
                                          description="Strongroom: scheduled backups and retention")
            # Nobody can authorize the system's own bootstrap grant (as with the first Owner): logged, not guarded.
            record(system, ROLE_ASSIGNMENT_WRITE, scopes.ROOT, status=ActivityLogEntry.Status.SUCCEEDED,
                   details={"role": SYSTEM_ROLE_NAME, "assignee": system.display_name, "bootstrap": True})
    return system
