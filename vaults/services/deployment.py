"""Creating or deleting a vault is a deployment: a portal Operation (the notification bell) follows it."""

from __future__ import annotations

import contextlib

from django.core.exceptions import ValidationError

from portal import services as portal_services
from security import context
from security.guards import GuardDenied


def notify_principal(principal):
    """Notifications go to the person at the keyboard (the trainer, when role-playing)."""
    return context.real_actor() or principal


def failure_text(exc: BaseException) -> str:
    if isinstance(exc, GuardDenied):
        return exc.decision.reason
    if isinstance(exc, ValidationError):
        if hasattr(exc, "message_dict"):
            return " ".join(m for msgs in exc.message_dict.values() for m in msgs)
        return " ".join(exc.messages)
    return f"The deployment failed: {type(exc).__name__}: {exc}"


@contextlib.contextmanager
def deployment(principal, title: str, *, resource_id: str):
    """Start the Operation ``title``; a failure inside the block finishes it as failed (and re-raises).
    The caller finishes a success with `portal.services.finish_operation` (its message and link)."""
    operation = portal_services.start_operation(notify_principal(principal), title, resource_id=resource_id)
    try:
        yield operation
    except BaseException as exc:
        portal_services.finish_operation(operation, succeeded=False, message=failure_text(exc))
        raise
