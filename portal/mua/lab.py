"""The MUA part of the demo lab (decision 3): a Resource Guard owned by the security admin.

"rg-guard-contoso" in the Security subscription's rg-security, East US. The security admin creates
it, holds Backup MUA Admin on it and is its approver; the backup admin gets Reader on it (enough to
link it, not to pass it). Everything goes through the services as the people who would do it.
Idempotent. The unlinked vault "bv-contoso-mua" is seeded by `vaults.mua.seed_mua_vault`.
"""

from __future__ import annotations

import contextlib

from django.core.exceptions import ValidationError

from portal.lab import ensure_role
from security import mua, roles
from security.models import ResourceGuard

LAB_GUARD_NAME = "rg-guard-contoso"
LAB_GUARD_DESCRIPTION = (
    "Critical operations on Contoso's backup vaults need the security team's approval: select Request "
    "access on the refusal (Backup MUA Operator, 1-8 hours); Sam Security approves in Approvals."
)


def seed_mua(lab, *, stdout=None) -> ResourceGuard:
    security_admin = lab.personas["security-admin"].principal
    backup_admin = lab.personas["backup-admin"].principal
    guard_id = f"{lab.security_group.resource_id}/providers/{ResourceGuard.RESOURCE_TYPE}/{LAB_GUARD_NAME}"
    guard = mua.guard_by_id(guard_id)
    if guard is None:
        guard = mua.create_resource_guard(
            security_admin,
            resource_group_id=lab.security_group.resource_id,
            name=LAB_GUARD_NAME,
            region=lab.region.pk,
            description=LAB_GUARD_DESCRIPTION,
            approvers=[security_admin],
        )
    for assignee, role_name in ((security_admin, roles.BACKUP_MUA_ADMIN), (backup_admin, roles.READER)):
        with contextlib.suppress(ValidationError):  # already held (seeding is idempotent)
            ensure_role(security_admin, assignee, role_name, guard.resource_id)
    if stdout:
        stdout.write(f"MUA: Resource Guard {guard.name} in {lab.security_group.name} (approver: {security_admin}).")
    return guard
