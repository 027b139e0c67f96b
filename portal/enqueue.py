"""Hand a Celery task to the workers by its name, once the surrounding transaction commits.

By name, so that a service never imports the task module that calls it back (tasks import services,
not the other way round). The task modules register their tasks in `PortalConfig.ready`, so the name
is known in every process that enqueues.
"""

from __future__ import annotations

from functools import partial

from django.db import transaction

from portal.celery import app


def after_commit(task_name: str, *args) -> None:
    """Send ``task_name(*args)`` after commit: a worker that starts at once finds the committed rows,
    and nothing is sent when the transaction rolls back."""
    transaction.on_commit(partial(send, task_name, *args))


def send(task_name: str, *args) -> None:
    app.tasks[task_name].delay(*args)
