"""Access requests (PIM's activation requests and approvals): ask, approve, reject, cancel.

A refused caller asks for a time-bound Backup MUA Operator grant on the guard; one of the guard's
approvers (never the requester) approves or rejects it with a comment. Without approvers a request is
approved automatically. Every step is in the activity log naming both people.
"""

from __future__ import annotations

import datetime as dt
import uuid

from django.core.exceptions import ValidationError

from security import clock
from security.audit import GuardedOperation, record
from security.guards import Refusal
from security.models import AccessRequest, ActivityLogEntry, ResourceGuard
from security.mua.lookups import active_grant, approvers_label, pending_request
from security.mua.notifications import notify
from security.mua.rules import (
    APPROVALS_GUARD,
    AUTO_APPROVAL_WARNING,
    JUSTIFICATION_MAX,
    PENDING_REQUEST_LIFETIME,
    access_durations,
    duration_label,
)
from security.mua.workflow import grant_access, operator_role, request_details, workflow_step
from security.operations import APPROVE_REQUEST, CANCEL_REQUEST, GUARD_READ, REJECT_REQUEST, REQUEST_ACCESS
from security.rbac import authorize
from security.services import system_principal


def _reader_refusal(principal, guard: ResourceGuard) -> Refusal | None:
    read = authorize(principal, GUARD_READ, guard.resource_id)
    if read.allowed:
        return None
    return Refusal(
        guard=APPROVALS_GUARD,
        code="AuthorizationFailed",
        reason="Only principals who can read a Resource Guard can request access to it. " + read.message(),
        remedy="Ask the guard's owner (the security admin) for Reader on the Resource Guard.",
    )


def _clean_request(justification: str, hours) -> dt.timedelta:
    """The duration asked for (``hours``: a value of `access_durations`, e.g. 1 or "5m" in lab mode); a
    ValidationError names each field that is wrong."""
    errors = {}
    durations = dict(access_durations())
    duration = durations.get(str(hours).strip().lower() if hours is not None else "")
    if duration is None:
        errors["hours"] = "Choose a duration of " + ", ".join(duration_label(d) for d in durations.values()) + "."
    if not justification:
        errors["justification"] = "Enter a justification: the approvers read it to decide."
    elif len(justification) > JUSTIFICATION_MAX:
        errors["justification"] = f"Keep the justification under {JUSTIFICATION_MAX} characters."
    if errors:
        raise ValidationError(errors)
    return duration


def _refuse_needless_request(principal, guard: ResourceGuard, now) -> None:
    grant = active_grant(principal, guard, now)
    if grant is not None:
        raise ValidationError(
            f"You already have {grant.role.name} on the Resource Guard '{guard.name}' until "
            f"{grant.expires_at:%Y-%m-%d %H:%M} UTC: there is no need to ask again.",
            code="RoleAssignmentExists",
        )
    if pending_request(principal, guard) is not None:
        raise ValidationError(
            f"You already have a pending request on the Resource Guard '{guard.name}'. Wait for an approver "
            "to decide it, or cancel it in My access requests.",
            code="PendingRoleAssignmentRequest",
        )


def _approve_automatically(principal, request: AccessRequest, op: GuardedOperation, now) -> None:
    """A guard without approvers approves at once; the system logs the approval with a warning."""
    guard = request.guard
    assignment = grant_access(request, None, now)
    request.auto_approved = True
    request.decision_comment = "Approved automatically: the Resource Guard has no approvers."
    request.save()
    grant = {"approvedBy": approvers_label(request), "assignmentId": str(assignment.pk),
             "accessEndsAt": request.expires_at.isoformat()}
    op.details.update({"state": request.state, **grant})
    record(system_principal(), APPROVE_REQUEST, guard.resource_id, status=ActivityLogEntry.Status.SUCCEEDED,
           message=f"{request.requester.display_name}'s request was approved automatically.",
           details={**request_details(request), **grant, "warning": AUTO_APPROVAL_WARNING})
    notify(principal, title=f"Access to Resource Guard '{guard.name}' approved automatically",
           message=f"You hold {request.role.name} on '{guard.name}' for {duration_label(request.duration)}, "
                   f"until {request.expires_at:%Y-%m-%d %H:%M} UTC (the guard has no approvers).",
           resource_id=guard.resource_id, page="my-requests", state=AccessRequest.State.APPROVED)


def _send_for_approval(principal, request: AccessRequest, op: GuardedOperation, approvers) -> None:
    guard = request.guard
    op.details["state"] = request.state
    op.details["approvers"] = [a.display_name for a in approvers]
    notify(principal, title=f"Access request on Resource Guard '{guard.name}' sent for approval",
           message=f"You asked for {request.role.name} for {duration_label(request.duration)}; "
                   f"{', '.join(a.display_name for a in approvers)} can approve it.",
           resource_id=guard.resource_id, page="my-requests", state=AccessRequest.State.PENDING)
    for approver in approvers:
        if approver.pk != principal.pk:
            notify(approver, title=f"Access request on Resource Guard '{guard.name}' waiting for your approval",
                   message=f"{principal.display_name} asks for {request.role.name} for "
                           f"{duration_label(request.duration)}: “{request.justification}”",
                   resource_id=guard.resource_id, page="approvals", state=AccessRequest.State.PENDING)


def request_access(
    principal,
    guard: ResourceGuard,
    *,
    justification: str,
    hours,
    operation: str = "",
    target_resource_id: str = "",
    request_id: uuid.UUID | None = None,
) -> AccessRequest:
    """Ask for Backup MUA Operator on ``guard`` for ``hours`` (1, 2, 4 or 8; or "5m" or "15m" in lab mode),
    with a justification.

    Anyone who can read the guard may ask, a person in the portal or a service principal through the
    API (PIM's ``roleAssignmentScheduleRequests``, whose client names the request: ``request_id``).
    With no approvers configured the request is approved at once (and logged as an automatic
    approval); otherwise the approvers are notified.
    """
    justification = (justification or "").strip()
    details = {"resourceGuard": guard.name, "requester": getattr(principal, "display_name", ""),
               "justification": justification, "hours": str(hours)}
    refusal = _reader_refusal(principal, guard)
    with workflow_step(principal, REQUEST_ACCESS, guard.resource_id, refusal=refusal, details=details) as op:
        duration = _clean_request(justification, hours)
        ResourceGuard.objects.select_for_update().get(pk=guard.pk)  # one request at a time per guard
        now = clock.now()
        _refuse_needless_request(principal, guard, now)
        if request_id is not None and AccessRequest.objects.filter(pk=request_id).exists():
            raise ValidationError(f"An access request with the id '{request_id}' exists already: a request is "
                                  "never changed; ask again under a new id.", code="RoleAssignmentRequestExists")
        request = AccessRequest.objects.create(
            **({"id": request_id} if request_id is not None else {}),
            guard=guard,
            requester=principal,
            role=operator_role(),
            justification=justification,
            duration=duration,
            operation=operation or "",
            target_resource_id=target_resource_id or "",
            created_at=now,
        )
        op.details = request_details(request)
        approvers = list(guard.approvers.all())
        if approvers:
            _send_for_approval(principal, request, op, approvers)
        else:
            _approve_automatically(principal, request, op, now)
    return request


def _decision_refusal(principal, request: AccessRequest, verb: str) -> Refusal | None:
    guard = request.guard
    if request.requester_id == getattr(principal, "pk", None):
        return Refusal(
            guard=APPROVALS_GUARD,
            code="SelfApprovalNotAllowed",
            reason=f"Nobody approves their own request: {principal.display_name} cannot {verb} their own "
                   f"access request on the Resource Guard '{guard.name}'.",
            remedy="Another approver of the Resource Guard must decide it.",
        )
    approvers = list(guard.approvers.all())
    if not any(a.pk == getattr(principal, "pk", None) for a in approvers):
        names = ", ".join(a.display_name for a in approvers) or "nobody"
        return Refusal(
            guard=APPROVALS_GUARD,
            code="ApproverRequired",
            reason=f"{getattr(principal, 'display_name', 'anonymous')} is not an approver of the Resource Guard "
                   f"'{guard.name}': only its approvers ({names}) can {verb} access requests on it.",
            remedy="Ask one of the guard's approvers, or the guard's owner to make you an approver.",
        )
    return None


def _load_pending(request: AccessRequest, now) -> AccessRequest:
    row = AccessRequest.objects.select_for_update().get(pk=request.pk)
    if row.state != AccessRequest.State.PENDING:
        raise ValidationError(f"This request is no longer pending: it is {row.get_state_display().lower()}.")
    if row.created_at + PENDING_REQUEST_LIFETIME <= now:
        raise ValidationError("This request expired: nobody decided it within 24 hours. The requester can ask again.")
    return row


def _role_play_details(role_played_by) -> dict:
    """What marks a decision as role-played (self-study: a trainee plays the approver), naming the person."""
    if role_played_by is None:
        return {}
    return {"rolePlayed": True, "rolePlayedBy": role_played_by.display_name}


def approve_request(principal, request: AccessRequest, *, comment: str, role_played_by=None) -> AccessRequest:
    """Approve: the requester holds Backup MUA Operator on the guard from now for the asked duration.

    ``role_played_by``: the real person who plays ``principal`` in self-study (a lab's built-in security
    admin); the approval and its log entry are marked role-played and name them."""
    comment = (comment or "").strip()
    details = {**request_details(request), "approvedBy": getattr(principal, "display_name", ""), "comment": comment,
               **_role_play_details(role_played_by)}
    refusal = _decision_refusal(principal, request, "approve")
    with workflow_step(principal, APPROVE_REQUEST, request.guard.resource_id, refusal=refusal, details=details) as op:
        if not comment:
            raise ValidationError({"comment": "Enter a comment: the requester sees it with your decision."})
        now = clock.now()
        row = _load_pending(request, now)
        assignment = grant_access(row, principal, now)
        row.decided_by = principal
        row.role_played_by = role_played_by
        row.decision_comment = comment
        row.save()
        op.details.update({"assignmentId": str(assignment.pk), "accessStartsAt": now.isoformat(),
                           "accessEndsAt": row.expires_at.isoformat()})
        notify(row.requester, title=f"Access to Resource Guard '{row.guard.name}' approved",
               message=f"{approvers_label(row)} approved your request: you hold {row.role.name} on "
                       f"'{row.guard.name}' until {row.expires_at:%Y-%m-%d %H:%M} UTC. “{comment}”",
               resource_id=row.guard.resource_id, page="my-requests", state=AccessRequest.State.APPROVED)
    request.refresh_from_db()
    return request


def reject_request(principal, request: AccessRequest, *, comment: str, role_played_by=None) -> AccessRequest:
    """Reject with a comment (``role_played_by`` as for `approve_request`)."""
    comment = (comment or "").strip()
    details = {**request_details(request), "rejectedBy": getattr(principal, "display_name", ""), "comment": comment,
               **_role_play_details(role_played_by)}
    refusal = _decision_refusal(principal, request, "reject")
    with workflow_step(principal, REJECT_REQUEST, request.guard.resource_id, refusal=refusal, details=details):
        if not comment:
            raise ValidationError({"comment": "Enter a comment: tell the requester why."})
        now = clock.now()
        row = _load_pending(request, now)
        row.state = AccessRequest.State.REJECTED
        row.decided_by = principal
        row.role_played_by = role_played_by
        row.decided_at = now
        row.decision_comment = comment
        row.save()
        notify(row.requester, title=f"Access to Resource Guard '{row.guard.name}' rejected",
               message=f"{approvers_label(row)} rejected your request: “{comment}”",
               resource_id=row.guard.resource_id, page="my-requests", state=AccessRequest.State.REJECTED)
    request.refresh_from_db()
    return request


def cancel_request(principal, request: AccessRequest) -> AccessRequest:
    """The requester withdraws a pending request."""
    refusal = None
    if request.requester_id != getattr(principal, "pk", None):
        refusal = Refusal(
            guard=APPROVALS_GUARD,
            code="AuthorizationFailed",
            reason="Only the requester can cancel an access request.",
        )
    with workflow_step(principal, CANCEL_REQUEST, request.guard.resource_id, refusal=refusal,
                       details=request_details(request)):
        row = AccessRequest.objects.select_for_update().get(pk=request.pk)
        if row.state != AccessRequest.State.PENDING:
            raise ValidationError(f"Only a pending request can be cancelled; this one is {row.get_state_display().lower()}.")
        row.state = AccessRequest.State.CANCELLED
        row.decided_at = clock.now()
        row.closed_at = row.decided_at
        row.save()
    request.refresh_from_db()
    return request
