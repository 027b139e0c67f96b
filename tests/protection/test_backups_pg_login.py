"""PostgreSQL with the login Azure gives you: a non-superuser admin (LOGIN CREATEDB CREATEROLE).

The backup dumps the globals without role passwords, every database the login can read, and names
every other database in the job (CompletedWithWarnings) with its reason; no password hash reaches the
recovery point, even with a superuser; a restore into a new database runs as the login; and a table
locked by another session fails the job with a coded error after the lock-wait timeout.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time

import pytest
from django.db import connection
from django.urls import reverse
from psycopg import sql

from portal.inventory import postgres as pg
from portal.inventory import services as inv
from portal.inventory.models import PostgresDatabase
from protection.models import JobStatus, RecoveryPoint
from protection.restores import targets
from tests.protection._restore_fixtures import (  # noqa: F401  (fixtures)
    PG, backup_now_and_run, inventory, make_policy, new_account, pg_database, protect,
    restore_and_run, tree_of, vault,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_made(pg_login, worker_id):
    """``admin_made(prefix, setup=[...])``: a database made by the superuser (the login does not own
    it), with ``setup`` statements run in it as the superuser; dropped afterwards."""
    made = []

    def make(prefix, setup=()):
        name = f"{prefix}_{worker_id}_{secrets.token_hex(4)}"
        pg.create_database(pg_login.admin, name)
        made.append(name)
        with pg.connect(pg_login.admin.with_database(name), autocommit=True) as conn:
            for statement in setup:
                conn.execute(statement)
        return name

    yield make
    for name in made:
        with pg.connect(pg_login.admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def md5_role(pg_login, worker_id):
    """A role whose password is stored as an md5 hash (the login's own is SCRAM-SHA-256); dropped afterwards."""
    name = f"sr_md5_{worker_id}_{secrets.token_hex(4)}"
    password = secrets.token_hex(8)
    with pg.connect(pg_login.admin, autocommit=True) as conn:
        conn.execute("SET password_encryption = 'md5'")
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(password)))
    yield "md5" + hashlib.md5((password + name).encode()).hexdigest()
    with pg.connect(pg_login.admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def stored_hashes(admin) -> list[str]:
    with pg.connect(admin) as conn:
        return [r[0] for r in conn.execute("SELECT rolpassword FROM pg_authid WHERE rolpassword IS NOT NULL")]


def restore_as_files(lab, point, prefix):
    account = new_account(lab)
    container = inv.create_container(lab.trainer, account, name="pgfiles")
    job = restore_and_run(lab.trainer, point, targets.PgFilesTarget(container.resource_id, prefix, ""), lab=lab)
    assert job.status == JobStatus.COMPLETED, (job.error_code, job.error_message)
    return tree_of(container.path)


def assert_no_password_hash(files: dict, md5_hash: str) -> None:
    for name, data in files.items():
        assert b"SCRAM-SHA-256$" not in data, name
        assert md5_hash.encode() not in data, name
    globals_sql = next(data for name, data in files.items() if name.endswith("globals.sql"))
    assert b"CREATE ROLE" in globals_sql  # the roles are there, only their passwords are not
    assert not re.search(rb"md5[0-9a-f]{32}", globals_sql) and b"PASSWORD" not in globals_sql


def test_a_non_superuser_login_backs_up_every_readable_database_and_names_each_one_it_skips(
        lab, vault, make_policy, inventory, pg_login, pg_database, admin_made, md5_role, pg_cluster_turn):
    """GIVEN the server registered with a login that is not a superuser, a database the login made,
    databases it may not read (no SELECT on a table, no CONNECT), a test_* one and Strongroom's own
    WHEN the server is backed up THEN the job is CompletedWithWarnings, the readable database is in the
    point, every skipped one is named with its reason, and no password hash is in the restored files."""
    assert inventory.server.admin_user == pg_login.name
    assert not pg.login_info(inventory.server.connection_params()).superuser
    assert any(h.startswith("SCRAM-SHA-256$") for h in stored_hashes(pg_login.admin)) and md5_role in stored_hashes(pg_login.admin)
    readable = pg_database("sr_pgl_mine")
    no_select = admin_made("sr_pgl_nosel", ["CREATE TABLE secrets (id int)", "INSERT INTO secrets VALUES (1)"])
    no_connect = admin_made("sr_pgl_noconn")
    with pg.connect(pg_login.admin, autocommit=True) as conn:
        conn.execute(sql.SQL("REVOKE CONNECT ON DATABASE {} FROM PUBLIC").format(sql.Identifier(no_connect)))
    test_db = admin_made("test_sr_pgl")
    own = connection.settings_dict["NAME"]

    instance = protect(lab, vault, make_policy(PG, "pg-login"), inventory.server, name="bi-pg-login")
    job = backup_now_and_run(lab.trainer, instance)

    assert job.status == JobStatus.COMPLETED_WITH_WARNINGS, (job.error_code, job.error_message)
    items = [m["item"] for m in job.recovery_point.manifests]
    assert items[0] == "globals.sql" and f"{readable}.dump" in items
    assert not {f"{no_select}.dump", f"{no_connect}.dump", f"{test_db}.dump", f"{own}.dump"} & set(items)
    warnings = job.extended_info["warnings"]

    def warning_for(name):
        found = [w for w in warnings if f"Database '{name}' was not backed up" in w]
        assert len(found) == 1, (name, warnings)
        return found[0]

    assert f"no SELECT on 1 table(s) or sequence(s): public.secrets" in warning_for(no_select)
    assert f"the login '{pg_login.name}' has no CONNECT privilege" in warning_for(no_connect)
    assert "a test database" in warning_for(test_db)
    assert "Strongroom's own database" in warning_for(own)
    assert "the maintenance database" in warning_for("postgres")
    assert not any("template" in w for w in warnings)  # templates: in the details, not a warning each time
    skipped = {s["name"]: s["reason"] for s in job.recovery_point.verify_details["backup"]["skippedDatabases"]}
    assert {no_select, no_connect, test_db, own, "postgres", "template0", "template1"} <= set(skipped)
    # The job's page shows the list.
    from django.test import Client

    client = Client()
    client.force_login(lab.trainer.user)
    page = client.get(reverse("protection:job_detail", args=[job.pk])).content.decode()
    assert "Completed with warnings" in page and f"Database &#x27;{no_connect}&#x27; was not backed up" in page

    files = restore_as_files(lab, job.recovery_point, "as-login/")
    assert f"as-login/{readable}.dump" in files
    assert_no_password_hash(files, md5_role)


def test_a_superuser_login_keeps_password_hashes_out_of_the_recovery_point_too(
        lab, vault, make_policy, inventory, pg_login, pg_database, md5_role, pg_cluster_turn):
    """GIVEN the server registered with the superuser (which may read pg_authid) WHEN backed up and
    restored as files THEN globals.sql holds the roles but no SCRAM or md5 hash."""
    from portal.inventory.models import PostgresServer

    PostgresServer.objects.filter(pk=inventory.server.pk).update(admin_user="postgres", password_encrypted="")
    inventory.server.refresh_from_db()
    assert pg.login_info(inventory.server.connection_params()).superuser
    pg_database("sr_pgl_su")
    instance = protect(lab, vault, make_policy(PG, "pg-su"), inventory.server, name="bi-pg-su")
    job = backup_now_and_run(lab.trainer, instance)
    assert job.status in (JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_WARNINGS), (job.error_code, job.error_message)
    assert_no_password_hash(restore_as_files(lab, job.recovery_point, "as-su/"), md5_role)


def test_restore_into_a_new_database_runs_as_the_login_and_the_login_owns_it(
        lab, vault, make_policy, inventory, pg_login, pg_database):
    source = pg_database("sr_pgl_src")
    inv.refresh_postgres_server(lab.trainer, inventory.server)
    instance = protect(lab, vault, make_policy(PG, "pg-rs"), inventory.server, name="bi-pg-rs")
    backup_now_and_run(lab.trainer, instance)
    point = RecoveryPoint.objects.filter(instance=instance).latest("recovery_point_time")
    name = f"sr_pgl_new_{secrets.token_hex(4)}"
    try:
        job = restore_and_run(lab.trainer, point, targets.PgDatabaseTarget(source, inventory.server.resource_id, name),
                              lab=lab)
        assert job.status == JobStatus.COMPLETED, (job.error_code, job.error_message)
        with pg.connect(pg_login.admin) as conn:
            owner = conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", [name]).fetchone()[0]
        assert owner == pg_login.name
        with pg.connect(pg_login.params.with_database(name)) as conn:
            owners = {r[0] for r in conn.execute("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname "
                                                 "NOT IN ('pg_catalog', 'information_schema')")}
        assert owners == {pg_login.name}
        assert pg.table_counts(pg_login.params.with_database(name)) == pg.table_counts(pg_login.params.with_database(source))
        assert PostgresDatabase.objects.get(server=inventory.server, name=name).owner == pg_login.name
    finally:
        pg.drop_database(pg_login.admin, name)


@pytest.fixture
def lock_holder(pg_login):
    """``lock_holder(database, table)``: another session holding ACCESS EXCLUSIVE on the table until the
    test ends (or 120 s pass, so a regression fails the test instead of hanging it)."""
    held = []

    def hold(database, table):
        conn = pg.connect(pg_login.admin.with_database(database).with_application("sr-test-lock-holder"))
        conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        pid = conn.info.backend_pid

        def release():
            with pg.connect(pg_login.admin, autocommit=True) as other:
                other.execute("SELECT pg_terminate_backend(%s)", [pid])

        timer = threading.Timer(120, release)
        timer.start()
        held.append((conn, timer))
        return conn

    yield hold
    for conn, timer in held:
        timer.cancel()
        conn.close()


def test_a_table_locked_by_another_session_fails_the_backup_with_a_coded_error_after_the_lock_timeout(
        lab, vault, make_policy, inventory, pg_database, lock_holder, settings):
    """GIVEN a 1 s lock-wait timeout and another session holding ACCESS EXCLUSIVE on a table WHEN the
    server is backed up THEN the job fails UserErrorPostgresLockTimeout naming the table and the holder,
    keeps no recovery point, and does not wait for the lock to go away."""
    settings.STRONGROOM_PG_LOCK_WAIT_TIMEOUT = 1
    name = pg_database("sr_pgl_lock")
    holder = lock_holder(name, "sales.orders")
    holder_pid = holder.info.backend_pid
    instance = protect(lab, vault, make_policy(PG, "pg-lock"), inventory.server, name="bi-pg-lock")
    started = time.monotonic()
    job = backup_now_and_run(lab.trainer, instance)
    elapsed = time.monotonic() - started
    print(f"Backup with a locked table ended {job.status} after {elapsed:.1f} s (lock-wait timeout 1 s)")
    assert (job.status, job.error_code) == (JobStatus.FAILED, "UserErrorPostgresLockTimeout"), job.error_message
    assert f"Dumping the database '{name}' stopped" in job.error_message
    assert "sales.orders" in job.error_message and f"pid {holder_pid}" in job.error_message
    assert "STRONGROOM_PG_LOCK_WAIT_TIMEOUT" in job.error_message
    assert elapsed < 100  # the holder gives up at 120 s: the job did not wait for it
    assert not RecoveryPoint.objects.filter(instance=instance).exists()
    assert holder.execute("SELECT 1").fetchone() == (1,)  # the holder was left alone, still holding its lock
