"""The end of access: grants that ran out and requests nobody decided are closed, logged and announced."""

from __future__ import annotations

from django.db import transaction

from security import clock
from security.audit import record
from security.models import AccessRequest, ActivityLogEntry, Principal, RoleAssignment
from security.mua.lookups import approvers_label
from security.mua.notifications import notify
from security.mua.rules import PENDING_REQUEST_LIFETIME
from security.mua.workflow import request_details
from security.operations import EXPIRE_ACCESS
from security.services import system_principal


def _claim(request: AccessRequest, state: str, now) -> bool:
    """Compare-and-set ``state`` -> Expired: True for the one run that wins the row."""
    return AccessRequest.objects.filter(pk=request.pk, state=state).update(
        state=AccessRequest.State.EXPIRED, closed_at=now
    ) == 1


def _expire_grant(system: Principal, request: AccessRequest, now) -> bool:
    with transaction.atomic():
        if not _claim(request, AccessRequest.State.APPROVED, now):
            return False
        if request.role_assignment_id:
            RoleAssignment.objects.filter(pk=request.role_assignment_id, closed_at__isnull=True).update(closed_at=now)
        record(
            system,
            EXPIRE_ACCESS,
            request.guard.resource_id,
            status=ActivityLogEntry.Status.SUCCEEDED,
            message=(
                f"{request.requester.display_name}'s {request.role.name} access on the Resource Guard "
                f"'{request.guard.name}' (approved by {approvers_label(request)}) ended at "
                f"{request.expires_at:%Y-%m-%d %H:%M} UTC."
            ),
            details={**request_details(request), "approvedBy": approvers_label(request),
                     "accessEndedAt": request.expires_at.isoformat(),
                     "assignmentId": str(request.role_assignment_id or "")},
        )
        notify(request.requester, title=f"Access to Resource Guard '{request.guard.name}' expired",
               message=f"Your {request.role.name} access on '{request.guard.name}' ended.",
               resource_id=request.guard.resource_id, page="my-requests", state=AccessRequest.State.EXPIRED)
    return True


def _expire_undecided(system: Principal, request: AccessRequest, now) -> bool:
    with transaction.atomic():
        if not _claim(request, AccessRequest.State.PENDING, now):
            return False
        record(
            system,
            EXPIRE_ACCESS,
            request.guard.resource_id,
            status=ActivityLogEntry.Status.SUCCEEDED,
            message=f"{request.requester.display_name}'s access request on '{request.guard.name}' expired: "
                    "no approver decided it within 24 hours.",
            details={**request_details(request), "approvedBy": "", "neverDecided": True},
        )
    return True


def close_expired_grants(now=None) -> int:
    """Mark ended grants Expired (closing their role assignments) and stale pending requests Expired.

    Run every minute by Celery beat, and by the lab clock before it moves back (`clock.settle`). The
    grant already counts as absent the moment it ends (the role assignment's ``ends_at``); this
    records the end (``closed_at``), which no later clock reading undoes, and logs it. Each row is
    claimed by a compare-and-set update, so two runs at once log each expiry once.
    """
    now = now or clock.now()
    system = system_principal()
    ended = AccessRequest.objects.select_related("guard", "requester", "decided_by", "role").filter(
        state=AccessRequest.State.APPROVED, expires_at__lte=now
    )
    closed = sum(_expire_grant(system, request, now) for request in ended)
    stale = AccessRequest.objects.select_related("guard", "requester", "role").filter(
        state=AccessRequest.State.PENDING, created_at__lte=now - PENDING_REQUEST_LIFETIME
    )
    closed += sum(_expire_undecided(system, request, now) for request in stale)
    # Any other time-bound role assignment that has ended: recorded closed, so it stays ended.
    closed += RoleAssignment.objects.filter(ends_at__lte=now, closed_at__isnull=True).update(closed_at=now)
    return closed
