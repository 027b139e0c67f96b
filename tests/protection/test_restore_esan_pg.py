"""Restoring Elastic SAN volumes (checksum, sparseness, never overwrite) and PostgreSQL databases and files."""

from __future__ import annotations

import os
import secrets
import subprocess

import pytest
from django.core.exceptions import ValidationError

from portal.inventory import postgres as pg
from portal.inventory import services as inv
from portal.inventory import volumes as volume_files
from portal.inventory.models import PostgresDatabase, Volume
from protection.jobs import runner as jobs
from protection.models import Job
from protection.restores import layout, services, targets, validation
from tests._image_checksum import whole_image_sha256
from tests._s3 import BOTH_BACKENDS
from tests.protection._restore_fixtures import (  # noqa: F401
    ESAN, PG, backup, filled, inventory, make_policy, new_account, pg_database, protect,
    restore_and_run, tree_of, vault,
)

pytestmark = pytest.mark.django_db


# =================================================================================================
# Elastic SAN
# =================================================================================================


@pytest.fixture
def esan_point(lab, vault, make_policy, filled):
    volume = filled.volumes[0]
    instance = protect(lab, vault, make_policy(ESAN), volume)
    return volume, backup(lab, instance)


@BOTH_BACKENDS
def test_volume_restore_keeps_checksum_and_stays_sparse(lab, esan_point):
    volume, point = esan_point
    target = targets.VolumeTarget(volume.volume_group.resource_id, "vol-restored")
    job = restore_and_run(lab.trainer, point, target, lab=lab)
    assert job.status == "Completed", (job.error_code, job.error_message)
    restored = Volume.objects.get(volume_group=volume.volume_group, name="vol-restored")
    expected = layout.volume_checksum(point)
    assert expected and restored.last_checksum == expected
    assert volume_files.image_checksum(restored.image_path) == volume_files.image_checksum(volume.image_path)
    src, dst = os.stat(volume.image_path), os.stat(restored.image_path)
    assert dst.st_size == src.st_size
    assert dst.st_blocks <= src.st_blocks + 64 and dst.st_blocks * 512 < dst.st_size // 8  # holes stayed holes
    summary = job.extended_info["restore"]
    assert summary["checksumMatches"] is True and summary["checksum"] == expected
    assert job.bytes_done == job.bytes_total  # percent by the blocks that hold data
    assert not [n for n in os.listdir(volume.volume_group.data_path) if n.startswith(".strongroom")]


def test_volume_restore_never_overwrites(lab, esan_point):
    volume, point = esan_point
    before = volume_files.image_checksum(volume.image_path)
    target = targets.VolumeTarget(volume.volume_group.resource_id, volume.name)
    with pytest.raises(ValidationError) as info:
        services.validate_restore(lab.trainer, point, target)
    assert validation.VOLUME_EXISTS in validation.codes_of(info.value)
    with pytest.raises(ValidationError):
        services.start_restore(lab.trainer, point, target)
    assert volume_files.image_checksum(volume.image_path) == before
    assert not Job.objects.filter(operation="Restore").exists()


def test_volume_restore_needs_importer_and_snapshot_group_reader(lab, esan_point):
    from protection.restores import readiness

    volume, point = esan_point
    target = targets.VolumeTarget(volume.volume_group.resource_id, "vol-new")
    resolved = validation.resolve(point, target)
    needs = readiness.needs_for(point, target, resolved)
    assert [n.role for n in needs] == ["Elastic SAN Volume Importer", "Reader"]
    ready = readiness.check(lab.trainer, point.instance.vault, needs)
    # Backup configuration gave the identity Disk Snapshot Contributor on the snapshot RG: it reads there.
    assert [n.role for n in ready.missing] == ["Elastic SAN Volume Importer"] and ready.can_assign
    services.assign_restore_roles(lab.trainer, point, target, readiness.SCOPE_RESOURCE)
    assert services.validate_restore(lab.trainer, point, target).readiness.ok


def _recorded_before_content_checksums(point, volume, *, damaged=False):
    """The point as one taken before content checksums records it: the image's whole SHA-256, bare hex."""
    whole = whole_image_sha256(volume.image_path)
    if damaged:
        whole = whole[::-1]
    point.verify_details["backup"]["checksum"] = whole
    point.save(update_fields=["verify_details"])
    return whole


def test_a_point_recorded_with_a_whole_image_sha256_restores_and_is_checked_against_it(lab, esan_point):
    volume, point = esan_point
    whole = _recorded_before_content_checksums(point, volume)
    job = restore_and_run(lab.trainer, point, targets.VolumeTarget(volume.volume_group.resource_id, "vol-old"), lab=lab)
    assert job.status == "Completed", (job.error_code, job.error_message)
    summary = job.extended_info["restore"]
    assert summary["checksum"] == whole and summary["checksumMatches"] is True
    restored = Volume.objects.get(name="vol-old")
    assert restored.last_checksum == volume_files.image_checksum(volume.image_path)  # the volume's own: the new kind


def test_a_point_whose_whole_image_sha256_differs_creates_no_volume(lab, esan_point):
    volume, point = esan_point
    wrong = _recorded_before_content_checksums(point, volume, damaged=True)
    job = restore_and_run(lab.trainer, point, targets.VolumeTarget(volume.volume_group.resource_id, "vol-old"), lab=lab)
    assert job.status == "Failed" and job.error_code == "UserErrorRecoveryPointDamaged"
    assert f"differs from the one recorded at backup ({wrong})" in job.error_message
    assert not Volume.objects.filter(name="vol-old").exists()
    assert not [n for n in os.listdir(volume.volume_group.data_path) if n.startswith((".strongroom", "vol-old"))]


@BOTH_BACKENDS
def test_volume_restore_of_damaged_point_creates_no_volume(lab, esan_point):
    from tests.protection.test_verify import corrupt_every_pack

    volume, point = esan_point
    corrupt_every_pack(point)
    job = restore_and_run(lab.trainer, point, targets.VolumeTarget(volume.volume_group.resource_id, "vol-bad"), lab=lab)
    assert job.status == "Failed" and job.error_code == "UserErrorRecoveryPointDamaged"
    assert not Volume.objects.filter(name="vol-bad").exists()
    assert not [n for n in os.listdir(volume.volume_group.data_path) if n.startswith((".strongroom", "vol-bad"))]
    verify = services.start_verify(lab.trainer, point)
    jobs.run(verify.pk)
    point.refresh_from_db()
    assert point.health == "Damaged" and point.verify_details["damagedItems"] == [volume.name]
    assert point.verify_details["backup"]["checksum"]  # what the backup recorded is kept


def test_restores_per_day_limit(lab, esan_point):
    volume, point = esan_point
    # The tenth restore of the day runs (the worker does not count its own job) ...
    for i in range(9):
        Job.objects.create(vault=point.instance.vault, instance=point.instance, operation="Restore", category="Restore",
                           status="Completed", start_time=point.recovery_point_time)
    job = restore_and_run(lab.trainer, point, targets.VolumeTarget(volume.volume_group.resource_id, "vol-tenth"), lab=lab)
    assert job.status == "Completed", job.error_message
    # ... an eleventh is refused.
    with pytest.raises(ValidationError) as info:
        services.validate_restore(lab.trainer, point, targets.VolumeTarget(volume.volume_group.resource_id, "vol-z"))
    assert validation.THROTTLED in validation.codes_of(info.value)


# =================================================================================================
# PostgreSQL
# =================================================================================================


@pytest.fixture
def pg_point(lab, vault, make_policy, inventory, pg_database):
    source = pg_database("sr_rsrc")
    inv.refresh_postgres_server(lab.trainer, inventory.server)
    instance = protect(lab, vault, make_policy(PG), inventory.server)
    point = backup(lab, instance)
    return inventory.server, source, point


@pytest.fixture
def new_db_name():
    params = pg.ConnectionParams("127.0.0.1", 5432, "postgres")
    made = []

    def make(prefix="sr_rtgt"):
        worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
        name = f"{prefix}_{worker}_{secrets.token_hex(4)}"
        made.append(name)
        return name

    yield make
    for name in made:
        pg.drop_database(params, name)


def rows_of(params) -> dict:
    """Every row of every user table, sorted: 'the same rows in every schema'."""
    from psycopg import sql

    out = {}
    with pg.connect(params) as conn:
        for schema, table in conn.execute(
                "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
                "AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2").fetchall():
            rows = conn.execute(sql.SQL("SELECT * FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table))).fetchall()
            out[f"{schema}.{table}"] = sorted(map(repr, rows))
    return out


def test_database_restore_has_the_same_rows_in_every_schema(lab, pg_point, new_db_name):
    server, source, point = pg_point
    name = new_db_name()
    job = restore_and_run(lab.trainer, point, targets.PgDatabaseTarget(source, server.resource_id, name), lab=lab)
    assert job.status == "Completed", (job.error_code, job.error_message)
    params = server.connection_params()
    assert rows_of(params.with_database(name)) == rows_of(params.with_database(source))
    assert len(rows_of(params.with_database(name))) == 5
    database = PostgresDatabase.objects.get(server=server, name=name)
    assert database.created_by_strongroom
    summary = job.extended_info["restore"]
    assert summary["rows"] == sum(pg.table_counts(params.with_database(source)).values())
    assert summary["links"][0]["url"].endswith(f"/{database.pk}/")


def test_database_restore_refuses_an_existing_name_before_writing(lab, pg_point):
    server, source, point = pg_point
    before = rows_of(server.connection_params(source))
    with pytest.raises(ValidationError) as info:
        services.validate_restore(lab.trainer, point, targets.PgDatabaseTarget(source, server.resource_id, source))
    assert validation.DATABASE_EXISTS in validation.codes_of(info.value)
    for bad in ("template1", "x; DROP", "", "a" * 70):
        with pytest.raises(ValidationError) as info:
            services.validate_restore(lab.trainer, point, targets.PgDatabaseTarget(source, server.resource_id, bad))
        assert validation.INVALID_NAME in validation.codes_of(info.value), bad
    assert rows_of(server.connection_params(source)) == before


def test_failed_pg_restore_drops_the_new_database(lab, pg_point, new_db_name, monkeypatch, tmp_path):
    from protection.restores import postgres as pg_restore

    server, source, point = pg_point
    name = new_db_name()
    fake = tmp_path / "pg_restore"
    fake.write_text("#!/bin/sh\nhead -c 1000 >/dev/null\necho 'pg_restore: error: simulated failure' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(pg_restore, "tool", lambda n: str(fake))
    job = restore_and_run(lab.trainer, point, targets.PgDatabaseTarget(source, server.resource_id, name), lab=lab)
    assert job.status == "Failed" and job.error_code == pg_restore.RESTORE_FAILED
    assert "simulated failure" in job.error_message
    assert not pg.database_exists(server.connection_params(), name)
    assert not PostgresDatabase.objects.filter(server=server, name=name).exists()


def test_a_pg_restore_statement_past_the_statement_timeout_fails_coded_and_drops_the_new_database(
        lab, pg_point, new_db_name, monkeypatch, tmp_path, settings):
    """GIVEN a 1 s statement timeout and a pg_restore whose statement runs on (a stand-in that, as
    pg_restore does, sets the session's timeouts to 0, then runs pg_sleep through psql with the
    environment it is given) WHEN restoring as a database THEN the
    watch cancels it, the job fails UserErrorPostgresStatementTimeout, the new database is dropped,
    and the password reached the tool in PGPASSWORD, never in its arguments."""
    from protection.restores import postgres as pg_restore

    settings.STRONGROOM_PG_STATEMENT_TIMEOUT = 1
    server, source, point = pg_point
    name = new_db_name()
    log = tmp_path / "calls.log"
    fake = tmp_path / "pg_restore"
    fake.write_text(f"""#!/bin/sh
echo "args: $*" >> {log}
echo "app: $PGAPPNAME options: $PGOPTIONS password-set: ${{PGPASSWORD:+yes}}" >> {log}
cat > /dev/null &
exec psql -X -q -v ON_ERROR_STOP=1 -c "SET statement_timeout = 0" -c "SET lock_timeout = 0" -c "SELECT pg_sleep(120)"
""")
    fake.chmod(0o755)
    monkeypatch.setattr(pg_restore, "tool", lambda n: str(fake))
    job = restore_and_run(lab.trainer, point, targets.PgDatabaseTarget(source, server.resource_id, name), lab=lab)
    assert (job.status, job.error_code) == ("Failed", "UserErrorPostgresStatementTimeout"), job.error_message
    assert f"Restoring '{source}' into '{name}' stopped" in job.error_message and "pg_sleep(120)" in job.error_message
    assert (job.end_time - job.start_time).total_seconds() < 100
    assert not pg.database_exists(server.connection_params(), name)
    calls = log.read_text()
    assert f"app: strongroom-job-{job.pk}" in calls and "statement_timeout=1000" in calls and "password-set: yes" in calls
    assert server.password() and server.password() not in calls


def test_cancelled_pg_restore_drops_the_new_database(lab, pg_point, new_db_name, monkeypatch):
    from protection.datasources.base import RunContext

    server, source, point = pg_point
    name = new_db_name()
    original = RunContext.engine_progress

    def engine_progress(self, label):
        callback = original(self, label)

        def wrapped(p):
            Job.objects.filter(pk=self.job.pk).update(cancel_requested=True)
            callback(p)

        return wrapped

    monkeypatch.setattr(jobs, "PROGRESS_WRITE_INTERVAL", 0)
    monkeypatch.setattr(RunContext, "engine_progress", engine_progress)
    job = restore_and_run(lab.trainer, point, targets.PgDatabaseTarget(source, server.resource_id, name), lab=lab)
    assert job.status == "Cancelled"
    assert not pg.database_exists(server.connection_params(), name)


def test_restore_as_files_writes_the_dumps_byte_for_byte(lab, pg_point, tmp_path):
    server, source, point = pg_point
    account = new_account(lab)
    container = inv.create_container(lab.trainer, account, name="pgdumps")
    target = targets.PgFilesTarget(container.resource_id, "restore 1/", source)
    job = restore_and_run(lab.trainer, point, target, lab=lab)
    assert job.status == "Completed", (job.error_code, job.error_message)
    files = tree_of(container.path)
    assert set(files) == {"restore 1/globals.sql", f"restore 1/{source}.dump"}
    with layout.open_point_store(point) as store:
        for name, part in validation.file_names(point, target):
            out = tmp_path / "expected"
            with open(out, "wb") as f:
                store.restore_stream(part.snapshot_id, f)
            assert files[name] == out.read_bytes()
    listing = subprocess.run(["pg_restore", "--list", str(container.path / "restore 1" / f"{source}.dump")],
                             capture_output=True, text=True, check=True).stdout
    assert "TABLE DATA sales customers" in listing
    # The same again: refused before a byte, the files are there.
    with pytest.raises(ValidationError) as info:
        services.validate_restore(lab.trainer, point, target)
    assert validation.FILES_EXIST in validation.codes_of(info.value)


def test_restore_as_files_needs_blob_data_contributor(lab, pg_point):
    from protection.restores import readiness

    server, source, point = pg_point
    account = new_account(lab)
    container = inv.create_container(lab.trainer, account, name="pgdumps")
    target = targets.PgFilesTarget(container.resource_id, "", "")
    with pytest.raises(services.RestoreNotReady) as info:
        services.validate_restore(lab.trainer, point, target)
    assert [n.role for n in info.value.readiness.missing] == ["Storage Blob Data Contributor"]
    services.assign_restore_roles(lab.trainer, point, target, readiness.SCOPE_RESOURCE)
    job = services.start_restore(lab.trainer, point, target)
    jobs.run(job.pk)
    job.refresh_from_db()
    assert job.status == "Completed", job.error_message
    assert len(job.extended_info["restore"]["files"]) == 1 + len(layout.databases(point))


def test_damaged_dump_leaves_no_file(lab, pg_point):
    from tests.protection.test_verify import corrupt_every_pack

    server, source, point = pg_point
    account = new_account(lab)
    container = inv.create_container(lab.trainer, account, name="pgdumps")
    corrupt_every_pack(point)
    job = restore_and_run(lab.trainer, point, targets.PgFilesTarget(container.resource_id, "x/", source), lab=lab)
    assert job.status == "Failed" and job.error_code == "UserErrorRecoveryPointDamaged"
    assert tree_of(container.path) == {}
