"""Backups through the services on real data: Backup now with the rule choice and the per-day limits,
recovery points (tag, expiry, sizes, bytes really in the store), failures and cancels leaving nothing,
the vault identity's rights checked when the job runs, Stop backup and Resume backup, and who may
do what (authorization matrix)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError

from protection import jobs
from protection.models import Job, JobStatus, ProtectionState, RecoveryPoint
from protection.services import backups
from security import clock, roles
from security import services as security_services
from security.guards import GuardDenied
from security.models import RoleAssignment
from tests.protection._backups_fixtures import (  # noqa: F401  (fixtures)
    ADLS, ESAN, PG, _fast_passwords, backup_now_and_run, filled, inventory, make_policy, principal_with, protect,
    put_blobs, run_job, sample_files, snapshots_of, spec, tree_of, vault,
)
from protection.services.policies import Retention

pytestmark = pytest.mark.django_db


@pytest.fixture
def adls(lab, vault, make_policy, filled):
    policy = make_policy(ADLS, "adls-daily", default=Retention(30, "Days"), extra={"Weekly": Retention(12, "Weeks")})
    return protect(lab, vault, policy, filled.account, name="bi-adls")


def vault_store(vault):
    from vaults.storage import open_store

    return lambda: open_store(vault)


def test_backup_now_puts_every_container_in_the_store_and_makes_one_point(lab, adls, filled, tmp_path):
    """GIVEN an ADLS instance of two filled containers WHEN the admin runs Backup now with the Weekly
    rule THEN the job completes, one recovery point holds one engine snapshot per container, tagged
    Weekly with a 12-week expiry, and the store gives the files back byte for byte and verifies."""
    assert adls.protection_state == ProtectionState.CONFIGURED
    job = backup_now_and_run(lab.personas["backup-admin"].principal, adls, rule="Weekly")
    assert job.status == JobStatus.COMPLETED, job.error_message
    point = RecoveryPoint.objects.get(instance=adls)
    assert job.recovery_point_id == point.pk
    assert point.retention_tag == "Weekly" and point.is_user_triggered
    assert point.expiry_time == point.recovery_point_time + dt.timedelta(weeks=12)
    assert point.datastore == RecoveryPoint.Datastore.VAULT
    assert [m["item"] for m in point.manifests] == ["documents", "images"]
    assert point.manifest_id == point.manifests[0]["id"]
    assert point.item_count == 7 + 4
    assert point.logical_bytes == sum(len(d) for d in sample_files(1).values()) + sum(len(d) for d in sample_files(2, count=3).values())
    assert point.transferred_bytes == point.logical_bytes
    assert 0 < point.stored_bytes <= point.logical_bytes + 64 * 1024
    assert point.copies == [{"region": "eastus", "role": "primary", "store": "vault"}]
    assert job.extended_info["retentionTag"] == "Weekly"
    with vault_store(adls.vault)() as store:
        for manifest in point.manifests:
            assert store.verify(manifest["id"]).ok
        store.restore(point.manifests[0]["id"], str(tmp_path / "out"))
    assert tree_of(tmp_path / "out") == sample_files(1)


def test_the_second_backup_is_incremental(lab, adls, filled, monkeypatch):
    """GIVEN a first backup WHEN one file changes and a second backup runs THEN only that file is
    re-read (the engine's files cache, keyed per instance and container) and little is stored."""
    # Files written less than 2 s before a backup are re-read by the next one (their mtime may not
    # tell a later change apart); the test writes and backs up at once, so that window is closed.
    monkeypatch.setattr("vaults.store.store.RACY_NS", 0)
    first = backup_now_and_run(lab.trainer, adls)
    assert first.status == JobStatus.COMPLETED
    documents = filled.account.containers.get(name="documents")
    put_blobs(lab.trainer, documents, {"new.txt": b"a new blob\n" * 1000})
    second = backup_now_and_run(lab.trainer, adls)
    assert second.status == JobStatus.COMPLETED, second.error_message
    point = second.recovery_point
    assert point.transferred_bytes == 11_000  # only the new blob was read
    assert point.stored_bytes < 11_000
    assert [m["unchanged"] for m in point.manifests] == [7, 4]
    assert RecoveryPoint.objects.filter(instance=adls).count() == 2
