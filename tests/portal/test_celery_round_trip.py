"""A task enqueued on commit is consumed from Redis by a real worker and writes to the database."""

import time

import pytest

pytestmark = [pytest.mark.celery, pytest.mark.django_db(transaction=True)]


def test_worker_check_runs_on_a_real_worker(lab, worker):
    """GIVEN a real worker on Redis WHEN the trainer checks workers THEN the worker finishes it."""
    from portal import services
    from portal.models import Operation

    operation = services.check_workers(lab.trainer)

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        operation.refresh_from_db()
        if operation.status != Operation.Status.IN_PROGRESS:
            break
        time.sleep(0.1)
    assert operation.status == Operation.Status.SUCCEEDED
    assert operation.message.startswith("Worker ")


def test_nothing_is_enqueued_when_the_transaction_rolls_back(lab, worker):
    from django.db import transaction

    from portal import services
    from portal.models import Operation

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with transaction.atomic():
            services.check_workers(lab.trainer)
            raise Boom
    assert not Operation.objects.exists()
