"""The vault-archive tier on real data: Move to archive (copied, verified, removed from the standard store),
rehydration then restore byte for byte, the rehydrated copy's end on the lab clock, expiry from the archive
store, a failed move leaving the point whole, the policy's tiering rule, and the reasons a point is not eligible."""

from __future__ import annotations

import datetime as dt

import pytest

from tests._s3 import BOTH_BACKENDS
from django.core.exceptions import ValidationError

from portal.inventory import services as inv
from protection import datasource_types
from protection.jobs import runner as jobs
from protection.models import BackupInstance, Job, JobOperation, RecoveryPoint
from protection.policies.services import Retention, Tiering
from protection.restores import layout, services, targets, validation
from protection import archive_eligibility as eligibility
from protection.restores import rehydration
from protection.tiering import services as tiering
from security import clock
from security import services as security_services
from tests.protection._restore_fixtures import (  # noqa: F401
    PG, backup, inventory, make_policy, new_account, pg_database, protect, tree_of, vault,
)
from vaults import storage

pytestmark = pytest.mark.django_db


def forward(lab, **delta):
    security_services.move_lab_clock(lab.trainer, forward=dt.timedelta(**delta))


def snapshot_ids(opener) -> set:
    with opener() as store:
        return {s.id for s in store.list_snapshots()}


@pytest.fixture
def pg_old_point(lab, vault, make_policy, inventory, pg_database):
    """A PostgreSQL point kept a year, made 4 months ago on the lab clock."""
    source = pg_database("sr_arch")
    inv.refresh_postgres_server(lab.trainer, inventory.server)
    instance = protect(lab, vault, make_policy(PG, default=Retention(1, "Years")), inventory.server)
    point = backup(lab, instance)
    forward(lab, days=122)
    return source, point


def run(job) -> Job:
    jobs.run(job.pk)
    job.refresh_from_db()
    return job


def test_ineligible_points_say_why(lab, vault, make_policy, inventory, pg_database):
    now = clock.now()
    adls = RecoveryPoint(instance=BackupInstance(datasource_type=datasource_types.ADLS, vault=vault),
                         datastore="VaultStore", recovery_point_time=now, expiry_time=now + dt.timedelta(days=900))
    assert eligibility.ineligible_reason(adls) == "Archive isn't supported for Azure Data Lake Storage"
    esan = RecoveryPoint(instance=BackupInstance(datasource_type=datasource_types.ELASTIC_SAN, vault=vault),
                         datastore="OperationalStore", recovery_point_time=now, expiry_time=None)
    assert eligibility.ineligible_reason(esan) == (
        "Archive isn't supported for operational-tier snapshots (Elastic SAN (Preview)): they never reach the vault")
    disk = RecoveryPoint(instance=BackupInstance(datasource_type=datasource_types.AZURE_DISK, vault=vault),
                         datastore="OperationalStore", recovery_point_time=now, expiry_time=now + dt.timedelta(days=7))
    assert eligibility.ineligible_reason(disk) == (
        "Archive isn't supported for operational-tier snapshots (Azure Disk): they never reach the vault")
    young = RecoveryPoint(instance=BackupInstance(datasource_type=PG, vault=vault), datastore="VaultStore",
                          recovery_point_time=now - dt.timedelta(days=12), expiry_time=now + dt.timedelta(days=900))
    assert eligibility.ineligible_reason(young, now, running=set()) == (
        "Only points at least 3 months old can move to archive (this one is 12 days old)")
    short = RecoveryPoint(instance=BackupInstance(datasource_type=PG, vault=vault), datastore="VaultStore",
                          recovery_point_time=now - dt.timedelta(days=100), expiry_time=now + dt.timedelta(days=40))
    assert eligibility.ineligible_reason(short, now, running=set()) == (
        "Only points with at least 6 months of retention left can move to archive (this one expires in 40 days)")
    # a point being soft deleted (a shorter retention expired it) is purged, never moved, whatever its purge date
    being_deleted = RecoveryPoint(instance=BackupInstance(datasource_type=PG, vault=vault), datastore="VaultStore",
                                  recovery_point_time=now - dt.timedelta(days=100), soft_deleted_at=now,
                                  expiry_time=now + dt.timedelta(days=365))
    assert eligibility.ineligible_reason(being_deleted, now, running=set()).startswith(
        "This recovery point is being soft deleted (purged on ")


@BOTH_BACKENDS
def test_move_rehydrate_restore_and_the_copy_ends(lab, pg_old_point):
    source, point = pg_old_point
    vault = point.instance.vault
    ids = {m["id"] for m in point.manifests}
    assert eligibility.ineligible_reason(point) == ""
    job = run(tiering.move_to_archive(lab.trainer, point))
    assert (job.operation, job.category, job.status) == (JobOperation.TIERING, "Tiering", "Completed"), job.error_message
    point.refresh_from_db()
    assert point.datastore == "ArchiveStore" and all(m["store"] == "archive" for m in point.manifests)
    assert ids <= snapshot_ids(lambda: storage.open_archive_store(vault))
    assert not ids & snapshot_ids(lambda: storage.open_store(vault))
    assert not str(storage.archive_store_path(vault)).startswith(str(storage.store_path(vault)))
    with pytest.raises(ValidationError, match="UserErrorRecoveryPointNotEligibleForArchive: Already in the archive"):
        tiering.move_to_archive(lab.trainer, point)
    # Immutability reaches the archive tier: a vault made immutable retains the archive copy until its expiry.
    from protection.deletion.services import apply_store_retention
    assert apply_store_retention(vault, "Unlocked")["storeRetention"]["recoveryPoints"] == 1
    with storage.open_archive_store(vault) as archive:
        assert archive.backend.get_retention(f"snapshots/{point.manifest_id}").active()

    account = new_account(lab)
    container = inv.create_container(lab.trainer, account, name="pgdumps")
    target = targets.PgFilesTarget(container.resource_id, "arch/", source)
    from protection.restores import readiness
    services.assign_restore_roles(lab.trainer, point, target, readiness.SCOPE_RESOURCE)
    with pytest.raises(ValidationError, match="UserErrorRecoveryPointNotRehydrated"):
        services.start_restore(lab.trainer, point, target)
    with pytest.raises(ValidationError, match="10 to 30 days"):
        rehydration.start_rehydrated_restore(lab.trainer, point, target, priority="High", duration="P5D")

    rehydrate = run(rehydration.start_rehydrated_restore(lab.trainer, point, target, priority="High", duration="P10D"))
    assert (rehydrate.operation, rehydrate.status) == ("Rehydrate", "Completed"), rehydrate.error_message
    assert ids <= snapshot_ids(lambda: storage.open_store(vault))
    point.refresh_from_db()
    assert point.rehydration_status == "CREATE_IN_PROGRESS" and not point.is_rehydrated()
    assert rehydration.settle()["restoresStarted"] == 0  # High: an hour on Strongroom's clock first

    forward(lab, minutes=61)
    # The trainer puts the clock back before the scheduled check ran: its settler records the completion.
    security_services.move_lab_clock(lab.trainer, reset=True)
    point.refresh_from_db()
    assert point.is_rehydrated() and point.rehydration_ready_at > clock.now()
    assert rehydration.settle()["restoresStarted"] == 1
    rehydrate.refresh_from_db()
    restore = Job.objects.get(pk=rehydrate.extended_info["restoreJobId"])
    assert restore.parameters["rehydrateJobId"] == str(rehydrate.pk)
    restore = run(restore)
    assert restore.status == "Completed", (restore.error_code, restore.error_message)
    files = tree_of(container.path)
    point.refresh_from_db()
    with storage.open_archive_store(vault) as archive:  # byte for byte what the archive tier holds
        for name, part in validation.file_names(point, target):
            from io import BytesIO
            out = BytesIO()
            archive.restore_stream(part.snapshot_id, out)
            assert files[name] == out.getvalue()

    forward(lab, days=122 + 10 + 1)  # (the clock is back at real time) past the rehydration duration
    assert rehydration.settle()["rehydratedCopiesRemoved"] == 1
    point.refresh_from_db()
    assert point.rehydration_status == "DELETED" and point.datastore == "ArchiveStore"
    assert not ids & snapshot_ids(lambda: storage.open_store(vault))
    assert ids <= snapshot_ids(lambda: storage.open_archive_store(vault))
    with layout.open_point_store(point) as store:  # verify reads the archive copy
        assert store.verify(point.manifest_id).ok


def test_expiry_removes_an_archived_point_from_the_archive_store(lab, pg_old_point):
    from protection.backups import retention

    _source, point = pg_old_point
    vault = point.instance.vault
    run(tiering.move_to_archive(lab.trainer, point))
    forward(lab, days=300)
    [job] = retention.start_retention_runs()
    assert run(job).status == "Completed", job.error_message
    assert not RecoveryPoint.objects.filter(pk=point.pk).exists()
    assert not {m["id"] for m in point.manifests} & snapshot_ids(lambda: storage.open_archive_store(vault))


def test_a_failed_move_leaves_the_point_in_the_standard_tier(lab, pg_old_point, monkeypatch):
    _source, point = pg_old_point
    vault = point.instance.vault
    ids = {m["id"] for m in point.manifests}

    def broken(*args, **kwargs):
        raise jobs.JobError("UserErrorTieringVerificationFailed", "The copy did not verify.")

    monkeypatch.setattr(tiering, "copy_point", broken)
    job = run(tiering.move_to_archive(lab.trainer, point))
    assert job.status == "Failed" and job.error_code == "UserErrorTieringVerificationFailed"
    point.refresh_from_db()
    assert point.datastore == "VaultStore"
    assert ids <= snapshot_ids(lambda: storage.open_store(vault))


def test_the_policy_tiering_rule_moves_points_and_sets_their_expiry(lab, vault, make_policy, inventory, pg_database):
    pg_database("sr_archp")
    inv.refresh_postgres_server(lab.trainer, inventory.server)
    policy = make_policy(PG, default=Retention(6, "Months"), tiering=Tiering(3, Retention(2, "Years")))
    lifecycle = policy.policy_rules[1]["lifecycles"]
    assert lifecycle[0]["targetDataStoreCopySettings"] == [{
        "copyAfter": {"objectType": "CustomCopyOption", "duration": "P3M"},
        "dataStore": {"dataStoreType": "ArchiveStore", "objectType": "DataStoreInfoBase"}}]
    assert lifecycle[1]["sourceDataStore"]["dataStoreType"] == "ArchiveStore"
    assert lifecycle[1]["deleteAfter"]["duration"] == "P2Y"
    instance = protect(lab, vault, policy, inventory.server)
    point = backup(lab, instance)
    assert point.expiry_time.year == point.recovery_point_time.year + 2
    assert tiering.points_due_for_tiering() == []
    forward(lab, days=93)
    assert rehydration.settle()["tieringJobs"] == 1
    job = Job.objects.get(operation=JobOperation.TIERING, recovery_point=point)
    assert job.initiated_by_name == "Tiering rule (policy)"
    assert run(job).status == "Completed", job.error_message
    point.refresh_from_db()
    assert point.datastore == "ArchiveStore"
    with pytest.raises(ValidationError, match="Archive isn't supported for Azure Data Lake Storage"):
        make_policy(datasource_types.ADLS, tiering=Tiering(3, Retention(2, "Years")))


def test_a_cancelled_rehydration_removes_its_copy_and_the_point_stays_archived(lab, pg_old_point, monkeypatch):
    source, point = pg_old_point
    vault = point.instance.vault
    ids = {m["id"] for m in point.manifests}
    run(tiering.move_to_archive(lab.trainer, point))
    point.refresh_from_db()
    real = tiering.copy_point

    def copy_then_cancel(*args, **kwargs):
        real(*args, **kwargs)  # every snapshot copied, then the cancel lands
        raise jobs.JobCancelled()

    monkeypatch.setattr(tiering, "copy_point", copy_then_cancel)
    account = new_account(lab)
    target = targets.PgFilesTarget(inv.create_container(lab.trainer, account, name="pgdumps").resource_id, "", source)
    from protection.restores import readiness
    services.assign_restore_roles(lab.trainer, point, target, readiness.SCOPE_RESOURCE)
    job = run(rehydration.start_rehydrated_restore(lab.trainer, point, target, priority="Standard", duration=12))
    assert job.status == "Cancelled"
    point.refresh_from_db()
    assert point.datastore == "ArchiveStore" and point.rehydration_status == "FAILED"
    assert not ids & snapshot_ids(lambda: storage.open_store(vault))
    assert ids <= snapshot_ids(lambda: storage.open_archive_store(vault))


def test_the_policy_wizard_offers_tiering_for_postgresql_only():
    from protection.policies.forms import PolicyScheduleForm
    from protection.policy_rules import Policy

    data = {"frequency": "Weekly", "time": "03:00", "days": ["Sunday"], "default_count": "6", "default_unit": "Months",
            "weekly_unit": "Weeks", "monthly_unit": "Months", "yearly_unit": "Years",
            "tier_enabled": "on", "tier_when": "expiry", "tier_archive_count": "2", "tier_archive_unit": "Years"}
    form = PolicyScheduleForm(data, datasource_type=PG)
    assert form.tiering_offered and form.is_valid(), form.errors
    assert form.spec().tiering == Tiering(None, Retention(2, "Years"))
    assert "Tiering Default: Tier to archive on expiry (6 months); kept 2 years in all" in Policy(form.policy_rules).summary()
    too_short = PolicyScheduleForm({**data, "tier_archive_count": "9", "tier_archive_unit": "Months"}, datasource_type=PG)
    assert not too_short.is_valid()
    assert "must last at least 6 months past the move to archive" in str(too_short.errors)
    assert not PolicyScheduleForm(data, datasource_type=datasource_types.ADLS).tiering_offered
    from django.template.loader import render_to_string
    html = render_to_string("protection/policies/_schedule_fields.html", {"form": PolicyScheduleForm(datasource_type=PG)})
    assert "Tier to archive" in html and "After (months)" in html and "On expiry" in html


def test_the_archive_root_is_never_inside_the_standard_stores(settings, tmp_path):
    settings.STRONGROOM_ARCHIVE_ROOT = settings.STRONGROOM_DATA_ROOT / "vaults" / "archive"
    with pytest.raises(ValueError, match="inside the standard stores' folder"):
        storage.archive_root()
    settings.STRONGROOM_ARCHIVE_ROOT = tmp_path / "cold"
    assert storage.archive_root() == tmp_path / "cold"


def test_dropping_the_tiering_rule_is_a_shorter_retention(lab, vault, make_policy):
    from protection.policies import services as policy_services

    policy = make_policy(PG, default=Retention(6, "Months"), tiering=Tiering(3, Retention(2, "Years")))
    assert policy_services.retention_map(policy.policy_rules) == {"Default": "P2Y"}
    assert policy.parsed.max_retention_days() == 730
    from security.guards import GuardDenied
    from tests.protection._protection_fixtures import spec
    from vaults import services as vault_services

    vault_services.update_immutability(lab.trainer, vault, state="Unlocked")
    with pytest.raises(GuardDenied, match="Default goes from P2Y to P6M"):  # immutability reaches the archive tier
        policy_services.update_policy(lab.trainer, policy, spec=spec(PG, default=Retention(6, "Months")))


def _drop_roles(principal):
    from security.models import RoleAssignment

    RoleAssignment.objects.filter(principal=principal).delete()


def test_a_move_is_authorized_again_when_its_job_runs(lab, pg_old_point, backup_admin):
    """The Tiering job asks the guards again as the person who asked: a role removed since it was queued
    stops it before anything is copied, and the point stays in Vault-standard."""
    _source, point = pg_old_point
    vault = point.instance.vault
    ids = {m["id"] for m in point.manifests}
    job = tiering.move_to_archive(backup_admin, point)
    _drop_roles(backup_admin)
    job = run(job)
    assert (job.status, job.error_code) == ("Failed", "UserErrorRecoveryPointMoveNotAuthorized"), job.error_message
    point.refresh_from_db()
    assert point.datastore == "VaultStore"
    assert ids <= snapshot_ids(lambda: storage.open_store(vault))
    assert not ids & snapshot_ids(lambda: storage.open_archive_store(vault, create=True))


def test_a_rehydration_is_authorized_again_when_its_job_runs(lab, pg_old_point, backup_admin):
    source, point = pg_old_point
    vault = point.instance.vault
    ids = {m["id"] for m in point.manifests}
    assert run(tiering.move_to_archive(lab.trainer, point)).status == "Completed"
    point.refresh_from_db()
    account = new_account(lab)
    target = targets.PgFilesTarget(inv.create_container(lab.trainer, account, name="pgdumps").resource_id, "", source)
    from protection.restores import readiness
    services.assign_restore_roles(lab.trainer, point, target, readiness.SCOPE_RESOURCE)
    job = rehydration.start_rehydrated_restore(backup_admin, point, target, priority="High", duration="P10D")
    _drop_roles(backup_admin)
    job = run(job)
    assert (job.status, job.error_code) == ("Failed", "UserErrorRestoreNotAuthorized"), job.error_message
    point.refresh_from_db()
    assert point.datastore == "ArchiveStore" and point.rehydration_status == "FAILED"
    assert not ids & snapshot_ids(lambda: storage.open_store(vault))


def test_a_restore_is_authorized_again_when_its_job_runs(lab, pg_old_point, backup_admin):
    source, point = pg_old_point
    account = new_account(lab)
    target = targets.PgFilesTarget(inv.create_container(lab.trainer, account, name="pgdumps").resource_id, "", source)
    from protection.restores import readiness
    services.assign_restore_roles(lab.trainer, point, target, readiness.SCOPE_RESOURCE)
    job = services.start_restore(backup_admin, point, target)
    _drop_roles(backup_admin)
    job = run(job)
    assert (job.status, job.error_code) == ("Failed", "UserErrorRestoreNotAuthorized"), job.error_message
    assert "role" in job.error_message.lower() or "permission" in job.error_message.lower(), job.error_message
