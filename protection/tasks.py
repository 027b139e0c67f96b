"""Celery tasks: thin, take ids, and call into the job machinery and services.

Their names are how the rest reaches them: the beat schedule (``CELERY_BEAT_SCHEDULE``) and
`protection.jobs.runner`, which sends ``run_job`` by name, so nothing imports this module back.
"""

from celery import shared_task

from protection.backups import retention
from protection.backups import services as backups
from protection.deletion import services as deletion
from protection.jobs import runner as jobs
from protection.restores import services as restores
from protection.restores import rehydration


@shared_task(name=jobs.RUN_JOB_TASK, acks_late=True, ignore_result=True)
def run_job(job_id: str) -> None:
    jobs.run(job_id)


@shared_task(ignore_result=True, expires=50)
def reconcile_jobs() -> None:
    jobs.reconcile()


@shared_task(ignore_result=True, expires=50)
def dispatch_backups() -> None:
    """Beat, every minute: enqueue the scheduled backups that are due."""
    backups.dispatch_due_backups()


@shared_task(ignore_result=True, expires=540)
def start_retention() -> None:
    """Beat, every 10 minutes: a Retention job per vault with recovery points to expire; the archive tier's
    rehydrations that completed (and the restores waiting on them), rehydrated copies that ended, and the
    policies' tiering moves."""
    retention.start_retention_runs()
    rehydration.settle()


@shared_task(ignore_result=True, expires=3000)
def start_verifies() -> None:
    """Beat, every hour: a Verify job for each recovery point not verified in the last week."""
    restores.start_scheduled_verifies()


@shared_task(ignore_result=True, expires=540)
def start_purges() -> None:
    """Beat, every 10 minutes: Upcoming Purge alerts, and a Purge job per soft-deleted instance past
    its scheduled purge time."""
    deletion.start_purges()
