"""The right the system principal verifies recovery points with (scheduled Verify).

Like `protection.system_access` (scheduled backups and retention), the system principal acts through
the guards with exactly one extra role at the root scope: ``validateRestore/action`` (Verify re-reads
a recovery point to prove it can be restored) and the reads it needs. Created on first use.
"""

from __future__ import annotations

import uuid

from django.db import transaction

from security import clock, scopes
from security.audit import record
from security.models import ActivityLogEntry, RoleAssignment, RoleDefinition
from security.services import ROLE_ASSIGNMENT_WRITE, system_principal

DP = "Microsoft.DataProtection"
VERIFY_ROLE_NAME = "Strongroom Recovery Point Verifier"
VERIFY_ROLE_ID = uuid.uuid5(uuid.UUID("6f1c1b6e-3d7c-4c36-9a55-1b1f4f7f0a11"), VERIFY_ROLE_NAME)
VERIFY_ROLE_ACTIONS = [
    f"{DP}/backupVaults/read",
    f"{DP}/backupVaults/backupInstances/read",
    f"{DP}/backupVaults/backupInstances/recoveryPoints/read",
    f"{DP}/backupVaults/backupInstances/validateRestore/action",
]
VERIFY_ROLE_DESCRIPTION = ("Held by the Strongroom system principal only: verifies recovery points on a schedule. "
                           "Do not assign it to people.")


def ensure_verify_access():
    """The system principal, holding the verifier role at '/' (created on first use)."""
    system = system_principal()
    role = RoleDefinition.objects.filter(pk=VERIFY_ROLE_ID).first()
    if role is None or sorted(role.actions) != sorted(VERIFY_ROLE_ACTIONS):
        role, _ = RoleDefinition.objects.update_or_create(
            pk=VERIFY_ROLE_ID,
            defaults={"name": VERIFY_ROLE_NAME, "description": VERIFY_ROLE_DESCRIPTION, "actions": VERIFY_ROLE_ACTIONS,
                      "not_actions": [], "data_actions": [], "not_data_actions": [], "built_in": True},
        )
    if not RoleAssignment.objects.active_at(clock.now()).filter(principal=system, role=role, scope=scopes.ROOT).exists():
        with transaction.atomic():
            RoleAssignment.objects.create(principal=system, role=role, scope=scopes.ROOT,
                                          description="Strongroom: scheduled verification of recovery points")
            record(system, ROLE_ASSIGNMENT_WRITE, scopes.ROOT, status=ActivityLogEntry.Status.SUCCEEDED,
                   details={"role": VERIFY_ROLE_NAME, "assignee": system.display_name, "bootstrap": True})
    return system
