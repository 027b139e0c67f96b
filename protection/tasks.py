"""Celery tasks: thin, take ids, and call into the job machinery and services."""

from celery import shared_task


@shared_task(acks_late=True, ignore_result=True)
def run_job(job_id: str) -> None:
    from protection import jobs

    jobs.run(job_id)


@shared_task(ignore_result=True, expires=50)
def reconcile_jobs() -> None:
    from protection import jobs

    jobs.reconcile()
