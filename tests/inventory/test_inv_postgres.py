"""PostgreSQL servers on the shared local cluster: sealed passwords, discovery exclusions, samples.

Every database made here has a unique name (test worker + random suffix) and is dropped afterwards.
"""

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from psycopg import sql

from portal.inventory import postgres, services
from portal.inventory.models import PostgresServer
from security.crypto import decrypt_secret


@pytest.fixture
def server(lab, local_postgres):
    return services.create_postgres_server(
        lab.trainer, resource_group=lab.lab_group, name="pg-test", region=lab.region,
        host="127.0.0.1", port=5432, admin_user="postgres",
    )


def test_it_seals_the_password_for_this_server_only(lab):
    server = services.create_postgres_server(
        lab.trainer, resource_group=lab.lab_group, name="pg-sealed", region=lab.region,
        host="db.example.com", admin_user="admin", password="s3cret!",
    )
    stored = PostgresServer.objects.get(pk=server.pk)
    assert "s3cret" not in stored.password_encrypted
    assert decrypt_secret(stored.password_encrypted, purpose=f"postgres-server:{stored.resource_id}") == "s3cret!"
    assert stored.connection_params().password == "s3cret!"
    assert "s3cret" not in repr(stored.connection_params())
    with pytest.raises(Exception):
        decrypt_secret(stored.password_encrypted, purpose="postgres-server:/some/other/server")
    assert stored.connection_params().env()["PGPASSWORD"] == "s3cret!"


def test_discovery_lists_user_databases_and_never_templates_postgres_ours_or_tests(lab, server, pg_name, local_postgres):
    """GIVEN the shared cluster with Strongroom's own (test) database, a user database and a test_* one
    WHEN the server is refreshed
    THEN only the user database is among those listed; templates, postgres, ours and test_* never are."""
    user_db = pg_name("sr_inv_user")
    test_db = pg_name("test_sr_inv")
    postgres.create_database(local_postgres, user_db)
    postgres.create_database(local_postgres, test_db)
    result = services.refresh_postgres_server(lab.trainer, server)
    assert result.ok and server.connection_status == PostgresServer.ConnectionStatus.SUCCEEDED
    listed = set(server.databases.values_list("name", flat=True))
    own = settings.DATABASES["default"]["NAME"]
    assert user_db in listed
    assert not listed & {"template0", "template1", "postgres", test_db, own, own.removeprefix("test_")}
    assert not [name for name in listed if name.startswith("test_")]


def test_it_creates_a_sample_database_with_several_schemas_and_rows(lab, server, pg_name):
    name = pg_name()
    database = services.create_sample_database(lab.trainer, server, name=name)
    assert database.is_sample and database.created_by_strongroom
    counts = postgres.table_counts(server.connection_params(name))
    assert counts == {
        "hr.employees": 40, "inventory.products": 60, "inventory.stock": 120,
        "sales.customers": 120, "sales.orders": 600,
    }
    with postgres.connect(server.connection_params(name)) as conn:
        views = conn.execute("SELECT count(*) FROM sales.order_totals").fetchone()[0]
    assert 0 < views <= 120
    services.refresh_postgres_server(lab.trainer, server)
    assert server.databases.filter(name=name, is_sample=True).exists()  # the flag survives discovery


@pytest.mark.parametrize("reserved", ["postgres", "template1", "test_anything"])
def test_it_refuses_reserved_database_names(lab, server, reserved):
    with pytest.raises(ValidationError) as caught:
        services.create_sample_database(lab.trainer, server, name=reserved)
    assert "reserved" in caught.value.message_dict["name"][0]


def test_it_refuses_strongroom_s_own_database_name(lab, server):
    with pytest.raises(ValidationError):
        services.create_sample_database(lab.trainer, server, name=settings.DATABASES["default"]["NAME"])


def test_it_refuses_an_existing_database_and_changes_nothing(lab, server, pg_name, local_postgres):
    name = pg_name()
    postgres.create_database(local_postgres, name)
    with pytest.raises(ValidationError) as caught:
        services.create_sample_database(lab.trainer, server, name=name)
    assert "already exists" in caught.value.message_dict["name"][0]
    assert postgres.table_counts(local_postgres.with_database(name)) == {}


def test_it_drops_only_databases_it_created(lab, server, pg_name, local_postgres):
    made = services.create_sample_database(lab.trainer, server, name=pg_name())
    foreign_name = pg_name()
    postgres.create_database(local_postgres, foreign_name)
    services.refresh_postgres_server(lab.trainer, server)
    foreign = server.databases.get(name=foreign_name)
    with pytest.raises(ValidationError):
        services.delete_database(lab.trainer, foreign)
    assert postgres.database_exists(local_postgres, foreign_name)
    services.delete_database(lab.trainer, made)
    assert not postgres.database_exists(local_postgres, made.name)


def test_it_says_plainly_when_the_server_does_not_answer(lab, client):
    server = services.create_postgres_server(
        lab.trainer, resource_group=lab.lab_group, name="pg-down", region=lab.region,
        host="127.0.0.1", port=1, admin_user="postgres",
    )
    result = services.refresh_postgres_server(lab.trainer, server)
    assert not result.ok and "Could not connect to 127.0.0.1:1" in result.message
    client.force_login(lab.trainer.user)
    page = client.get(f"/postgresql-servers/{server.pk}/").content.decode()
    assert "Cannot connect" in page and "Strongroom cannot reach PostgreSQL at 127.0.0.1:1" in page


def test_it_creates_an_empty_database_for_restores(lab, server, pg_name, local_postgres):
    name = pg_name()
    services.create_database(lab.trainer, server, name=name)
    with postgres.connect(local_postgres.with_database(name)) as conn:
        conn.execute(sql.SQL("CREATE TABLE t (id int)"))
        conn.commit()
    assert postgres.table_counts(local_postgres.with_database(name)) == {"public.t": 0}
