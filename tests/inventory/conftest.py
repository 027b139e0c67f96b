"""Inventory fixtures: a Contributor persona, resources made through the services, and unique
PostgreSQL database names per test worker (dropped again after each test)."""

from __future__ import annotations

import io
import os
import secrets

import pytest

from portal.inventory import postgres, services
from portal.inventory.models import Volume


@pytest.fixture
def contributor(lab):
    """A user with Contributor on the lab resource group (creates resources, cannot assign roles)."""
    from django.contrib.auth import get_user_model

    from security import roles
    from security import services as security_services
    from security.models import RoleDefinition

    user = get_user_model().objects.create_user("carla", password="x")
    principal = security_services.principal_for_user(user)
    security_services.assign_role(
        lab.trainer, assignee=principal, role=RoleDefinition.objects.get(name=roles.CONTRIBUTOR),
        scope=lab.lab_group.resource_id,
    )
    return principal


@pytest.fixture
def account(lab):
    return services.create_storage_account(
        lab.trainer, resource_group=lab.lab_group, name="sasource" + secrets.token_hex(3), region=lab.region
    )


@pytest.fixture
def container(lab, account):
    return services.create_container(lab.trainer, account, name="documents")


def upload(principal, container, files: dict[str, bytes], **kwargs):
    return services.upload_blobs(
        principal, container, [services.Upload(name, io.BytesIO(data)) for name, data in files.items()], **kwargs
    )


@pytest.fixture
def san(lab):
    return services.create_elastic_san(lab.trainer, resource_group=lab.lab_group, name="esan-test", region=lab.region)


@pytest.fixture
def volume_group(lab, san):
    return services.create_volume_group(lab.trainer, san, name="vg-test")


@pytest.fixture
def volume(lab, volume_group) -> Volume:
    return services.create_volume(lab.trainer, volume_group, name="vol-test", size_gib=1)


# --- PostgreSQL ------------------------------------------------------------------------------------

LOCAL = postgres.ConnectionParams("127.0.0.1", 5432, "postgres")


@pytest.fixture(scope="session")
def local_postgres():
    """The shared local cluster; a failure in CI, a visible skip elsewhere when it is down."""
    result = postgres.test_connection(LOCAL)
    if not result.ok:
        if os.environ.get("STRONGROOM_REQUIRE_SERVICES") == "1":
            pytest.fail(result.message)
        pytest.skip(f"PostgreSQL is not answering on 127.0.0.1:5432: {result.message}")
    return LOCAL


@pytest.fixture
def pg_name(local_postgres, worker_id):
    """Make unique database names for this test (worker + random suffix); all dropped afterwards."""
    made = []

    def make(prefix: str = "sr_inv") -> str:
        name = f"{prefix}_{worker_id}_{secrets.token_hex(4)}"
        made.append(name)
        return name

    yield make
    for name in made:
        with postgres.connect(local_postgres, autocommit=True) as conn:
            from psycopg import sql

            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def put():
    """``put(principal, container, {name: bytes}, prefix=..., overwrite=...)`` through the service."""
    return upload

