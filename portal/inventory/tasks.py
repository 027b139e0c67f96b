"""Inventory tasks: thin wrappers that load ids and call services."""

from celery import shared_task

from portal.inventory.services import volume_jobs


@shared_task(acks_late=True, ignore_result=True, name=volume_jobs.RUN_VOLUME_JOB_TASK)
def run_volume_job(volume_id: int, operation_id: str) -> None:
    """Write sample data onto a volume, or compute its checksum (the Volume row says which)."""
    volume_jobs.run_volume_job(volume_id, operation_id)
