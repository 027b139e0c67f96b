"""What a Resource Guard protects and the fixed rules around it (reference §1.8).

The critical operations come from the operations catalogue (`security.operations`, the entries a guard
may protect); this module gives them the shape the guard, its services and its pages read.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from django.conf import settings

from security import operations as ops
from security.models import ResourceGuard

GUARD_NAME = "MUA"
GUARD_ORDER = 10
APPROVALS_GUARD = "MUA approvals"

ACCESS_DURATIONS_HOURS = (1, 2, 4, 8)
# In lab mode a grant can also last minutes, so a trainee can watch one end without moving the lab clock.
LAB_ACCESS_DURATIONS_MINUTES = (5, 15)
PENDING_REQUEST_LIFETIME = dt.timedelta(hours=24)  # PIM: a request nobody decides expires in a day
JUSTIFICATION_MAX = 500

GUARD_NAME_RE = re.compile(r"^[A-Za-z][-A-Za-z0-9]*[A-Za-z0-9]$")
GUARD_NAME_MAX = 50
GUARD_NAME_RULE = (
    "A Resource Guard name must be 2 to 50 characters long, start with a letter, end with a letter or a "
    "digit, and contain only letters, digits and hyphens."
)
GUARD_HAS_VAULTS_MESSAGE = "Cannot delete the Resource Guard while vaults are linked to it."
AUTO_APPROVAL_WARNING = (
    "This Resource Guard has no approvers: every access request is approved automatically, so anyone "
    "with Reader on the guard can give themselves access to its protected operations."
)


@dataclass(frozen=True)
class CriticalOperation:
    action: str  # the API's vaultCriticalOperation
    label: str  # the portal's friendly name
    mandatory: bool  # cannot be excluded
    request_type: str  # the guard's request collection that authorizes it
    by_action: bool  # True: protected whenever this action runs; False: only when a service names it
    default_protected: bool = True  # ticked on a new guard's Protected operations tab
    description: str = ""


def _critical(entry: ops.Operation) -> CriticalOperation:
    return CriticalOperation(
        entry.action,
        entry.guard_label,
        entry.guard_mandatory,
        entry.guard_request_type,
        entry.guard_by_action,
        default_protected=entry.guard_default,
        description=entry.guard_description,
    )


CRITICAL_OPERATIONS: list[CriticalOperation] = [_critical(entry) for entry in ops.guard_protectable()]
_BY_ACTION = {c.action.lower(): c for c in CRITICAL_OPERATIONS}
MANDATORY_OPERATIONS = [c.action for c in CRITICAL_OPERATIONS if c.mandatory]
DEFAULT_EXCLUSIONS = [c.action for c in CRITICAL_OPERATIONS if not c.default_protected]


def critical_operation(action: str) -> CriticalOperation | None:
    return _BY_ACTION.get((action or "").lower())


def _excluded(guard: ResourceGuard) -> set[str]:
    return {e.lower() for e in guard.vault_critical_operation_exclusions or []}


def protected_operations(guard: ResourceGuard) -> list[dict]:
    """Each critical operation with whether this guard protects it (mandatory ones always)."""
    excluded = _excluded(guard)
    return [
        {"operation": c, "protected": c.mandatory or c.action.lower() not in excluded}
        for c in CRITICAL_OPERATIONS
    ]


def is_protected_by(guard: ResourceGuard, critical: CriticalOperation) -> bool:
    if critical.mandatory:
        return True
    return critical.action.lower() not in _excluded(guard)


def request_resource_id(guard: ResourceGuard, request_type: str) -> str:
    """The guard's request resource, e.g. ``<guard id>/deleteResourceGuardProxyRequests/default``."""
    return f"{guard.resource_id}/{request_type}/default"


def access_durations() -> list[tuple[str, dt.timedelta]]:
    """The durations a request may ask for, as (form value, duration): "1", "2", "4", "8" hours, and in
    lab mode also "5m" and "15m" (minutes)."""
    choices = [(f"{m}m", dt.timedelta(minutes=m)) for m in LAB_ACCESS_DURATIONS_MINUTES] if _lab_mode() else []
    return choices + [(str(h), dt.timedelta(hours=h)) for h in ACCESS_DURATIONS_HOURS]


def _lab_mode() -> bool:
    return bool(getattr(settings, "STRONGROOM_LAB_MODE", False))


def duration_label(duration: dt.timedelta) -> str:
    """"1 hour", "8 hours", "5 minutes"."""
    seconds = duration.total_seconds()
    if seconds < 3600:
        minutes = seconds / 60
        return f"{minutes:g} minute{'s' if minutes != 1 else ''}"
    hours = seconds / 3600
    return f"{hours:g} hour{'s' if hours != 1 else ''}"
