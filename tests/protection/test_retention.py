"""Retention on real data: tags and expiry per rule for scheduled points (the policy's priorities),
expiry through Retention jobs run by the system principal through the guards (snapshot first, then
the row), the Elastic SAN 450-point limit, a store lock deferring a deletion, and what never expires."""

from __future__ import annotations

import datetime as dt

import pytest

from tests._s3 import BOTH_BACKENDS

from protection.jobs import runner as jobs
from protection.models import Job, JobStatus, ProtectionState, RecoveryPoint
from protection.backups import services as backups
from protection.backups import retention
from protection.policies.services import Retention
from security import clock
from security import services as security_services
from security.guards import Refusal
from security.models import ActivityLogEntry
from tests.protection._backups_fixtures import (  # noqa: F401  (fixtures)
    ADLS, ESAN, backup_now_and_run, filled, inventory, make_policy, principal_with, protect,
    snapshots_of, vault,
)
from tests.conftest import refusing

pytestmark = pytest.mark.django_db
UTC = dt.timezone.utc


def travel_to(lab, moment):
    """Move the lab clock forward to ``moment`` (it only moves forward)."""
    security_services.move_lab_clock(lab.trainer, forward=moment - clock.now())
    assert abs((clock.now() - moment).total_seconds()) < 5


def scheduled_point(lab, instance):
    """Dispatch what is due and run it inline; return the recovery point it made."""
    report = backups.dispatch_due_backups()
    assert len(report.enqueued) == 1, report
    job = jobs.run(report.enqueued[0])
    assert job.status == JobStatus.COMPLETED, job.error_message
    return job.recovery_point


def run_retention():
    started = retention.start_retention_runs()
    return [jobs.run(job.pk) for job in started]


def vault_store(vault):
    from vaults.storage import open_store

    return lambda: open_store(vault)


@pytest.fixture
def tiered(lab, vault, make_policy, filled):
    policy = make_policy(ADLS, "tiered", time=dt.time(2, 0), default=Retention(7, "Days"),
                         extra={"Weekly": Retention(4, "Weeks"), "Monthly": Retention(6, "Months")})
    return protect(lab, vault, policy, filled.account, name="bi-tiered")


@pytest.mark.date_sensitive
def test_scheduled_points_get_the_tag_of_their_highest_priority_rule(lab, tiered, monkeypatch):
    """GIVEN Default 7 days, Weekly 4 weeks, Monthly 6 months WHEN scheduled backups run on Mon 1 March,
    Tue 2 March, Mon 8 March and Thu 1 April THEN their tags are Monthly, Default, Weekly, Monthly with
    expiries 6 months, 7 days, 4 weeks and 6 months after each point."""
    monkeypatch.setattr(jobs, "enqueue", lambda job: None)
    year = clock.now().year + 1
    while dt.date(year, 3, 1).weekday() != 0:  # a year whose 1 March is a Monday (2027, 2032, ...)
        year += 1
    expected = [
        (dt.datetime(year, 3, 1, 2, 30, tzinfo=UTC), "Monthly"),  # first of its month (and week)
        (dt.datetime(year, 3, 2, 2, 30, tzinfo=UTC), "Default"),  # same week, same month
        (dt.datetime(year, 3, 8, 2, 30, tzinfo=UTC), "Weekly"),  # a new week of the same month
        (dt.datetime(year, 4, 1, 2, 30, tzinfo=UTC), "Monthly"),  # a new month
    ]
    durations = {"Default": dt.timedelta(days=7), "Weekly": dt.timedelta(weeks=4)}
    points = []
    for moment, tag in expected:
        travel_to(lab, moment)
        point = scheduled_point(lab, tiered)
        points.append(point)
        assert point.retention_tag == tag, (moment, point.retention_tag)
        if tag == "Monthly":
            month = point.recovery_point_time.month + 6
            assert point.expiry_time == point.recovery_point_time.replace(
                year=point.recovery_point_time.year + (month - 1) // 12, month=(month - 1) % 12 + 1)
        else:
            assert point.expiry_time == point.recovery_point_time + durations[tag]
        assert point.rule_name == "BackupDaily" and not point.is_user_triggered

    # On 1 April the Default point of 2 March (7 days) and the Weekly one of 8 March (4 weeks, not yet)
    [job] = run_retention()
    assert job.status == JobStatus.COMPLETED, job.error_message
    remaining = set(RecoveryPoint.objects.filter(instance=tiered).values_list("pk", flat=True))
    assert points[1].pk not in remaining
    assert {points[0].pk, points[2].pk, points[3].pk} <= remaining
    ids = {s.id for s in snapshots_of(vault_store(tiered.vault), f"bi:{tiered.pk}")}
    assert not ({m["id"] for m in points[1].manifests} & ids)  # its snapshots left the store
    assert all(m["id"] in ids for m in points[0].manifests)
    assert job.extended_info["expired"] == 1
    # The engine's GC ran on the vault store (recent packs stay inside its safety window).
    assert len(job.extended_info["gc"]) == 1 and job.extended_info["gc"][0].startswith("freed ")


@BOTH_BACKENDS
def test_retention_acts_as_the_system_principal_through_the_guards(lab, vault, make_policy, filled):
    """GIVEN a point past its expiry WHEN a guard refuses deleting it THEN it stays and the Retention job
    reports why; once allowed, the system principal deletes it and the activity log names it."""
    instance = protect(lab, vault, make_policy(ADLS, "short", default=Retention(7, "Days")), filled.account, name="bi-short")
    point = backup_now_and_run(lab.trainer, instance).recovery_point
    security_services.move_lab_clock(lab.trainer, forward=dt.timedelta(days=8))

    kept = Refusal("Test", "Kept", "Test guard: recovery points are kept.")
    with refusing(retention.RECOVERY_POINT_DELETE, kept, name="test-keep"):
        [job] = run_retention()
    assert job.status == JobStatus.COMPLETED_WITH_WARNINGS
    assert "Test guard" in job.extended_info["refused"][0]
    assert RecoveryPoint.objects.filter(pk=point.pk).exists()
    [job] = run_retention()
    assert job.status == JobStatus.COMPLETED
    assert not RecoveryPoint.objects.filter(pk=point.pk).exists()
    entry = ActivityLogEntry.objects.filter(operation=retention.RECOVERY_POINT_DELETE, status="Succeeded").latest("id")
    assert entry.caller == "Strongroom system" and entry.details["reason"] == "expired"
    assert job.initiated_by_name == "Retention schedule" and job.vault_id == vault.pk


@BOTH_BACKENDS
def test_points_kept_forever_or_soft_deleted_never_expire(lab, vault, make_policy, filled):
    instance = protect(lab, vault, make_policy(ADLS, "short2", default=Retention(7, "Days")), filled.account, name="bi-keep")
    backup_now_and_run(lab.trainer, instance)
    backups.stop_backup(lab.trainer, instance, retain=backups.RETAIN_FOREVER)
    security_services.move_lab_clock(lab.trainer, forward=dt.timedelta(days=30))
    assert run_retention() == []
    assert RecoveryPoint.objects.filter(instance=instance).count() == 1
    # A soft-deleted instance keeps its points until purge, even past their expiry (issue 10 owns purge).
    RecoveryPoint.objects.filter(instance=instance).update(expiry_time=clock.now() - dt.timedelta(days=1))
    type(instance).objects.filter(pk=instance.pk).update(protection_state=ProtectionState.SOFT_DELETED)
    assert run_retention() == []


@BOTH_BACKENDS
def test_a_store_lock_defers_the_deletion(lab, vault, make_policy, filled):
    """GIVEN an immutable (Enabled) vault WHEN a point is past its expiry by the lab clock but the store's
    retain-until (real time) is not yet reached THEN retention defers it instead of failing."""
    from vaults import services as vault_services

    vault_services.update_immutability(lab.trainer, vault, state="Unlocked")
    instance = protect(lab, vault, make_policy(ADLS, "short3", default=Retention(7, "Days")), filled.account, name="bi-lock")
    point = backup_now_and_run(lab.trainer, instance).recovery_point
    with vault_store(vault)() as store:
        assert store.get_snapshot(point.manifest_id).retain_until is not None
    security_services.move_lab_clock(lab.trainer, forward=dt.timedelta(days=8))
    [job] = run_retention()
    assert job.status == JobStatus.COMPLETED_WITH_WARNINGS
    assert job.extended_info["deferred"] and not job.extended_info["refused"]
    assert RecoveryPoint.objects.filter(pk=point.pk).exists()
    with vault_store(vault)() as store:
        assert store.verify(point.manifest_id).ok


def test_an_expired_volume_point_leaves_the_operational_store_and_the_inventory(lab, vault, make_policy, filled):
    from portal.inventory.models import Snapshot
    from protection.operational_store import open_operational_store

    instance = protect(lab, vault, make_policy(ESAN, "esan-7d"), filled.volumes[0], name="bi-esan-exp")
    point = backup_now_and_run(lab.trainer, instance).recovery_point
    assert Snapshot.objects.filter(resource_id=point.snapshot_resource_id).exists()
    security_services.move_lab_clock(lab.trainer, forward=dt.timedelta(days=8))
    [job] = run_retention()
    assert job.status == JobStatus.COMPLETED, job.extended_info
    assert not Snapshot.objects.filter(resource_id=point.snapshot_resource_id).exists()
    group = filled.san.resource_group
    assert snapshots_of(lambda: open_operational_store(group), f"bi:{instance.pk}") == []


def test_elastic_san_keeps_at_most_450_points(lab, vault, make_policy, filled):
    """GIVEN an Elastic SAN instance with 451 points (450 older ones recorded without data) WHEN
    retention runs THEN the oldest goes and 450 remain, the newest (real) one intact."""
    instance = protect(lab, vault, make_policy(ESAN, "esan-limit"), filled.volumes[0], name="bi-esan-450")
    newest = backup_now_and_run(lab.trainer, instance).recovery_point
    base = newest.recovery_point_time
    RecoveryPoint.objects.bulk_create([
        RecoveryPoint(instance=instance, recovery_point_time=base - dt.timedelta(hours=n), datastore=newest.datastore,
                      policy_name=newest.policy_name, rule_name=newest.rule_name, retention_tag="Default",
                      expiry_time=base + dt.timedelta(days=7), manifest_id=f"gone-{n}",
                      manifests=[{"item": "vol-a", "kind": "volume", "id": f"gone-{n}", "store": "operational",
                                  "resource_group_id": filled.san.resource_group.resource_id}])
        for n in range(1, 451)
    ])
    [job] = run_retention()
    assert job.status == JobStatus.COMPLETED, job.extended_info
    assert RecoveryPoint.objects.filter(instance=instance).count() == 450
    oldest = base - dt.timedelta(hours=450)
    assert not RecoveryPoint.objects.filter(instance=instance, recovery_point_time=oldest).exists()
    assert RecoveryPoint.objects.filter(pk=newest.pk).exists()
    entry = ActivityLogEntry.objects.filter(operation=retention.RECOVERY_POINT_DELETE).latest("id")
    assert entry.details["reason"] == "limit"
    assert Job.objects.filter(operation="Retention").count() == 1


@pytest.mark.date_sensitive
def test_an_expiry_that_fell_due_while_the_clock_was_ahead_stands_after_a_reset(lab, vault, make_policy, filled):
    """GIVEN a point that expires while the lab clock is ahead, before any Retention run WHEN the trainer
    resets the clock to real time (before its expiry again) THEN its expiry was recorded at the reset and
    the next Retention run deletes it all the same; a point not yet due stays."""
    instance = protect(lab, vault, make_policy(ADLS, "short-reset", default=Retention(7, "Days")), filled.account,
                       name="bi-reset")
    point = backup_now_and_run(lab.trainer, instance).recovery_point
    security_services.move_lab_clock(lab.trainer, forward=dt.timedelta(days=8))
    young = backup_now_and_run(lab.trainer, instance).recovery_point  # made at lab time: expires 7 days on
    security_services.move_lab_clock(lab.trainer, reset=True)
    point.refresh_from_db()
    young.refresh_from_db()
    assert clock.now() < point.expiry_time and point.expired_at is not None
    assert young.expired_at is None
    [job] = run_retention()
    assert job.status == JobStatus.COMPLETED, job.extended_info
    assert not RecoveryPoint.objects.filter(pk=point.pk).exists()
    assert RecoveryPoint.objects.filter(pk=young.pk).exists()
    assert job.extended_info["expired"] == 1
