"""A task enqueued on commit is consumed from Redis by a real worker and writes to the database."""

import os
import time

import pytest
from django.conf import settings

pytestmark = [pytest.mark.celery, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def redis_worker(worker_id):
    if not settings.CELERY_BROKER_URL.startswith("redis://"):
        if os.environ.get("STRONGROOM_REQUIRE_SERVICES"):
            pytest.fail("CI must run the Celery round trip against Redis (CELERY_BROKER_URL).")
        pytest.skip("No Redis broker configured (CELERY_BROKER_URL); run `make test` with Redis up.")
    from celery.contrib.testing.worker import start_worker

    from portal.celery import app

    # One queue per xdist worker, so parallel test processes never run each other's tasks.
    queue = f"strongroom-test-{worker_id}-{os.getpid()}"
    previous = app.conf.task_default_queue
    app.conf.task_default_queue = queue
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, queues=[queue], loglevel="WARNING"):
            yield app
    finally:
        app.conf.task_default_queue = previous


def test_worker_check_runs_on_a_real_worker(lab, redis_worker):
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


def test_nothing_is_enqueued_when_the_transaction_rolls_back(lab, redis_worker):
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
