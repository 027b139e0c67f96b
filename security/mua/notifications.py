"""Notifications about access requests. Security decides what to say; portal registers how to deliver it."""

from __future__ import annotations

import logging
from typing import Callable

from django.db import transaction

logger = logging.getLogger(__name__)

Notifier = Callable[..., None]
_notifiers: list[Notifier] = []


def register_notifier(fn: Notifier) -> None:
    """``fn(principal, *, title, message, resource_id, page, state)`` delivers a notification (portal's panel).

    ``page`` is "my-requests" or "approvals": where the notification should lead. ``state`` is the
    access request's state the notification reports (`AccessRequest.State`: Pending, Approved,
    Rejected, Expired), so a request waiting for approval is never shown as a success.
    """
    if fn not in _notifiers:
        _notifiers.append(fn)


def notify(principal, *, title: str, message: str, resource_id: str, page: str, state: str = "") -> None:
    """Deliver once the transaction commits (a rolled-back request tells nobody)."""

    def deliver():
        for fn in list(_notifiers):
            try:
                fn(principal, title=title, message=message, resource_id=resource_id, page=page, state=state)
            except Exception:  # a notification is best effort; the request itself is recorded
                logger.exception("Could not deliver the MUA notification %r", title)

    transaction.on_commit(deliver)
