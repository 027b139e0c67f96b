"""Shared fixtures: the lab's tenancy and personas, data roots under tmp_path, hypothesis profiles."""

import os

import pytest
from hypothesis import HealthCheck, settings as hypothesis_settings

hypothesis_settings.register_profile(
    "ci", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis_settings.register_profile("dev", max_examples=10, deadline=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(autouse=True)
def _data_roots(settings, tmp_path):
    """Every test writes its real data under its own temporary folder."""
    settings.STRONGROOM_DATA_ROOT = tmp_path / "data"
    settings.STRONGROOM_ATTACH_ROOTS = [tmp_path / "attach"]
    settings.STRONGROOM_LAB_MODE = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.STRONGROOM_LAB_LARGE_VOLUME_MIB = 16  # the lab's large volume, kept small in tests
    (tmp_path / "attach").mkdir()


@pytest.fixture(autouse=True)
def _fresh_clock():
    from security import clock

    clock.forget_cached_offset()
    yield
    clock.forget_cached_offset()


@pytest.fixture
def lab(db):
    """The seeded lab tenancy: trainer (Owner at /), subscriptions, resource groups, personas."""
    from portal.lab import seed_tenancy

    return seed_tenancy()


@pytest.fixture
def trainer(lab):
    return lab.trainer


@pytest.fixture
def backup_admin(lab):
    return lab.personas["backup-admin"].principal


@pytest.fixture
def backup_operator(lab):
    return lab.personas["backup-operator"].principal


@pytest.fixture
def security_admin(lab):
    return lab.personas["security-admin"].principal


@pytest.fixture
def reader(lab):
    return lab.personas["reader"].principal


@pytest.fixture
def outsider(lab):
    return lab.personas["outsider"].principal


@pytest.fixture
def signed_in_client(client):
    """A test client signed in as a lab user: ``signed_in_client(principal)``."""

    def sign_in(principal):
        client.force_login(principal.user)
        return client

    return sign_in


@pytest.fixture
def worker(request, worker_id):
    """A real Celery worker thread consuming from Redis on a queue of this test's own.

    A queue per xdist worker and process, so parallel test processes never run each other's tasks.
    In CI (STRONGROOM_REQUIRE_SERVICES) a missing Redis broker fails the test instead of skipping it.
    """
    from django.conf import settings

    if not settings.CELERY_BROKER_URL.startswith("redis://"):
        if os.environ.get("STRONGROOM_REQUIRE_SERVICES"):
            pytest.fail(f"CI must run {request.node.nodeid} against Redis (CELERY_BROKER_URL).")
        pytest.skip("No Redis broker configured (CELERY_BROKER_URL); run `make test` with Redis up.")
    from celery.contrib.testing.worker import start_worker

    from portal.celery import app

    queue = f"strongroom-test-{worker_id}-{os.getpid()}"
    previous = app.conf.task_default_queue
    app.conf.task_default_queue = queue
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, queues=[queue], loglevel="WARNING"):
            yield app
    finally:
        app.conf.task_default_queue = previous
