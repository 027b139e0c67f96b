"""Deleting backup data, soft delete, undelete, resume and purge through the services on real data
(issue 10; reference §3.2, §5.5, §6.1; decisions 4 and 7).

Soft delete On: SoftDeleting → SoftDeleted with the purge time of the vault's retention *at deletion*,
nothing expires meanwhile, the vault cannot be deleted, the datasource cannot be protected again in the
same vault, Undelete → ProtectionStopped with every point (which still restores), Resume backup works.
Soft delete Off: the data goes at once through the UnConfigure job and the engine's GC, no alert.
Purge: Upcoming Purge two days before, the purge exactly on time (not a minute early), by the system
principal with its own action (a Resource Guard does not block it), Purge Complete; a store that still
retains the data defers it.
"""

from __future__ import annotations

import datetime as dt

import pytest

from tests._s3 import BOTH_BACKENDS
from django.core import mail
from django.core.exceptions import ValidationError

from protection.jobs import runner as jobs
from protection.models import BackupInstance, Job, JobOperation, JobStatus, ProtectionState, RecoveryPoint
from protection.backups import services as backups
from protection.deletion import services as deletion
from protection.backups import retention
from protection.instances import services as instance_services
from protection.policies.services import Retention
from security import clock
from security import services as security_services
from security.guards import GuardDenied
from security.models import ActivityLogEntry, Alert
from tests.protection._restore_fixtures import (  # noqa: F401  (fixtures)
    ADLS, ESAN, adls_target, backup_now_and_run, filled, inventory, make_policy, new_account,
    principal_with, protect, restore_and_run, sample_files, tree_of, vault,
)
from tests.protection._backups_fixtures import snapshots_of

pytestmark = pytest.mark.django_db


def store_of(vault):
    from vaults.storage import open_store

    return lambda: open_store(vault)


def snapshot_ids(vault, instance) -> set:
    return {s.id for s in snapshots_of(store_of(vault), f"bi:{instance.pk}")}


def run_job(job) -> Job:
    return jobs.run(job.pk)


def alerts(name, **filters):
    return list(Alert.objects.filter(name=name, **filters))


def travel(lab, delta):
    security_services.move_lab_clock(lab.trainer, forward=delta)


@pytest.fixture
def backed_up(lab, vault, make_policy, filled):
    """An ADLS instance of the two filled containers with two recovery points."""
    policy = make_policy(ADLS, "adls-30d", default=Retention(30, "Days"))
    instance = protect(lab, vault, policy, filled.account, name="bi-sd")
    for _ in range(2):
        job = backup_now_and_run(lab.trainer, instance)
        assert job.status == JobStatus.COMPLETED, job.error_message
    instance.refresh_from_db()
    return instance


def soft_delete(principal, instance, **kwargs) -> Job:
    job = deletion.delete_backup_data(principal, instance, confirm_name=instance.name, **kwargs)
    done = run_job(job)
    assert done.status == JobStatus.COMPLETED, (done.error_code, done.error_message)
    instance.refresh_from_db()
    return done


def test_delete_backup_data_soft_deletes_with_the_retention_at_deletion_time(lab, vault, backed_up, backup_admin,
                                                                            settings, django_capture_on_commit_callbacks,
                                                                            monkeypatch):
    """GIVEN soft delete On with 20 days WHEN the backup admin deletes the backup data (name typed, reason,
    comments) THEN the instance is SoftDeleting, then SoftDeleted by the UnConfigure job, purged in 20 days
    (not in the 30 days set afterwards), every point and engine snapshot is still there, the Delete Backup
    Data alert fired (and was e-mailed) and the activity log names the admin and the reason."""
    from vaults import services as vault_services

    vault_services.update_soft_delete(lab.trainer, vault, state="On", retention_days=20)
    before = snapshot_ids(vault, backed_up)
    assert len(before) == 4  # two points, two containers each
    now = clock.now()
    settings.STRONGROOM_ALERT_EMAILS = ["soc@contoso.test"]
    monkeypatch.setattr(jobs, "enqueue", lambda job: None)  # the job runs inline below
    with django_capture_on_commit_callbacks(execute=True):
        job = deletion.delete_backup_data(backup_admin, backed_up, confirm_name="bi-sd", reason="Decommissioned",
                                          comments="ransomware drill")
    backed_up.refresh_from_db()
    assert backed_up.protection_state == ProtectionState.SOFT_DELETING
    assert job.operation == JobOperation.UNCONFIGURE and job.get_operation_display() == "Delete backup data"
    assert abs((backed_up.scheduled_purge_at - (now + dt.timedelta(days=20))).total_seconds()) < 5
    vault_services.update_soft_delete(lab.trainer, vault, state="On", retention_days=30)  # later change: no effect
    assert run_job(job).status == JobStatus.COMPLETED
    backed_up.refresh_from_db()
    assert backed_up.protection_state == ProtectionState.SOFT_DELETED and backed_up.is_soft_deleted
    assert abs((backed_up.scheduled_purge_at - (now + dt.timedelta(days=20))).total_seconds()) < 5
    assert backed_up.delete_reason == "Decommissioned" and backed_up.delete_comments == "ransomware drill"
    assert backed_up.next_backup_at is None
    assert RecoveryPoint.objects.filter(instance=backed_up).count() == 2
    assert snapshot_ids(vault, backed_up) == before
    [alert] = alerts("Delete Backup Data")
    assert alert.affected_resource_id == backed_up.resource_id and alert.category == "Security"
    assert backup_admin.display_name in alert.description and "Decommissioned" in alert.description
    assert [m.to for m in mail.outbox if "Delete Backup Data" in m.subject] == [["soc@contoso.test"]]
    entry = ActivityLogEntry.objects.filter(operation=deletion.INSTANCE_DELETE, status="Succeeded").get()
    assert entry.principal == backup_admin and entry.details["reason"] == "Decommissioned"
    settled = ActivityLogEntry.objects.get(operation=deletion.SOFT_DELETE_COMPLETE)
    assert settled.caller == "Strongroom system"


def test_the_item_name_must_be_typed_and_nothing_changes_otherwise(lab, backed_up):
    for wrong in ("", "bi-SD", "bi-s"):
        with pytest.raises(ValidationError) as exc:
            deletion.delete_backup_data(lab.trainer, backed_up, confirm_name=wrong)
        assert "Type the name of the backup item, 'bi-sd'" in exc.value.message_dict["confirm_name"][0]
    with pytest.raises(ValidationError) as exc:
        deletion.delete_backup_data(lab.trainer, backed_up, confirm_name="bi-sd", reason="Because")
    assert "Choose a reason" in exc.value.message_dict["reason"][0]
    backed_up.refresh_from_db()
    assert backed_up.protection_state == ProtectionState.CONFIGURED and backed_up.deleted_at is None
    assert not Job.objects.filter(operation=JobOperation.UNCONFIGURE).exists()
    assert not alerts("Delete Backup Data")


def test_reader_and_operator_may_not_delete_backup_data(lab, backed_up, reader, backup_operator):
    for who in (reader, backup_operator):
        with pytest.raises(GuardDenied) as exc:
            deletion.delete_backup_data(who, backed_up, confirm_name="bi-sd")
        assert exc.value.decision.guard == "RBAC"
    backed_up.refresh_from_db()
    assert backed_up.protection_state == ProtectionState.CONFIGURED


def test_a_running_backup_blocks_deletion_and_queued_work_is_cancelled(lab, backed_up, monkeypatch):
    monkeypatch.setattr(jobs, "enqueue", lambda job: None)
    queued = backups.backup_now(lab.trainer, backed_up, retention_rule="Default")
    Job.objects.filter(pk=queued.pk).update(claimed_at=clock.now())  # a worker took it
    with pytest.raises(ValidationError) as exc:
        deletion.delete_backup_data(lab.trainer, backed_up, confirm_name="bi-sd")
    assert "UserErrorAnotherOperationInProgress" in exc.value.messages[0]
    Job.objects.filter(pk=queued.pk).update(claimed_at=None)  # back in the queue: deleting cancels it
    deletion.delete_backup_data(lab.trainer, backed_up, confirm_name="bi-sd")
    queued.refresh_from_db()
    assert queued.status == JobStatus.CANCELLED


def test_nothing_of_a_soft_deleted_instance_expires_and_it_blocks_its_vault(lab, vault, backed_up):
    """GIVEN a soft-deleted instance whose points are past their expiry WHEN retention runs and someone
    deletes the vault THEN nothing expires and the vault deletion is refused (Azure's message)."""
    from vaults import services as vault_services
    from vaults.guards import VAULT_NOT_EMPTY_MESSAGE

    soft_delete(lab.trainer, backed_up)
    travel(lab, dt.timedelta(days=12))  # past the 30-day expiry? no: move the points' expiry instead
    RecoveryPoint.objects.filter(instance=backed_up).update(expiry_time=clock.now() - dt.timedelta(days=1))
    assert retention.start_retention_runs() == []
    assert RecoveryPoint.objects.filter(instance=backed_up).count() == 2
    with pytest.raises(GuardDenied) as exc:
        vault_services.delete_vault(lab.trainer, vault)
    assert exc.value.decision.reason == VAULT_NOT_EMPTY_MESSAGE


def test_a_soft_deleted_datasource_cannot_be_protected_again_in_the_same_vault(lab, vault, backed_up, filled,
                                                                              make_policy):
    soft_delete(lab.trainer, backed_up)
    [cand] = [c for c in instance_services.candidates(lab.trainer, vault, ADLS)
              if c.resource_id == filled.account.resource_id]
    assert not cand.offered
    assert cand.reason.startswith("Soft-deleted in this vault (backup instance 'bi-sd'")
    assert "cannot be protected again in the same vault" in cand.reason and "Undelete" in cand.reason
    with pytest.raises(ValidationError) as exc:
        instance_services.configure_protection(
            lab.trainer, vault=vault, policy=backed_up.policy,
            selections=[instance_services.DatasourceSelection(filled.account.resource_id, "bi-again",
                                                              key=cand.key, all_containers=True)])
    assert "cannot be protected again in the same vault" in str(exc.value)
    # Another vault may protect it.
    from vaults import services as vault_services

    other = vault_services.create_vault(lab.trainer, name="bv-other", region=lab.region, resource_group=lab.lab_group)
    assert any(c.offered for c in instance_services.candidates(lab.trainer, other, ADLS)
               if c.resource_id == filled.account.resource_id)


def test_undelete_brings_every_point_back_and_resume_restarts_backups(lab, vault, backed_up, backup_admin, filled):
    """GIVEN a soft-deleted instance WHEN the backup admin undeletes it THEN it is Protection stopped with
    both points (kept forever), a point restores byte for byte, Resume backup schedules it again with the
    points' expiry back, and a new backup works."""
    points = set(RecoveryPoint.objects.filter(instance=backed_up).values_list("pk", flat=True))
    soft_delete(backup_admin, backed_up)
    deletion.undelete(backup_admin, backed_up)
    backed_up.refresh_from_db()
    assert backed_up.protection_state == ProtectionState.STOPPED
    assert backed_up.deleted_at is None and backed_up.scheduled_purge_at is None
    assert set(RecoveryPoint.objects.filter(instance=backed_up).values_list("pk", flat=True)) == points
    assert not RecoveryPoint.objects.filter(instance=backed_up, expiry_time__isnull=False).exists()
    entry = ActivityLogEntry.objects.get(operation=deletion.UNDELETE)
    assert entry.principal == backup_admin and entry.details["recoveryPoints"] == 2

    point = RecoveryPoint.objects.filter(instance=backed_up).order_by("-recovery_point_time").first()
    target = new_account(lab)
    restored = restore_and_run(lab.trainer, point, adls_target(target), lab=lab)
    assert restored.status == JobStatus.COMPLETED, (restored.error_code, restored.error_message)
    assert tree_of(target.data_path / "documents") == sample_files(1)

    backups.resume_backup(backup_admin, backed_up)
    backed_up.refresh_from_db()
    assert backed_up.protection_state == ProtectionState.CONFIGURED and backed_up.next_backup_at is not None
    assert not RecoveryPoint.objects.filter(instance=backed_up, expiry_time__isnull=True).exists()
    assert backup_now_and_run(backup_admin, backed_up).status == JobStatus.COMPLETED
    # Undelete only applies to soft-deleted instances.
    with pytest.raises(GuardDenied, match="not soft deleted"):  # the soft-delete guard (issue 15)
        deletion.undelete(backup_admin, backed_up)


def test_undelete_needs_its_own_permission(lab, backed_up, reader):
    soft_delete(lab.trainer, backed_up)
    with pytest.raises(GuardDenied) as exc:
        deletion.undelete(reader, backed_up)
    assert exc.value.decision.guard == "RBAC" and deletion.UNDELETE in exc.value.decision.reason


@BOTH_BACKENDS
def test_with_soft_delete_off_the_data_goes_at_once_without_an_alert(lab, vault, backed_up):
    """GIVEN soft delete Off WHEN the backup data is deleted THEN the UnConfigure job deletes every engine
    snapshot and point, runs the GC and removes the instance; no Delete Backup Data alert (§6.1)."""
    from vaults import services as vault_services

    vault_services.update_soft_delete(lab.trainer, vault, state="Off")
    assert snapshot_ids(vault, backed_up)
    job = deletion.delete_backup_data(lab.trainer, backed_up, confirm_name="bi-sd")
    assert BackupInstance.objects.get(pk=backed_up.pk).protection_state == ProtectionState.UPDATING
    done = run_job(job)
    assert done.status == JobStatus.COMPLETED, done.error_message
    assert not BackupInstance.objects.filter(pk=backed_up.pk).exists()
    assert not RecoveryPoint.objects.filter(instance_id=backed_up.pk).exists()
    assert snapshot_ids(vault, backed_up) == set()
    assert done.extended_info["recoveryPointsDeleted"] == 2 and len(done.extended_info["gc"]) == 1
    assert done.instance_name == "bi-sd"
    assert not alerts("Delete Backup Data") and not alerts("Purge Complete")
    # The vault is empty of instances now (its policy remains).
    assert not BackupInstance.objects.filter(vault=vault).exists()


def test_an_elastic_san_instance_with_soft_delete_off_loses_its_snapshot_resources(lab, vault, make_policy, filled):
    from portal.inventory.models import Snapshot
    from vaults import services as vault_services

    instance = protect(lab, vault, make_policy(ESAN, "esan"), filled.volumes[0], name="bi-vol")
    point = backup_now_and_run(lab.trainer, instance).recovery_point
    assert Snapshot.objects.filter(resource_id__iexact=point.snapshot_resource_id).exists()
    vault_services.update_soft_delete(lab.trainer, vault, state="Off")
    done = run_job(deletion.delete_backup_data(lab.trainer, instance, confirm_name="bi-vol"))
    assert done.status == JobStatus.COMPLETED, done.error_message
    assert not Snapshot.objects.filter(resource_id__iexact=point.snapshot_resource_id).exists()
    assert not BackupInstance.objects.filter(pk=instance.pk).exists()


@pytest.mark.date_sensitive
@BOTH_BACKENDS
def test_upcoming_purge_then_purge_exactly_on_time(lab, vault, backed_up):
    """GIVEN a soft-deleted instance (14 days) WHEN the lab clock moves THEN Upcoming Purge fires once,
    two days before; a minute before the purge time nothing is purged; a minute after, the Purge job
    deletes every snapshot through the engine (GC reclaims space), removes the instance and raises
    Purge Complete, all as the system principal with the purge action."""
    soft_delete(lab.trainer, backed_up)
    ids = snapshot_ids(vault, backed_up)
    purge_at = backed_up.scheduled_purge_at
    assert deletion.start_purges() == [] and not alerts("Upcoming Purge")
    travel(lab, purge_at - dt.timedelta(days=2, minutes=-1) - clock.now())
    assert deletion.start_purges() == []
    [upcoming] = alerts("Upcoming Purge")
    assert upcoming.affected_resource_id == backed_up.resource_id and f"{purge_at:%Y-%m-%d %H:%M}" in upcoming.description
    assert deletion.warn_upcoming_purges() == 0  # once only

    travel(lab, purge_at - dt.timedelta(minutes=1) - clock.now())
    assert deletion.start_purges() == []
    travel(lab, dt.timedelta(minutes=2))
    [job] = deletion.start_purges()
    assert job.operation == JobOperation.PURGE and job.initiated_by_name == "Purge schedule"
    assert deletion.start_purges() == []  # one at a time per instance
    done = run_job(job)
    assert done.status == JobStatus.COMPLETED, (done.error_message, done.extended_info)
    assert not BackupInstance.objects.filter(pk=backed_up.pk).exists()
    assert snapshot_ids(vault, backed_up) == set() and ids
    assert done.extended_info["recoveryPointsDeleted"] == 2 and done.extended_info["gc"][0].startswith("freed ")
    [complete] = alerts("Purge Complete")
    assert complete.affected_resource_id == backed_up.resource_id
    purges = ActivityLogEntry.objects.filter(operation=deletion.PURGE, status="Succeeded")
    assert purges.count() == 3 and {e.caller for e in purges} == {"Strongroom system"}


def test_past_its_purge_time_an_item_can_no_longer_be_undeleted(lab, vault, backed_up):
    """Undelete works until the scheduled purge (see above); past it, even before the Purge job ran, it is
    refused and the purge goes ahead (as in Azure: the soft-delete retention is over)."""
    soft_delete(lab.trainer, backed_up)
    travel(lab, backed_up.scheduled_purge_at + dt.timedelta(minutes=1) - clock.now())
    [job] = deletion.start_purges()
    with pytest.raises(GuardDenied, match="can no longer be undeleted"):
        deletion.undelete(lab.trainer, backed_up)
    assert run_job(job).status == JobStatus.COMPLETED
    assert not BackupInstance.objects.filter(pk=backed_up.pk).exists()


@pytest.mark.date_sensitive
def test_a_purge_that_fell_due_while_the_clock_was_ahead_still_happens_after_a_reset(lab, vault, backed_up):
    """GIVEN a soft-deleted item whose purge time passes while the lab clock is ahead, and no purge run
    yet WHEN the trainer resets the clock to real time (before its purge time again) THEN the purge was
    recorded at the reset: Undelete is refused and the next purge run deletes it all the same."""
    soft_delete(lab.trainer, backed_up)
    travel(lab, backed_up.scheduled_purge_at + dt.timedelta(minutes=1) - clock.now())
    security_services.move_lab_clock(lab.trainer, reset=True)
    backed_up.refresh_from_db()
    assert clock.now() < backed_up.scheduled_purge_at and backed_up.purge_started_at is not None
    entry = ActivityLogEntry.objects.filter(operation=security_services.LAB_CLOCK_WRITE).latest("id")
    assert entry.details["settled"]["protection.purges"] == 1
    with pytest.raises(GuardDenied, match="can no longer be undeleted"):
        deletion.undelete(lab.trainer, backed_up)
    [job] = deletion.start_purges()
    assert run_job(job).status == JobStatus.COMPLETED
    assert not BackupInstance.objects.filter(pk=backed_up.pk).exists()
    assert alerts(deletion.PURGE_COMPLETE_ALERT)


def test_a_resource_guard_never_blocks_the_system_purge(lab, vault, backed_up):
    """GIVEN a vault protected by a Resource Guard WHEN the backup admin (no access on the guard) deletes
    the backup data THEN MUA refuses; the trainer (Owner at the root, so authorized on the guard) deletes
    it, and the purge by the system principal — which holds nothing on the guard — still runs."""
    from portal.mua.lab import seed_mua
    from security import mua

    guard = seed_mua(lab)
    backup_admin = lab.personas["backup-admin"].principal
    mua.link_resource_guard(backup_admin, vault, guard_id=guard.resource_id, region=vault.region_id)
    with pytest.raises(GuardDenied) as exc:
        deletion.delete_backup_data(backup_admin, backed_up, confirm_name="bi-sd")
    assert exc.value.decision.guard == "MUA" and "Delete backup instance" in exc.value.decision.reason
    soft_delete(lab.trainer, backed_up)
    travel(lab, backed_up.scheduled_purge_at + dt.timedelta(minutes=1) - clock.now())
    [job] = deletion.start_purges()
    assert run_job(job).status == JobStatus.COMPLETED
    assert not BackupInstance.objects.filter(pk=backed_up.pk).exists()


def test_a_store_that_still_retains_the_data_defers_the_purge(lab, vault, backed_up):
    """GIVEN a soft-deleted instance in a vault made immutable afterwards (its points get a retain-until
    of their expiry, 30 days of real time) WHEN the lab clock passes the purge time THEN the Purge job
    defers: the store refuses, the instance stays soft-deleted with its points, and the next run tries
    again."""
    from vaults import services as vault_services

    soft_delete(lab.trainer, backed_up)
    vault_services.update_immutability(lab.trainer, vault, state="Unlocked")
    with store_of(vault)() as store:
        assert all(store.get_snapshot(s).retain_until for s in snapshot_ids(vault, backed_up))
    travel(lab, backed_up.scheduled_purge_at + dt.timedelta(minutes=1) - clock.now())
    [job] = deletion.start_purges()
    done = run_job(job)
    assert done.status == JobStatus.COMPLETED_WITH_WARNINGS
    assert done.extended_info["deferred"] and "retried" in done.extended_info["summary"]
    backed_up.refresh_from_db()
    assert backed_up.protection_state == ProtectionState.SOFT_DELETED
    assert RecoveryPoint.objects.filter(instance=backed_up).count() == 2
    assert not alerts("Purge Complete")
    assert len(deletion.start_purges()) == 1  # tried again at the next run


def test_governance_locks_left_by_a_disabled_immutability_do_not_stop_the_purge(lab, vault, make_policy, filled):
    """GIVEN points written while the vault was immutable (governance retain-until) WHEN immutability is
    disabled and the data is deleted with soft delete off THEN the governance locks are bypassed and
    everything goes."""
    from vaults import services as vault_services

    vault_services.update_immutability(lab.trainer, vault, state="Unlocked")
    instance = protect(lab, vault, make_policy(ADLS, "p-gov"), filled.account, name="bi-gov")
    backup_now_and_run(lab.trainer, instance)
    with store_of(vault)() as store:
        assert {store.get_snapshot(s).retention_mode for s in snapshot_ids(vault, instance)} == {"governance"}
    with pytest.raises(GuardDenied) as exc:
        deletion.delete_backup_data(lab.trainer, instance, confirm_name="bi-gov")
    assert exc.value.decision.guard == "Immutability"
    vault_services.update_immutability(lab.trainer, vault, state="Disabled")
    vault_services.update_soft_delete(lab.trainer, vault, state="Off")
    done = run_job(deletion.delete_backup_data(lab.trainer, instance, confirm_name="bi-gov"))
    assert done.status == JobStatus.COMPLETED, (done.error_message, done.extended_info)
    assert snapshot_ids(vault, instance) == set()


def test_the_drill_vault_is_seeded_through_the_services_and_idempotently(lab):
    """seed_drill: a vault with a recovery point, immutability locked (the store retains the point in
    compliance mode), soft delete always-on and the Resource Guard linked — security level Excellent;
    seeding twice changes nothing."""
    from portal.mua.lab import seed_mua
    from protection.lab_drill import seed_drill
    from security import mua
    from vaults import services as vault_services

    seed_mua(lab)
    vault, instance = seed_drill(lab)
    assert (vault.immutability_state, vault.soft_delete_state) == ("Locked", "AlwaysOn")
    assert mua.is_linked(vault.resource_id) and vault_services.security_level(vault).level == "Excellent"
    assert instance.protection_state == ProtectionState.CONFIGURED and instance.created_by == lab.personas["backup-admin"].principal
    [point] = RecoveryPoint.objects.filter(instance=instance)
    with store_of(vault)() as store:
        assert {store.get_snapshot(m["id"]).retention_mode for m in point.manifests} == {"compliance"}
    again, same = seed_drill(lab)
    assert again.pk == vault.pk and same.pk == instance.pk and RecoveryPoint.objects.filter(instance=instance).count() == 1


def test_an_mua_grant_lets_the_deletion_through_until_the_minute_it_ends(lab, vault, backed_up):
    """GIVEN a vault linked to the Resource Guard and the backup admin's approved one-hour grant WHEN the
    lab clock stands a minute before its end THEN the guard lets Delete backup data through (preview);
    a minute after its end THEN MUA refuses again, before any periodic task closed the grant."""
    from portal.mua.lab import seed_mua
    from security import mua

    guard = seed_mua(lab)
    admin = lab.personas["backup-admin"].principal
    mua.link_resource_guard(admin, vault, guard_id=guard.resource_id, region=vault.region_id)
    assert deletion.deletion_preview(admin, backed_up).guard == "MUA"
    access = mua.request_access(admin, guard, justification="cleanup", hours=1)
    mua.approve_request(lab.personas["security-admin"].principal, access, comment="ok")
    access.refresh_from_db()
    travel(lab, access.expires_at - dt.timedelta(minutes=1) - clock.now())
    assert deletion.deletion_preview(admin, backed_up).allowed
    travel(lab, dt.timedelta(minutes=2))
    assert deletion.deletion_preview(admin, backed_up).guard == "MUA"
    with pytest.raises(GuardDenied):
        deletion.delete_backup_data(admin, backed_up, confirm_name="bi-sd")
    backed_up.refresh_from_db()
    assert backed_up.protection_state == ProtectionState.CONFIGURED
