"""Celery tasks: thin, take ids, and call into the job machinery and services."""

from celery import shared_task


@shared_task(name="protection.tasks.run_job", acks_late=True, ignore_result=True)  # sent by name: jobs.runner
def run_job(job_id: str) -> None:
    from protection.jobs import runner as jobs

    jobs.run(job_id)


@shared_task(ignore_result=True, expires=50)
def reconcile_jobs() -> None:
    from protection.jobs import runner as jobs

    jobs.reconcile()


@shared_task(ignore_result=True, expires=50)
def dispatch_backups() -> None:
    """Beat, every minute: enqueue the scheduled backups that are due."""
    from protection.backups import services as backups

    backups.dispatch_due_backups()


@shared_task(ignore_result=True, expires=540)
def start_retention() -> None:
    """Beat, every 10 minutes: a Retention job per vault with recovery points to expire."""
    from protection.backups import retention

    retention.start_retention_runs()


@shared_task(ignore_result=True, expires=3000)
def start_verifies() -> None:
    """Beat, every hour: a Verify job for each recovery point not verified in the last week."""
    from protection.restores import services

    services.start_scheduled_verifies()


@shared_task(ignore_result=True, expires=540)
def start_purges() -> None:
    """Beat, every 10 minutes: Upcoming Purge alerts, and a Purge job per soft-deleted instance past
    its scheduled purge time."""
    from protection.deletion import services as deletion

    deletion.start_purges()
