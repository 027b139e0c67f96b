"""Fixtures for the backups, datasources, retention, dispatch and tiles tests (imported by those modules).

Instances are made the way a person makes them: policies through the policy service and protection
through configure protection (`protect` assigns the vault identity's roles first and runs the
ConfigureProtection job inline). Real data is put in through the inventory services.
"""

from __future__ import annotations

import io
import os
import secrets

import pytest

from protection import datasource_types
from protection.jobs import runner as jobs
from protection.models import Job
from tests.protection._protection_fixtures import (  # noqa: F401  (re-exported fixtures)
    at, grant, inventory, make_policy, principal_with, protect, spec, vault,
)

ADLS, ESAN, PG = datasource_types.ADLS, datasource_types.ELASTIC_SAN, datasource_types.POSTGRES_FLEX


def put_blobs(principal, container, files: dict[str, bytes]):
    from portal.inventory import services as inv

    return inv.upload_blobs(principal, container, [inv.Upload(n, io.BytesIO(d)) for n, d in files.items()])


def sample_files(seed: int, count: int = 6, size: int = 300_000) -> dict[str, bytes]:
    import random

    rng = random.Random(seed)
    files = {f"dir{i % 2}/file {i}.bin": rng.randbytes(size + i) for i in range(count)}
    files["résumé café.txt"] = b"Unicode and spaces\n" * 100
    return files


@pytest.fixture
def filled(lab, inventory):
    """The inventory's two containers filled with files, and the first volume with sample extents."""
    from portal.inventory import services as inv

    documents = inventory.account.containers.get(name="documents")
    images = inventory.account.containers.get(name="images")
    put_blobs(lab.trainer, documents, sample_files(1))
    put_blobs(lab.trainer, images, sample_files(2, count=3))
    inventory.volumes[0] = inv.write_sample_data_now(lab.trainer, inventory.volumes[0])
    return inventory


def run_job(job) -> Job:
    """Run a job inline, as a worker would (the on-commit enqueue never fires in a `db` test)."""
    return jobs.run(job.pk)


def backup_now_and_run(principal, instance, rule="Default") -> Job:
    from protection.backups import services as backups

    job = backups.backup_now(principal, instance, retention_rule=rule)
    return run_job(job)


def snapshots_of(store_opener, prefix: str) -> list:
    with store_opener() as store:
        return [s for s in store.list_snapshots() if s.source_id.startswith(prefix)]


def tree_of(root) -> dict:
    """{relative path: bytes} of every file below ``root``."""
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            full = os.path.join(dirpath, name)
            with open(full, "rb") as f:
                out[os.path.relpath(full, root)] = f.read()
    return out


@pytest.fixture
def pg_database(lab, pg_login):
    """``pg_database(prefix)``: a new sample database on the local server, made by the non-superuser
    test login (so it owns it, as a user of an Azure server would), dropped afterwards."""
    from portal.inventory import postgres

    probe = postgres.test_connection(pg_login.admin)
    if not probe.ok:
        if os.environ.get("STRONGROOM_REQUIRE_SERVICES") == "1":
            pytest.fail(probe.message)
        pytest.skip(f"PostgreSQL is not answering on 127.0.0.1:5432: {probe.message}")
    params = pg_login.params
    made = []

    def make(prefix="sr_bk"):
        name = f"{prefix}_{secrets.token_hex(4)}"
        postgres.create_database(params, name)
        postgres.load_sample_schema(params.with_database(name), seed=len(made) + 1)
        made.append(name)
        return name

    yield make
    for name in made:
        postgres.drop_database(pg_login.admin, name)
