"""Retiring a sandbox (a reset, a closed class) and taking it down through the services.

Retiring hides it from the trainee at once (their role assignments in it go). Taking it down deletes what
it holds through the same services and guards as anyone's clicks, as the sandbox provisioner: where a guard
refuses (locked immutability, always-on soft delete, a Resource Guard), the sandbox stays Retired with the
refusal's words in ``kept_because``, and a later sweep tries again; nothing is wiped around a guard.
"""

from __future__ import annotations

import logging

from django.db import transaction

from labs.models import Sandbox
from labs.sandboxes import SandboxWorld, provisioner
from protection.models import TERMINAL_JOB_STATUSES, Job
from security import clock
from security import services as security_services
from security.models import RoleAssignment

logger = logging.getLogger(__name__)


def running_jobs(sandbox: Sandbox) -> str:
    """The jobs not yet ended in the sandbox's vaults, as words ("" when none)."""
    if not sandbox.subscription_id:
        return ""
    jobs = (Job.objects.filter(vault__resource_id__istartswith=sandbox.subscription_id + "/")
            .exclude(status__in=TERMINAL_JOB_STATUSES))
    return ", ".join(f"{j.operation} of {j.datasource_name or j.vault.name}" for j in jobs[:3])


def retire(sandbox: Sandbox) -> Sandbox:
    """Hide the sandbox from its trainee (their role assignments in it are removed) and mark it Retired."""
    actor = provisioner()
    with transaction.atomic():
        if sandbox.subscription_id:
            mine = RoleAssignment.objects.filter(principal=sandbox.owner,
                                                 scope__istartswith=sandbox.subscription_id)
            for assignment in mine.select_related("role", "principal"):
                security_services.remove_role_assignment(actor, assignment)
        Sandbox.objects.filter(pk=sandbox.pk).update(status=Sandbox.Status.RETIRED, retired_at=clock.now())
    sandbox.refresh_from_db()
    return sandbox


def take_down(sandbox: Sandbox) -> Sandbox:
    """Delete what a retired sandbox holds, as far as the guards allow (see the module docstring)."""
    raise NotImplementedError("labs.teardown.take_down: being written")


def world_of(sandbox: Sandbox) -> SandboxWorld:
    return SandboxWorld(sandbox)
