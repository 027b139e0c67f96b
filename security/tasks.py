"""Security's periodic work: thin Celery tasks that call services."""

from celery import shared_task


@shared_task(ignore_result=True, expires=50)
def close_expired_grants() -> int:
    """Every minute (beat): mark ended Resource Guard grants Expired and log each expiry."""
    from security.mua import expiry

    return expiry.close_expired_grants()


@shared_task(ignore_result=True, expires=3000)
def verify_activity_log() -> dict:
    """Every hour (beat): check the activity log's hash chain, store the outcome for the Activity log page,
    and raise "Activity log tampered" the first time a break is found."""
    from security import chain_check

    row = chain_check.run_check()
    return {"state": row.state, "entries": row.entries_checked, "break": row.break_kind or None,
            "sequence": row.break_sequence}
