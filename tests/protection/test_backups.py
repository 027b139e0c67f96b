"""Backups through the services on real data: Backup now with the rule choice and the per-day limits,
recovery points (tag, expiry, sizes, bytes really in the store), failures and cancels leaving nothing,
the vault identity's rights checked when the job runs, Stop backup and Resume backup, and who may
do what (authorization matrix)."""

from __future__ import annotations

import datetime as dt

import pytest

from tests._s3 import BOTH_BACKENDS
from django.core.exceptions import ValidationError

from protection.jobs import runner as jobs
from protection.models import Job, JobStatus, ProtectionState, RecoveryPoint
from protection.backups import services as backups
from security import clock, roles
from security import services as security_services
from security.guards import GuardDenied
from security.models import RoleAssignment
from tests.protection._backups_fixtures import (  # noqa: F401  (fixtures)
    ADLS, ESAN, PG, backup_now_and_run, filled, inventory, make_policy, principal_with, protect,
    put_blobs, run_job, sample_files, snapshots_of, spec, tree_of, vault,
)
from protection.policies.services import Retention

pytestmark = pytest.mark.django_db


@pytest.fixture
def adls(lab, vault, make_policy, filled):
    policy = make_policy(ADLS, "adls-daily", default=Retention(30, "Days"), extra={"Weekly": Retention(12, "Weeks")})
    return protect(lab, vault, policy, filled.account, name="bi-adls")


def vault_store(vault):
    from vaults.storage import open_store

    return lambda: open_store(vault)


@BOTH_BACKENDS
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


@BOTH_BACKENDS
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


# --- Backup now: choices and limits ---------------------------------------------------------------


def test_backup_now_offers_the_policy_retention_rules(adls):
    assert [tag for tag, _ in backups.backup_rule_choices(adls)] == ["Weekly", "Default"]
    with pytest.raises(ValidationError) as info:
        backups.backup_now(adls.vault.created_by, adls, retention_rule="Yearly")
    assert "retention_rule" in info.value.message_dict


def to_the_next_noon(lab):
    """Move the lab clock to the next 12:00 UTC, so that a day's backups never straddle midnight."""
    now = clock.now()
    noon = backups.start_of_day(now) + dt.timedelta(hours=12)
    security_services.move_lab_clock(lab.trainer, forward=(noon if noon > now else noon + dt.timedelta(days=1)) - now)


def test_adls_allows_four_on_demand_backups_a_day(lab, adls):
    """GIVEN an ADLS instance (reference: 4 on-demand backups per day) WHEN a fifth is asked the same
    day THEN it is refused with UserErrorBackupRequestThrottled; the next day it is allowed again."""
    to_the_next_noon(lab)
    for _ in range(4):
        assert backup_now_and_run(lab.trainer, adls).status == JobStatus.COMPLETED
    with pytest.raises(ValidationError) as info:
        backups.backup_now(lab.trainer, adls, retention_rule="Default")
    assert info.value.code == backups.THROTTLED
    assert backups.THROTTLED_MESSAGE in info.value.messages[0]
    assert "4 on-demand backups per backup instance per day" in info.value.messages[0]
    assert Job.objects.filter(instance=adls, operation="Backup").count() == 4
    now = clock.now()
    security_services.move_lab_clock(lab.trainer, forward=backups.start_of_day(now) + dt.timedelta(days=1, minutes=1) - now)
    assert backups.backup_now(lab.trainer, adls, retention_rule="Default").status == JobStatus.IN_PROGRESS


def test_elastic_san_allows_ten_on_demand_backups_a_day(lab, vault, make_policy, filled):
    instance = protect(lab, vault, make_policy(ESAN, "esan-daily"), filled.volumes[1], name="bi-vol-b")
    to_the_next_noon(lab)
    for _ in range(10):
        job = backups.backup_now(lab.trainer, instance, retention_rule="Default")
        Job.objects.filter(pk=job.pk).update(status=JobStatus.FAILED)  # ended; still counts for the day
    with pytest.raises(ValidationError) as info:
        backups.backup_now(lab.trainer, instance, retention_rule="Default")
    assert info.value.code == backups.THROTTLED and "10 on-demand" in info.value.messages[0]


def test_a_second_backup_now_waits_for_the_first(lab, adls):
    backups.backup_now(lab.trainer, adls, retention_rule="Default")
    with pytest.raises(ValidationError, match="already in progress"):
        backups.backup_now(lab.trainer, adls, retention_rule="Default")


# --- the vault identity's rights, when the job runs ------------------------------------------------


def test_a_role_revoked_in_iam_fails_the_next_backup(lab, adls):
    """GIVEN a configured instance WHEN the vault identity's Storage Account Backup Contributor
    assignment is removed THEN the next backup fails with UserErrorMissingRequiredPermissions and the
    reference's message, and no recovery point exists."""
    assignment = RoleAssignment.objects.get(principal=adls.vault.identity, role__name=roles.STORAGE_ACCOUNT_BACKUP_CONTRIBUTOR)
    security_services.remove_role_assignment(lab.trainer, assignment)
    job = backup_now_and_run(lab.trainer, adls)
    assert job.status == JobStatus.FAILED
    assert job.error_code == "UserErrorMissingRequiredPermissions"
    assert job.error_message.startswith("Appropriate permissions to perform the operation are missing.")
    assert "Storage Account Backup Contributor" in job.error_message
    assert not RecoveryPoint.objects.filter(instance=adls).exists()
    assert snapshots_of(vault_store(adls.vault), f"bi:{adls.pk}") == []


def test_the_identity_turned_off_fails_the_next_backup(lab, adls):
    from vaults import services as vault_services

    vault_services.set_identity_enabled(lab.trainer, adls.vault, enabled=False)
    job = backup_now_and_run(lab.trainer, adls)
    assert (job.status, job.error_code) == (JobStatus.FAILED, "UserErrorMissingRequiredPermissions")
    assert "identity turned off" in job.error_message


# --- progress and cancel, by count ------------------------------------------------------------------


@BOTH_BACKENDS
def test_progress_reaches_the_job_row_and_a_cancel_leaves_nothing(lab, adls, monkeypatch):
    """GIVEN a running backup WHEN the first progress report of its second container arrives a cancel
    is requested THEN the job ends Cancelled, the first container's committed snapshot is deleted
    again and no point exists."""
    from protection.datasources.base import RunContext

    monkeypatch.setattr(jobs, "PROGRESS_WRITE_INTERVAL", 0)
    seen = []
    original = RunContext.report

    def report(self, **fields):
        seen.append(fields)
        if str(fields.get("current_item", "")).startswith("images") and not self.job.cancel_requested:
            jobs.request_cancel(Job.objects.get(pk=self.job.pk))
        original(self, **fields)

    monkeypatch.setattr(RunContext, "report", report)
    job = backup_now_and_run(lab.trainer, adls)
    assert job.status == JobStatus.CANCELLED
    assert len([f for f in seen if "bytes_done" in f]) >= 2
    assert job.bytes_done > 0 and job.items_total == 11 + 4  # files and folders of both containers
    assert not RecoveryPoint.objects.filter(instance=adls).exists()
    assert snapshots_of(vault_store(adls.vault), f"bi:{adls.pk}") == []


@BOTH_BACKENDS
def test_a_failure_after_the_first_container_deletes_its_snapshot(lab, adls, filled, monkeypatch):
    """GIVEN two containers WHEN the second one vanishes after the first was backed up THEN the job
    fails and the first container's snapshot is removed: a point exists only when all succeeded."""
    import shutil

    from protection.datasources.base import RunContext

    images = filled.account.containers.get(name="images")
    original = RunContext.item_done

    def item_done(self, snapshot):
        original(self, snapshot)
        shutil.rmtree(images.path)

    monkeypatch.setattr(RunContext, "item_done", item_done)
    job = backup_now_and_run(lab.trainer, adls)
    assert job.status == JobStatus.FAILED
    assert "FileNotFoundError" in job.error_message or "images" in job.error_message
    assert snapshots_of(vault_store(adls.vault), f"bi:{adls.pk}") == []


def test_a_missing_container_fails_with_the_reference_code(lab, adls, filled):
    from portal.inventory import services as inv

    inv.delete_container(lab.trainer, filled.account.containers.get(name="images"))
    instance = adls
    instance.all_containers = False
    instance.containers = ["documents", "images"]
    instance.save()
    job = backup_now_and_run(lab.trainer, instance)
    assert (job.status, job.error_code) == (JobStatus.FAILED, "UserErrorIncorrectContainersSelectedForOperation")
    assert "images" in job.error_message


@BOTH_BACKENDS
def test_excluded_containers_are_not_backed_up(lab, vault, make_policy, filled):
    instance = protect(lab, vault, make_policy(ADLS, "adls-x"), filled.account, name="bi-excl",
                       all_containers=True, excluded_containers=["images"])
    job = backup_now_and_run(lab.trainer, instance)
    assert job.status == JobStatus.COMPLETED, job.error_message
    assert [m["item"] for m in job.recovery_point.manifests] == ["documents"]


# --- stop and resume ----------------------------------------------------------------------------------


def test_stop_backup_retain_forever_keeps_every_point_and_stops_the_schedule(lab, adls):
    for _ in range(2):
        backup_now_and_run(lab.trainer, adls)
    backups.stop_backup(lab.trainer, adls, retain=backups.RETAIN_FOREVER, reason="Decommissioned", comments="lab")
    adls.refresh_from_db()
    assert adls.protection_state == ProtectionState.STOPPED and adls.next_backup_at is None
    assert list(RecoveryPoint.objects.filter(instance=adls).values_list("expiry_time", flat=True)) == [None, None]
    with pytest.raises(ValidationError, match="Resume backup first"):
        backups.backup_now(lab.trainer, adls, retention_rule="Default")
    backups.resume_backup(lab.trainer, adls)
    adls.refresh_from_db()
    assert adls.protection_state == ProtectionState.CONFIGURED and adls.next_backup_at > clock.now()
    for point in RecoveryPoint.objects.filter(instance=adls):
        assert point.expiry_time == point.recovery_point_time + dt.timedelta(days=30)


@BOTH_BACKENDS
def test_stop_backup_retain_as_per_policy_keeps_only_the_latest_forever(lab, adls):
    first = backup_now_and_run(lab.trainer, adls).recovery_point
    second = backup_now_and_run(lab.trainer, adls).recovery_point
    backups.stop_backup(lab.trainer, adls, retain=backups.RETAIN_AS_PER_POLICY)
    adls.refresh_from_db()
    assert adls.protection_state == ProtectionState.BACKUPS_SUSPENDED
    first.refresh_from_db(), second.refresh_from_db()
    assert first.expiry_time is not None and second.expiry_time is None
    backups.resume_backup(lab.trainer, adls)
    second.refresh_from_db()
    assert second.expiry_time == second.recovery_point_time + dt.timedelta(days=30)


def test_a_stopped_instance_cannot_be_stopped_again(lab, adls):
    backups.stop_backup(lab.trainer, adls, retain=backups.RETAIN_FOREVER)
    with pytest.raises(ValidationError, match="no backup to stop"):
        backups.stop_backup(lab.trainer, adls, retain=backups.RETAIN_AS_PER_POLICY)
    with pytest.raises(ValidationError):
        backups.stop_backup(lab.trainer, adls, retain="Maybe")


# --- authorization matrix ----------------------------------------------------------------------------

MATRIX = [
    # persona,          backup now, stop backup, cancel job
    ("backup-admin",    True,       True,        True),
    ("backup-operator", True,       False,       False),
    ("reader",          False,      False,       False),
    ("outsider",        False,      False,       False),
]


@pytest.mark.parametrize("persona,may_backup,may_stop,may_cancel", MATRIX)
def test_who_may_back_up_stop_and_cancel(lab, adls, persona, may_backup, may_stop, may_cancel):
    principal = lab.personas[persona].principal

    def attempt(fn):
        try:
            fn()
            return True
        except GuardDenied as exc:
            assert exc.decision.guard == "RBAC"
            return False

    assert attempt(lambda: backups.backup_now(principal, adls, retention_rule="Default")) is may_backup
    job = Job.objects.filter(instance=adls, operation="Backup").first() or backups.backup_now(
        lab.trainer, adls, retention_rule="Default")
    assert attempt(lambda: backups.cancel_job(principal, job)) is may_cancel
    assert attempt(lambda: backups.stop_backup(principal, adls, retain=backups.RETAIN_FOREVER)) is may_stop


# --- geo-redundant vaults: the secondary copy ----------------------------------------------------------


@BOTH_BACKENDS
def test_a_geo_redundant_vault_copies_each_point_to_the_paired_region(lab, adls, filled, tmp_path):
    """GIVEN a geo-redundant vault (the default) WHEN a backup completes THEN a Replication job follows;
    run, it copies every snapshot of the point to the paired region's replica, which verifies and
    restores the same bytes, and the point lists both copies. Expiring the point removes both."""
    from protection.backups import retention
    from vaults.storage import open_secondary_store

    vault = adls.vault
    assert vault.is_geo_redundant and vault.secondary_region is not None
    backup = backup_now_and_run(lab.trainer, adls)
    point = backup.recovery_point
    replication_job = Job.objects.get(operation="Replication", parameters__recoveryPointId=str(point.pk))
    assert backup.extended_info["replicationJobId"] == str(replication_job.pk)
    assert point.copies == [{"region": "eastus", "role": "primary", "store": "vault"}]
    done = run_job(replication_job)
    assert done.status == JobStatus.COMPLETED, done.error_message
    point.refresh_from_db()
    secondary = [c for c in point.copies if c["role"] == "secondary"]
    assert [(c["region"], c["verified"]) for c in secondary] == [(vault.secondary_region.pk, True)]
    with open_secondary_store(vault) as replica:
        assert all(replica.verify(m["id"]).ok for m in point.manifests)
        replica.restore(point.manifests[0]["id"], str(tmp_path / "from-secondary"))
    assert tree_of(tmp_path / "from-secondary") == sample_files(1)
    assert run_job(Job.objects.create(vault=vault, operation="Replication", category="Backup", start_time=clock.now(),
                                      parameters={"recoveryPointId": str(point.pk)})).status == JobStatus.COMPLETED
    # Retention removes the point from both stores.
    RecoveryPoint.objects.filter(pk=point.pk).update(expiry_time=clock.now() - dt.timedelta(minutes=1))
    [ret] = [jobs.run(j.pk) for j in retention.start_retention_runs()]
    assert ret.status == JobStatus.COMPLETED, ret.extended_info
    with open_secondary_store(vault) as replica:
        assert not [s for s in replica.list_snapshots() if s.source_id.startswith(f"bi:{adls.pk}")]
    assert snapshots_of(vault_store(vault), f"bi:{adls.pk}") == []


def test_a_locally_redundant_vault_has_no_secondary_copy(lab, make_policy, filled):
    from vaults import services as vault_services

    vault = vault_services.create_vault(lab.trainer, name="bv-lrs", region=lab.region, resource_group=lab.lab_group,
                                        storage_redundancy="LocallyRedundant")
    instance = protect(lab, vault, make_policy(ADLS, "lrs-daily", in_vault=vault), filled.account, name="bi-lrs")
    job = backup_now_and_run(lab.trainer, instance)
    assert job.status == JobStatus.COMPLETED
    assert "replicationJobId" not in job.extended_info
    assert not Job.objects.filter(operation="Replication").exists()


# --- a worker that died after the engine committed a snapshot ------------------------------------------


@BOTH_BACKENDS
def test_a_rerun_removes_the_snapshot_a_dead_attempt_committed(lab, adls, filled):
    """GIVEN an attempt whose worker died right after the engine wrote a snapshot (before the recovery
    point's row) WHEN the job runs again THEN that snapshot is deleted first; a job the reconciler
    failed instead has its leftover removed by the next retention run."""
    from protection.backups import retention

    job = backups.backup_now(lab.trainer, adls, retention_rule="Default")
    documents = filled.account.containers.get(name="documents")

    def dead_attempt(for_job):
        with vault_store(adls.vault)() as store:
            return store.backup_tree(str(documents.path), source_id=f"bi:{adls.pk}:container:documents",
                                     tags=[f"instance:{adls.pk}", f"job:{for_job.pk}"]).id

    orphan = dead_attempt(job)
    Job.objects.filter(pk=job.pk).update(attempts=1)  # the dead worker's claim was released by reconcile
    done = run_job(job)  # attempt 2
    assert done.status == JobStatus.COMPLETED and done.attempts == 2
    ids = {s.id for s in snapshots_of(vault_store(adls.vault), f"bi:{adls.pk}")}
    assert orphan not in ids and ids == {m["id"] for m in done.recovery_point.manifests}

    lost = backups.backup_now(lab.trainer, adls, retention_rule="Default")
    orphan = dead_attempt(lost)
    Job.objects.filter(pk=lost.pk).update(status=JobStatus.FAILED, error_code="JobHeartbeatLost")
    [ret] = [jobs.run(j.pk) for j in retention.start_retention_runs()]
    assert ret.extended_info["leftoverSnapshotsRemoved"] == 1
    assert orphan not in {s.id for s in snapshots_of(vault_store(adls.vault), f"bi:{adls.pk}")}
    assert retention.start_retention_runs() == []  # done once
