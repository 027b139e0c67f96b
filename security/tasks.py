"""Security's periodic work: thin Celery tasks that call services."""

from celery import shared_task


@shared_task(ignore_result=True, expires=50)
def close_expired_grants() -> int:
    """Every minute (beat): mark ended Resource Guard grants Expired and log each expiry."""
    from security.mua import expiry

    return expiry.close_expired_grants()
