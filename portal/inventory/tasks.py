"""Inventory tasks: thin wrappers that load ids and call services."""

from celery import shared_task


@shared_task(acks_late=True, ignore_result=True, name="portal.inventory.run_volume_job")
def run_volume_job(volume_id: int, operation_id: str) -> None:
    """Write sample data onto a volume, or compute its checksum (the Volume row says which)."""
    from portal.inventory import services

    services.run_volume_job(volume_id, operation_id)
