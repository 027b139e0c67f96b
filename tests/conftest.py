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
