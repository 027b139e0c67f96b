"""The activity log, and `guarded`: how every service performs a write.

    with guarded(principal, operations.RESOURCE_GROUP_WRITE, rg_id) as op:
        ...change state...
        op.details["region"] = "eastus"

`guarded` asks `evaluate`; a refusal is logged and raised as GuardDenied. Otherwise the block runs in
one transaction, and the success entry is written in that same transaction (so a rolled-back change
leaves no success entry); a failure is logged after the rollback, so it survives it. Each entry is
sealed into the activity log's hash chain (`security.chain`) once its transaction commits.
"""

from __future__ import annotations

import contextlib
import logging
import re
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from security import chain, clock, context, operations
from security.guards import Decision, GuardDenied, evaluate, target_scope

logger = logging.getLogger(__name__)

_operation_names: dict[str, str] = {}


def register_operation_name(operation: str, name: str) -> None:
    """Give an action string the readable name the activity log shows, when the operations catalogue
    does not name it (being retired: the catalogue names operations now)."""
    _operation_names[operation.lower()] = name


def operation_name(operation: str) -> str:
    known = operations.display_name(operation) or _operation_names.get(operation.lower())
    if known:
        return known
    # "<Provider>/bars/bazs/write" -> "Write bazs" (fallback for unnamed operations)
    parts = operation.split("/")
    verb = parts[-1]
    noun = parts[-2] if len(parts) > 2 else parts[0]
    if verb.lower() == "action" and len(parts) > 2:
        verb, noun = parts[-2], parts[-3]
    noun = re.sub(r"(?<!^)(?=[A-Z])", " ", noun)
    return f"{verb.capitalize()} {noun}"


def caller_label(principal) -> str:
    name = getattr(principal, "display_name", "system")
    actor = context.real_actor()
    if actor is not None and getattr(actor, "pk", None) != getattr(principal, "pk", None):
        return f"{actor.display_name} as {context.played_as() or name}"
    return name


def _storable(value):
    """PostgreSQL refuses NUL in text and JSON: a NUL a caller typed is logged as U+FFFD instead of
    failing the request (the activity log keeps what was asked, not a server error)."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_storable(v) for v in value]
    return value


def record(
    principal,
    operation: str,
    scope: str,
    *,
    status: str,
    sub_status: str = "",
    message: str = "",
    details: dict | None = None,
    level: str | None = None,
):
    from security.models import ActivityLogEntry

    if level is None:
        level = (
            ActivityLogEntry.Level.INFORMATIONAL
            if status == ActivityLogEntry.Status.SUCCEEDED
            else ActivityLogEntry.Level.ERROR
        )
    actor = context.real_actor()
    entry_details = dict(details or {})
    acting_for = actor is not None and getattr(actor, "pk", None) != getattr(principal, "pk", None)
    if acting_for:
        entry_details.setdefault("playedBy", actor.display_name)
        entry_details.setdefault("persona", context.played_as() or getattr(principal, "display_name", ""))
    principal_pk = getattr(principal, "pk", None)
    return chain.append(
        timestamp=clock.now(),
        recorded_at=timezone.now(),
        principal_ref=str(principal_pk) if principal_pk else "",
        principal_name=getattr(principal, "display_name", "system"),
        actor_ref=str(getattr(actor, "pk", "") or "") if acting_for else "",
        actor_name=getattr(actor, "display_name", "") if acting_for else "",
        caller=caller_label(principal),
        operation=operation,
        operation_name=operation_name(operation),
        scope=_storable(scope),
        status=status,
        sub_status=sub_status,
        level=level,
        correlation_id=context.correlation_id(),
        message=_storable(message[:4000]),
        details=_storable(entry_details),
    )


def record_denial(principal, decision: Decision, details: dict | None = None):
    from security.models import ActivityLogEntry

    info = dict(details or {})
    info.update({"guard": decision.guard, "code": decision.code})
    extra = decision.refusal.extra if decision.refusal else {}
    if extra.get("resource_guard_name"):  # a Resource Guard's refusal names the guard (and what it protects)
        info.update({"resourceGuard": extra["resource_guard_name"],
                     "resourceGuardId": extra.get("resource_guard_id", ""),
                     "criticalOperation": extra.get("critical_operation", "")})
    if decision.remedy:
        info["remedy"] = decision.remedy
    return record(
        principal,
        decision.operation,
        decision.scope,
        status=ActivityLogEntry.Status.FAILED,
        sub_status="Forbidden" if decision.guard == "RBAC" else "Conflict",
        message=decision.reason,
        details=info,
        level=ActivityLogEntry.Level.WARNING if decision.guard != "RBAC" else ActivityLogEntry.Level.ERROR,
    )


@dataclass
class GuardedOperation:
    principal: object
    operation: str
    scope: str
    decision: Decision
    details: dict = field(default_factory=dict)
    # The service may point the entry at the object it created (its resource id).
    result_scope: str | None = None


def validation_text(exc: ValidationError) -> str:
    if hasattr(exc, "message_dict"):
        return "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
    return " ".join(exc.messages)


@contextlib.contextmanager
def guarded(principal, operation: str, target, *, change: dict | None = None, details: dict | None = None):
    """Evaluate, then run the block in a transaction and log the outcome. See module docstring."""
    from security.models import ActivityLogEntry

    decision = evaluate(principal, operation, target, change)
    if not decision.allowed:
        record_denial(principal, decision, details)
        raise GuardDenied(decision)
    op = GuardedOperation(principal, operation, target_scope(target), decision, dict(details or {}))
    for note in decision.notes:  # e.g. the MUA grant this operation used, naming requester and approver
        op.details.setdefault("guards", {})[note.guard] = note.details
    try:
        with transaction.atomic():
            yield op
            record(
                principal,
                operation,
                op.result_scope or op.scope,
                status=ActivityLogEntry.Status.SUCCEEDED,
                details=op.details,
            )
    except GuardDenied as exc:  # a nested service refused: its own entry is already written
        raise exc
    except ValidationError as exc:
        record(
            principal,
            operation,
            op.scope,
            status=ActivityLogEntry.Status.FAILED,
            sub_status="BadRequest",
            message=validation_text(exc),
            details=op.details,
            level=ActivityLogEntry.Level.WARNING,
        )
        raise
    except Exception as exc:
        logger.exception("Operation %s on %s failed", operation, op.scope)
        record(
            principal,
            operation,
            op.scope,
            status=ActivityLogEntry.Status.FAILED,
            sub_status="InternalServerError",
            message=f"{type(exc).__name__}: {exc}",
            details=op.details,
        )
        raise
