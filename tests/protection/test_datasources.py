"""Each datasource driver on real data: an Elastic SAN volume image into the snapshot resource
group's operational store (holes and zero blocks skipped, a Snapshot resource per point), and a
PostgreSQL server as globals plus one ``pg_dump -Fc`` per user database, with the tool's exit status
checked before anything is committed and a coded error for a server newer than the local pg_dump."""

from __future__ import annotations

import os
import stat
import subprocess
import textwrap

import pytest

from protection.models import JobStatus, RecoveryPoint
from tests.protection._backups_fixtures import (  # noqa: F401  (fixtures)
    ESAN, PG, backup_now_and_run, filled, inventory, make_policy, pg_database, principal_with,
    protect, snapshots_of, vault,
)

pytestmark = pytest.mark.django_db


# --- Elastic SAN ------------------------------------------------------------------------------------


@pytest.fixture
def esan(lab, vault, make_policy, filled):
    return protect(lab, vault, make_policy(ESAN, "esan-daily"), filled.volumes[0], name="bi-vol-a")


def test_a_volume_backup_is_a_snapshot_resource_in_the_snapshot_resource_group(lab, esan, filled, tmp_path):
    """GIVEN a 1 GiB sparse volume with sample extents WHEN backed up THEN the point is an operational
    snapshot AzureBackup_<datasource id>_<timestamp> in the snapshot resource group, the engine read
    only the allocated extents, and the snapshot restores to an image with the volume's checksum."""
    from portal.inventory import volumes
    from portal.inventory.models import Snapshot
    from protection.datasources.elastic_san import datasource_guid
    from protection.operational_store import open_operational_store, store_path

    volume = filled.volumes[0]
    job = backup_now_and_run(lab.trainer, esan)
    assert job.status == JobStatus.COMPLETED, job.error_message
    point = job.recovery_point
    assert point.datastore == RecoveryPoint.Datastore.OPERATIONAL
    assert point.logical_bytes == volume.size_bytes == 1024**3
    allocated = os.stat(volume.image_path).st_blocks * 512
    # Only the data was read; holes were skipped.
    assert point.transferred_bytes == point.verify_details["backup"]["blocks_bytes"] < 200 * 1024**2
    assert job.bytes_total == point.transferred_bytes
    # The sample data is random (it doesn't compress): the store adds only its headers and encryption.
    assert point.stored_bytes <= point.transferred_bytes * 1.01
    snapshot = Snapshot.objects.get(resource_id=point.snapshot_resource_id)
    assert snapshot.name.startswith(f"AzureBackup_{datasource_guid(esan)}_")
    assert snapshot.resource_group == filled.san.resource_group  # the default snapshot resource group
    assert snapshot.manifest_id == point.manifest_id
    assert snapshot.checksum == volumes.image_checksum(volume.image_path)
    group = filled.san.resource_group
    assert snapshot.store_location == str(store_path(group))
    with open_operational_store(group) as store:
        assert store.verify(point.manifest_id).ok
        image = tmp_path / "attach" / "restored.img"
        store.restore(point.manifest_id, str(image))
    assert volumes.image_checksum(image) == snapshot.checksum
    assert os.stat(image).st_blocks * 512 <= point.transferred_bytes + 1024**2  # restored sparse


def test_the_snapshot_needs_the_identity_rights_on_the_snapshot_group(lab, esan):
    from protection.models import Job
    from security import roles
    from security import services as security_services
    from security.models import RoleAssignment

    assignment = RoleAssignment.objects.get(principal=esan.vault.identity, role__name=roles.DISK_SNAPSHOT_CONTRIBUTOR)
    security_services.remove_role_assignment(lab.trainer, assignment)
    job = backup_now_and_run(lab.trainer, esan)
    assert (job.status, job.error_code) == (JobStatus.FAILED, "UserErrorMissingRequiredPermissions")
    assert "Disk Snapshot Contributor" in job.error_message
    assert Job.objects.get(pk=job.pk).recovery_point is None


def test_unchanged_blocks_are_not_stored_twice(lab, esan):
    first = backup_now_and_run(lab.trainer, esan).recovery_point
    second = backup_now_and_run(lab.trainer, esan).recovery_point
    assert second.stored_bytes == 0 < first.stored_bytes
    assert second.snapshot_resource_id != first.snapshot_resource_id


# --- PostgreSQL -----------------------------------------------------------------------------------


@pytest.fixture
def pg(lab, vault, make_policy, inventory):
    return protect(lab, vault, make_policy(PG, "pg-weekly"), inventory.server, name="bi-pg")


def _vault_store(vault):
    from vaults.storage import open_store

    return lambda: open_store(vault)


def test_a_server_backup_dumps_globals_and_each_user_database(lab, pg, pg_database, tmp_path):
    """GIVEN a server holding a sample database WHEN backed up THEN the point holds globals.sql and one
    custom-format dump per user database (never Strongroom's own or a test_* one), each restorable."""
    from django.db import connection

    from portal.inventory import postgres

    name = pg_database()
    job = backup_now_and_run(lab.trainer, pg)
    assert job.status in (JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_WARNINGS), job.error_message
    point = job.recovery_point
    items = [m["item"] for m in point.manifests]
    assert items[0] == "globals.sql"
    assert f"{name}.dump" in items
    assert not any(i.startswith("test_") for i in items)
    assert f"{connection.settings_dict['NAME']}.dump" not in items
    assert point.item_count == len(items)
    dump = next(m for m in point.manifests if m["item"] == f"{name}.dump")
    with _vault_store(pg.vault)() as store:
        assert all(store.verify(m["id"]).ok for m in point.manifests)
        with open(tmp_path / "db.dump", "wb") as out:
            store.restore_stream(dump["id"], out)
        with open(tmp_path / "globals.sql", "wb") as out:
            store.restore_stream(point.manifests[0]["id"], out)
    assert b"CREATE ROLE" in (tmp_path / "globals.sql").read_bytes()
    # The dump is a real custom-format archive: restore it into a new database and compare the rows.
    params = postgres.ConnectionParams("127.0.0.1", 5432, "postgres")
    copy = f"{name}_copy"
    postgres.create_database(params, copy)
    try:
        env = {**os.environ, **params.with_database(copy).env()}
        subprocess.run(["pg_restore", "--no-owner", "--dbname", copy, str(tmp_path / "db.dump")], env=env, check=True,
                       capture_output=True)
        assert postgres.table_counts(params.with_database(copy)) == postgres.table_counts(params.with_database(name))
    finally:
        postgres.drop_database(params, copy)


def _fake_tool(tmp_path, name, script):
    folder = tmp_path / "fakebin"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n" + textwrap.dedent(script))
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return folder


def test_a_dump_that_exits_non_zero_leaves_no_snapshot(lab, pg, tmp_path, monkeypatch):
    """GIVEN a pg_dump that writes output and then fails WHEN the server is backed up THEN the job
    fails with UserErrorPostgresDumpFailed and the store holds no snapshot of that half dump."""
    real = subprocess.run(["sh", "-c", "command -v pg_dump"], capture_output=True, text=True).stdout.strip()
    folder = _fake_tool(tmp_path, "pg_dump", f"""
        if [ "$1" = "--version" ]; then exec {real} --version; fi
        head -c 3000000 /dev/urandom
        echo "pg_dump: error: query failed: connection lost" >&2
        exit 1
    """)
    monkeypatch.setenv("PATH", f"{folder}:{os.environ['PATH']}")
    job = backup_now_and_run(lab.trainer, pg)
    assert (job.status, job.error_code) == (JobStatus.FAILED, "UserErrorPostgresDumpFailed")
    assert "connection lost" in job.error_message and "status 1" in job.error_message
    assert not RecoveryPoint.objects.filter(instance=pg).exists()
    assert snapshots_of(_vault_store(pg.vault), f"bi:{pg.pk}") == []  # not even globals.sql is kept


def test_a_server_newer_than_pg_dump_fails_with_a_coded_readable_error(lab, pg, tmp_path, monkeypatch):
    folder = _fake_tool(tmp_path, "pg_dump", """
        echo "pg_dump (PostgreSQL) 12.22"
    """)
    monkeypatch.setenv("PATH", f"{folder}:{os.environ['PATH']}")
    job = backup_now_and_run(lab.trainer, pg)
    assert (job.status, job.error_code) == (JobStatus.FAILED, "UserErrorPostgresVersionMismatch")
    assert "newer than this worker's pg_dump (PostgreSQL) 12.22" in job.error_message
    assert not RecoveryPoint.objects.filter(instance=pg).exists()


def test_the_password_never_reaches_the_command_line(lab, vault, make_policy, inventory, tmp_path, monkeypatch):
    """GIVEN a server with a password WHEN it is dumped THEN pg_dump gets it in PGPASSWORD only."""
    from portal.inventory.models import PostgresServer
    from security.crypto import encrypt_secret

    server = inventory.server
    PostgresServer.objects.filter(pk=server.pk).update(
        password_encrypted=encrypt_secret("s3cret-pw", purpose=server.secret_purpose))
    instance = protect(lab, vault, make_policy(PG, "pg-pw"), inventory.server, name="bi-pg-pw")
    log = tmp_path / "calls.log"
    real = subprocess.run(["sh", "-c", "command -v pg_dumpall"], capture_output=True, text=True).stdout.strip()
    folder = _fake_tool(tmp_path, "pg_dumpall", f"""
        echo "args: $*" >> {log}
        echo "env: $PGPASSWORD" >> {log}
        exec {real} "$@"
    """)
    monkeypatch.setenv("PATH", f"{folder}:{os.environ['PATH']}")
    backup_now_and_run(lab.trainer, instance)
    calls = log.read_text()
    assert "env: s3cret-pw" in calls
    assert "s3cret-pw" not in calls.split("env:")[0]
    # Globals without role passwords (a non-superuser may not read pg_authid; no hash is kept).
    assert "--globals-only --no-role-passwords" in calls.split("env:")[0]


def test_pg_dump_gets_the_lock_wait_timeout_and_the_session_timeouts(lab, pg, pg_database, tmp_path, monkeypatch,
                                                                      settings):
    settings.STRONGROOM_PG_LOCK_WAIT_TIMEOUT = 20
    settings.STRONGROOM_PG_STATEMENT_TIMEOUT = 600
    name = pg_database()
    log = tmp_path / "calls.log"
    real = subprocess.run(["sh", "-c", "command -v pg_dump"], capture_output=True, text=True).stdout.strip()
    folder = _fake_tool(tmp_path, "pg_dump", f"""
        if [ "$1" != "--version" ]; then echo "$PGDATABASE args: $* options: $PGOPTIONS app: $PGAPPNAME" >> {log}; fi
        exec {real} "$@"
    """)
    monkeypatch.setenv("PATH", f"{folder}:{os.environ['PATH']}")
    job = backup_now_and_run(lab.trainer, pg)
    line = next(x for x in log.read_text().splitlines() if x.startswith(f"{name} "))
    assert "--lock-wait-timeout=22000" in line  # the watch's 20 s, then pg_dump's own limit as a safety net
    assert "options: -c lock_timeout=20000 -c statement_timeout=600000" in line
    assert f"app: strongroom-job-{job.pk}" in line
