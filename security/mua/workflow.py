"""The steps the access-request workflow shares: its own `guarded`, the grant, the details it logs."""

from __future__ import annotations

import contextlib

from django.core.exceptions import ValidationError
from django.db import transaction

from security.audit import GuardedOperation, record, record_denial, validation_text
from security.guards import Decision, GuardDenied, Refusal, evaluate
from security.models import AccessRequest, ActivityLogEntry, Principal, RoleAssignment, RoleDefinition
from security.roles import BACKUP_MUA_OPERATOR


@contextlib.contextmanager
def workflow_step(principal, operation: str, scope: str, *, refusal: Refusal | None, details: dict):
    """Like `guarded`, for the request/approval workflow, which is authorized by the guard's own rules
    (who may read it, who its approvers are), not by RBAC actions: PIM's approvers need no role.

    A refusal is logged and raised as GuardDenied; the block runs in one transaction with its success
    entry; a validation failure is logged after the rollback.
    """
    name = getattr(principal, "display_name", "anonymous")
    if refusal is None:
        # Every registered guard but RBAC still decides (one mechanism: nothing changes state around it).
        decided = evaluate(principal, operation, scope, details, skip=("RBAC",))
        if not decided.allowed:
            refusal = decided.refusal
    if refusal is not None:
        decision = Decision(False, operation, scope, name, refusal)
        record_denial(principal, decision, details)
        raise GuardDenied(decision)
    op = GuardedOperation(principal, operation, scope, Decision(True, operation, scope, name), dict(details))
    try:
        with transaction.atomic():
            yield op
            record(principal, operation, op.result_scope or scope, status=ActivityLogEntry.Status.SUCCEEDED,
                   details=op.details)
    except ValidationError as exc:
        record(principal, operation, scope, status=ActivityLogEntry.Status.FAILED, sub_status="BadRequest",
               message=validation_text(exc), details=op.details, level=ActivityLogEntry.Level.WARNING)
        raise


def operator_role() -> RoleDefinition:
    return RoleDefinition.objects.get(name=BACKUP_MUA_OPERATOR)


def grant_access(request: AccessRequest, approver, now) -> RoleAssignment:
    """Give the requester the time-bound role assignment from ``now`` and mark ``request`` approved
    (the caller saves it)."""
    assignment = RoleAssignment.objects.create(
        principal=request.requester,
        role=request.role,
        scope=request.guard.resource_id,
        starts_at=now,
        ends_at=now + request.duration,
        description=f"Access request {request.pk}: {request.justification}"[:500],
        created_by=approver if isinstance(approver, Principal) else None,
    )
    request.role_assignment = assignment
    request.decided_at = now
    request.expires_at = assignment.ends_at
    request.state = AccessRequest.State.APPROVED
    return assignment


def request_details(request: AccessRequest) -> dict:
    details = {
        "accessRequestId": str(request.pk),
        "resourceGuard": request.guard.name,
        "requester": request.requester.display_name,
        "role": request.role.name,
        "justification": request.justification,
        "durationHours": request.duration.total_seconds() / 3600,
    }
    if request.operation:
        details["criticalOperation"] = request.operation
    if request.target_resource_id:
        details["targetResourceId"] = request.target_resource_id
    return details
