"""Checks run when a trainee acts (the activity log gains an entry of theirs, or one played for them) or a
job they started ends: the lab page then shows the outcome without "Check my work". A job that ends in a
retired sandbox (the deletion or purge its take-down started) sends the take-down on again."""

from __future__ import annotations

import uuid

from django.db.models.signals import post_save

from protection.jobs.runner import job_finished
from protection.models import Job
from security import context
from security import operations as ops
from security.models import AccessRequest, ActivityLogEntry


def _after_activity(sender, instance: ActivityLogEntry, created: bool, **kwargs) -> None:
    if not created:
        return
    from labs import services

    people = {instance.principal_id}
    real = context.real_actor()
    if real is not None:
        people.add(real.pk)
    people.update(_requester_of(instance))
    people.discard(None)
    if people:
        services.check_runs_of(list(people))


def _requester_of(entry: ActivityLogEntry) -> list:
    """A decision on an access request is the requester's progress too (a partner decides it in a pair)."""
    request_id = (entry.details or {}).get("accessRequestId")
    if entry.operation not in (ops.APPROVE_REQUEST, ops.REJECT_REQUEST) or not request_id:
        return []
    try:
        return list(AccessRequest.objects.filter(pk=uuid.UUID(str(request_id))).values_list("requester_id", flat=True))
    except ValueError:
        return []


def _after_job(sender, job: Job, **kwargs) -> None:
    from labs import services, teardown
    from portal import enqueue

    if job.initiated_by_id:
        services.check_runs_of([job.initiated_by_id])
    retired = teardown.retired_sandbox_of(job)
    if retired is not None:
        enqueue.after_commit(services.TEARDOWN_TASK, str(retired.pk))


def connect() -> None:
    post_save.connect(_after_activity, sender=ActivityLogEntry, dispatch_uid="labs-check-after-activity")
    job_finished.connect(_after_job, sender=Job, dispatch_uid="labs-check-after-job")
