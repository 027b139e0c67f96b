"""PostgreSQL servers on the shared local cluster: sealed passwords, discovery exclusions, samples,
what a non-superuser login can back up, and the watch that ends a tool's statement stuck on a lock.

Every database made here has a unique name (test worker + random suffix) and is dropped afterwards.
The server is reached through the non-superuser test login unless a test is about the superuser.
"""

import threading
import time

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from psycopg import sql

from portal.inventory import postgres, services
from portal.inventory.models import PostgresServer
from security.crypto import decrypt_secret


@pytest.fixture
def server(lab, local_postgres, pg_login):
    """The local server through the non-superuser test login (as Azure's admin login)."""
    return pg_login.server(lab.trainer, resource_group=lab.lab_group, name="pg-test", region=lab.region)


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
    assert f"as '{server.admin_user}', not a superuser" in result.message  # the test login, as on Azure
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


def test_a_database_made_for_a_restore_is_owned_by_the_login_and_empty(lab, server, pg_name, pg_login):
    name = pg_name()
    database = services.create_database(lab.trainer, server, name=name)
    assert database.owner == pg_login.name
    with postgres.connect(pg_login.admin) as conn:
        owner = conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", [name]).fetchone()[0]
    assert owner == pg_login.name
    assert postgres.table_counts(pg_login.params.with_database(name)) == {}


def test_the_survey_says_which_databases_the_login_can_dump_and_why_it_skips_the_others(
        lab, server, pg_name, pg_login, local_postgres):
    """GIVEN databases the login owns, one whose table only the superuser may read, one with a
    row-level security policy, one without CONNECT for the login, and a test_* one WHEN surveyed as
    the login THEN only the readable one has no skip reason, and each other one says why."""
    mine = pg_name("sr_inv_mine")
    postgres.create_database(pg_login.params, mine)
    hidden = pg_name("sr_inv_hidden")
    postgres.create_database(local_postgres, hidden)
    with postgres.connect(local_postgres.with_database(hidden), autocommit=True) as conn:
        conn.execute("CREATE TABLE payroll (id int)")
    rls = pg_name("sr_inv_rls")
    postgres.create_database(local_postgres, rls)
    with postgres.connect(local_postgres.with_database(rls), autocommit=True) as conn:
        conn.execute("CREATE TABLE notes (id int, author text)")
        conn.execute("ALTER TABLE notes ENABLE ROW LEVEL SECURITY")
        conn.execute(sql.SQL("GRANT SELECT ON notes TO {}").format(sql.Identifier(pg_login.name)))
    closed = pg_name("sr_inv_closed")
    postgres.create_database(local_postgres, closed)
    with postgres.connect(local_postgres, autocommit=True) as conn:
        conn.execute(sql.SQL("REVOKE CONNECT ON DATABASE {} FROM PUBLIC").format(sql.Identifier(closed)))
    test_db = pg_name("test_sr_inv")
    postgres.create_database(local_postgres, test_db)

    survey = {d.name: d for d in postgres.survey_databases(server.connection_params())}
    assert survey[mine].skip_reason is None
    assert survey[hidden].skip_reason == f"the login '{pg_login.name}' has no SELECT on 1 table(s) or sequence(s): public.payroll"
    assert survey[rls].skip_reason.startswith("row-level security would hide rows of public.notes")
    assert survey[closed].skip_reason == f"the login '{pg_login.name}' has no CONNECT privilege on it"
    assert survey[test_db].skip_reason == "it is a test database"
    assert survey[settings.DATABASES["default"]["NAME"]].skip_reason == "it is Strongroom's own database"
    assert survey["template0"].is_template and survey["template0"].skip_reason
    # The superuser reads them all (the survey is about the login, not the databases).
    as_superuser = {d.name: d for d in postgres.survey_databases(local_postgres)}
    assert as_superuser[hidden].skip_reason is None and as_superuser[rls].skip_reason is None


@pytest.fixture
def locked_table(pg_name, pg_login, local_postgres):
    """A database of the login's with a table that another session (the superuser) holds ACCESS
    EXCLUSIVE on until the test ends."""
    name = pg_name("sr_inv_lock")
    postgres.create_database(pg_login.params, name)
    with postgres.connect(pg_login.params.with_database(name), autocommit=True) as conn:
        conn.execute("CREATE TABLE busy (id int)")
    holder = postgres.connect(local_postgres.with_database(name).with_application("sr-test-holder"))
    holder.execute("LOCK TABLE busy IN ACCESS EXCLUSIVE MODE")
    yield name, holder.info.backend_pid
    holder.close()


def _run_blocked(params, statement):
    """Run ``statement`` on a thread; returns (thread, outcome dict with 'error' and 'seconds')."""
    outcome = {}

    def run():
        started = time.monotonic()
        try:
            with postgres.connect(params, autocommit=True) as conn:
                conn.execute(statement)
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            outcome["error"] = exc
        outcome["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_the_statement_watch_cancels_a_statement_waiting_on_a_lock_and_names_the_holder(pg_login, locked_table):
    name, holder_pid = locked_table
    params = pg_login.params.with_database(name).with_application(f"sr-test-watch-{name}")
    timeouts = postgres.ToolTimeouts(lock_wait=1, statement=3600)
    with postgres.StatementWatch(params, timeouts) as watch:
        thread, outcome = _run_blocked(params, "SELECT count(*) FROM busy")
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert isinstance(outcome.get("error"), postgres.psycopg.errors.QueryCanceled)
    assert 1 <= outcome["seconds"] < 30
    kind, text = watch.tripped
    assert kind == "lock" and "the table busy" in text and f"pid {holder_pid}" in text
    assert "lock-wait timeout of 1 s" in text


def test_the_statement_watch_cancels_a_statement_running_past_the_statement_timeout(pg_login, pg_name):
    params = pg_login.params.with_application(f"sr-test-watch-{pg_name('x')}")
    with postgres.StatementWatch(params, postgres.ToolTimeouts(lock_wait=60, statement=1)) as watch:
        thread, outcome = _run_blocked(params, "SELECT pg_sleep(60)")
        thread.join(timeout=60)
    assert isinstance(outcome.get("error"), postgres.psycopg.errors.QueryCanceled) and outcome["seconds"] < 30
    kind, text = watch.tripped
    assert kind == "statement" and "pg_sleep(60)" in text and "statement timeout of 1 s" in text


def test_the_watch_leaves_other_applications_sessions_alone(pg_login, locked_table):
    name, _pid = locked_table
    watched = pg_login.params.with_database(name).with_application(f"sr-test-watched-{name}")
    other = pg_login.params.with_database(name).with_application(f"sr-test-other-{name}")
    with postgres.StatementWatch(watched, postgres.ToolTimeouts(lock_wait=0.5, statement=0.5)) as watch:
        thread, outcome = _run_blocked(other, "SELECT pg_sleep(2)")
        thread.join(timeout=60)
    assert "error" not in outcome and watch.tripped is None


def test_the_tools_get_the_timeouts_and_the_password_in_the_environment(pg_login, settings):
    settings.STRONGROOM_PG_LOCK_WAIT_TIMEOUT = 7
    settings.STRONGROOM_PG_STATEMENT_TIMEOUT = 90
    env = pg_login.params.with_application("strongroom-job-x").with_timeouts(postgres.tool_timeouts()).env()
    assert env["PGOPTIONS"] == "-c lock_timeout=7000 -c statement_timeout=90000"
    assert env["PGAPPNAME"] == "strongroom-job-x" and env["PGPASSWORD"] == pg_login.password
    assert "PGOPTIONS" not in pg_login.params.env()
