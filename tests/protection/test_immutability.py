"""The immutable vault through the services on real data (issue 10; reference §3.1, decision 5).

While immutability is Enabled (Unlocked) or Enabled and locked (Locked) the Immutability guard refuses
stop protection with deletion of data, deleting a vault-tier recovery point before its expiry, reducing
a policy's retention and moving an instance to a shorter policy; raising retention stays allowed; Locked
is never undone, not even by the Owner with MUA access. Elastic SAN (operational tier) is outside it.
The store enforces it too: retain-until = expiry (governance while enabled, compliance once locked) at
backup time and for the points already there when it is enabled or locked; retention through Django
cannot delete a retained point and defers it when the lab clock ran past.
"""

from __future__ import annotations

import datetime as dt

import pytest

from tests._s3 import BOTH_BACKENDS

from protection.jobs import runner as jobs
from protection.models import JobStatus, ProtectionState, RecoveryPoint
from protection.backups import services as backups
from protection.deletion import services as deletion
from protection.backups import retention
from protection.instances import services as instance_services
from protection.policies import services as policy_services
from protection.policies.services import Retention
from security import services as security_services
from security.guards import GuardDenied, evaluate
from security.models import ActivityLogEntry, Alert
from tests.protection._backups_fixtures import (  # noqa: F401  (fixtures)
    ADLS, ESAN, backup_now_and_run, filled, inventory, make_policy, principal_with, protect,
    snapshots_of, spec, vault,
)
from vaults import services as vault_services
from vaults.guards import IMMUTABILITY_GUARD, retention_reduced

pytestmark = pytest.mark.django_db
UTC = dt.timezone.utc


def store_of(vault):
    from vaults.storage import open_store

    return lambda: open_store(vault)


def retention_of(vault, point) -> set:
    with store_of(vault)() as store:
        return {(store.get_snapshot(m["id"]).retain_until, store.get_snapshot(m["id"]).retention_mode)
                for m in point.manifests}


@pytest.fixture
def adls(lab, vault, make_policy, filled):
    policy = make_policy(ADLS, "adls-30d", default=Retention(30, "Days"), extra={"Weekly": Retention(12, "Weeks")})
    instance = protect(lab, vault, policy, filled.account, name="bi-imm")
    point = backup_now_and_run(lab.trainer, instance).recovery_point
    return instance, point


def lock(lab, vault):
    vault_services.update_immutability(lab.trainer, vault, state="Unlocked")
    vault_services.update_immutability(lab.trainer, vault, state="Locked", confirm_name=vault.name)


@pytest.mark.parametrize("state", ["Unlocked", "Locked"])
def test_stop_protection_with_delete_data_is_refused(lab, vault, adls, state):
    instance, point = adls
    vault_services.update_immutability(lab.trainer, vault, state="Unlocked")
    if state == "Locked":
        vault_services.update_immutability(lab.trainer, vault, state="Locked", confirm_name=vault.name)
    with pytest.raises(GuardDenied) as exc:
        deletion.delete_backup_data(lab.trainer, instance, confirm_name=instance.name)
    decision = exc.value.decision
    assert decision.guard == IMMUTABILITY_GUARD and decision.code == "UserErrorImmutableVaultOperationNotAllowed"
    assert "stopping protection with deletion of backup data is not allowed" in decision.reason
    assert ("can never be disabled" in decision.remedy) == (state == "Locked")
    instance.refresh_from_db()
    assert instance.protection_state == ProtectionState.CONFIGURED and instance.deleted_at is None
    denial = ActivityLogEntry.objects.get(operation=deletion.INSTANCE_DELETE, status="Failed")
    assert denial.details["guard"] == IMMUTABILITY_GUARD
    # Stop and retain stays allowed (reference §3.1).
    backups.stop_backup(lab.trainer, instance, retain=backups.RETAIN_FOREVER)


def test_a_recovery_point_cannot_be_deleted_before_its_expiry(lab, vault, adls):
    """GIVEN an immutable vault WHEN the system tries to delete a point before its expiry (or one kept
    forever) THEN the guard refuses; once past its expiry by the lab clock the guard allows it (and the
    store, still retaining it in real time, defers — see below)."""
    instance, point = adls
    vault_services.update_immutability(lab.trainer, vault, state="Unlocked")
    system = security_services.system_principal()
    from protection.system_access import ensure_system_access

    ensure_system_access()
    with pytest.raises(GuardDenied) as exc:
        retention.expire_recovery_point(system, point, reason="limit")
    assert exc.value.decision.guard == IMMUTABILITY_GUARD
    assert f"before its expiry ({point.expiry_time:%Y-%m-%d %H:%M} UTC)" in exc.value.decision.reason
    change = {"expiry_time": None, "datastore": "VaultStore"}
    assert "while it is kept forever" in evaluate(lab.trainer, retention.RECOVERY_POINT_DELETE, point, change).reason
    past = {"expiry_time": point.expiry_time.isoformat(), "now": (point.expiry_time + dt.timedelta(seconds=1)).isoformat(),
            "datastore": "VaultStore"}
    assert evaluate(system, retention.RECOVERY_POINT_DELETE, point, past).allowed
    assert RecoveryPoint.objects.filter(pk=point.pk).exists()


def test_reducing_retention_is_refused_and_raising_it_is_allowed(lab, vault, adls, make_policy):
    instance, _ = adls
    policy = instance.policy
    vault_services.update_immutability(lab.trainer, vault, state="Unlocked")
    shorter = spec(ADLS, default=Retention(7, "Days"), extra={"Weekly": Retention(12, "Weeks")})
    with pytest.raises(GuardDenied) as exc:
        policy_services.update_policy(lab.trainer, policy, spec=shorter)
    assert exc.value.decision.guard == IMMUTABILITY_GUARD
    assert "reducing the policy's retention is not allowed (Default goes from P30D to P7D)" in exc.value.decision.reason
    dropped = spec(ADLS, default=Retention(30, "Days"))
    with pytest.raises(GuardDenied, match="the Weekly rule"):
        policy_services.update_policy(lab.trainer, policy, spec=dropped)
    longer = spec(ADLS, default=Retention(60, "Days"), extra={"Weekly": Retention(12, "Weeks")})
    policy_services.update_policy(lab.trainer, policy, spec=longer)
    assert policy_services.retention_map(policy.policy_rules)["Default"] == "P60D"

    short_policy = make_policy(ADLS, "adls-7d", default=Retention(7, "Days"))
    long_policy = make_policy(ADLS, "adls-1y", default=Retention(1, "Years"), extra={"Weekly": Retention(52, "Weeks")})
    with pytest.raises(GuardDenied) as exc:
        instance_services.change_policy(lab.trainer, instance, short_policy)
    assert "moving the backup instance to a policy with shorter retention" in exc.value.decision.reason
    instance_services.change_policy(lab.trainer, instance, long_policy)
    instance.refresh_from_db()
    assert instance.policy == long_policy
    assert not Alert.objects.filter(name__contains="Shorter Retention").exists()


def test_elastic_san_is_outside_immutability(lab, vault, make_policy, filled):
    """GIVEN a locked vault WHEN a volume's policy is shortened and its data deleted THEN both pass: its
    recovery points are operational-tier snapshots (as in Azure)."""
    lock(lab, vault)
    policy = make_policy(ESAN, "esan-14d", default=Retention(14, "Days"))
    instance = protect(lab, vault, policy, filled.volumes[0], name="bi-vol")
    point = backup_now_and_run(lab.trainer, instance).recovery_point
    assert point.datastore == RecoveryPoint.Datastore.OPERATIONAL
    policy_services.update_policy(lab.trainer, policy, spec=spec(ESAN, default=Retention(7, "Days")))
    assert Alert.objects.filter(name="Modify Policy with Shorter Retention").exists()
    job = deletion.delete_backup_data(lab.trainer, instance, confirm_name="bi-vol")
    assert jobs.run(job.pk).status == JobStatus.COMPLETED
    instance.refresh_from_db()
    assert instance.protection_state == ProtectionState.SOFT_DELETED


def test_locked_cannot_be_undone_by_anyone(lab, vault, adls):
    """GIVEN a locked vault protected by a Resource Guard WHEN the Owner at the root (who passes the
    guard) or a backup admin holding an approved MUA grant tries to disable or unlock it THEN the
    Immutability guard refuses, and the preview says so."""
    from portal.mua.lab import seed_mua
    from security import mua

    guard = seed_mua(lab)
    backup_admin = lab.personas["backup-admin"].principal
    mua.link_resource_guard(backup_admin, vault, guard_id=guard.resource_id, region=vault.region_id)
    lock(lab, vault)
    request = mua.request_access(backup_admin, guard, justification="drill", hours=1,
                                 operation=mua.REDUCE_IMMUTABILITY, target_resource_id=vault.resource_id)
    mua.approve_request(lab.personas["security-admin"].principal, request, comment="ok")
    for who in (lab.trainer, backup_admin):
        for state in ("Unlocked", "Disabled"):
            preview = evaluate(who, vault_services.VAULT_WRITE, vault, vault_services.immutability_change(vault, state=state))
            assert preview.guard == IMMUTABILITY_GUARD and "cannot be disabled or unlocked by anyone" in preview.reason
            with pytest.raises(GuardDenied):
                vault_services.update_immutability(who, vault, state=state)
    vault.refresh_from_db()
    assert vault.immutability_state == "Locked"


@BOTH_BACKENDS
def test_the_store_retains_points_until_their_expiry(lab, vault, adls, make_policy, filled):
    """GIVEN a point written while the vault was mutable WHEN immutability is enabled THEN its snapshots
    get retain-until = expiry in governance mode; WHEN it is locked THEN compliance; a point written
    afterwards gets compliance at backup time. The engine refuses to delete any of them."""
    from vaults.store import RetentionError

    instance, point = adls
    assert retention_of(vault, point) == {(None, None)}
    vault_services.update_immutability(lab.trainer, vault, state="Unlocked")
    [(until, mode)] = retention_of(vault, point)
    assert mode == "governance" and dt.datetime.fromisoformat(until) == point.expiry_time
    entry = ActivityLogEntry.objects.filter(operation=vault_services.VAULT_WRITE, details__immutability="Unlocked").get()
    assert entry.details["storeRetention"]["recoveryPoints"] == 1
    vault_services.update_immutability(lab.trainer, vault, state="Locked", confirm_name=vault.name)
    assert {m for _, m in retention_of(vault, point)} == {"compliance"}
    later = backup_now_and_run(lab.trainer, instance, rule="Weekly").recovery_point
    [(until, mode)] = retention_of(vault, later)
    assert mode == "compliance" and dt.datetime.fromisoformat(until) == later.expiry_time
    with store_of(vault)() as store:
        with pytest.raises(RetentionError):
            store.delete_snapshot(point.manifest_id)
        with pytest.raises(RetentionError):
            store.delete_snapshot(later.manifest_id, bypass_governance=True)
        assert store.verify(point.manifest_id).ok


@BOTH_BACKENDS
def test_retention_defers_a_point_the_store_still_retains(lab, vault, adls):
    """GIVEN a locked vault WHEN the lab clock passes a point's expiry (the store's retain-until is real
    time, not yet reached) THEN the guard allows the expiry but the store refuses the deletion: the
    Retention job defers it, the point and its data stay whole, and nothing is reported refused."""
    instance, point = adls
    lock(lab, vault)
    security_services.move_lab_clock(lab.trainer, forward=dt.timedelta(days=31))
    [job] = retention.start_retention_runs()
    done = jobs.run(job.pk)
    assert done.status == JobStatus.COMPLETED_WITH_WARNINGS
    assert done.extended_info["deferred"] and not done.extended_info["refused"] and done.extended_info["expired"] == 0
    assert RecoveryPoint.objects.filter(pk=point.pk).exists()
    with store_of(vault)() as store:
        assert store.verify(point.manifest_id).ok


def test_disabled_immutability_lets_retention_through_governance_locks(lab, vault, adls):
    """GIVEN points retained in governance mode WHEN immutability is disabled and the lab clock passes
    their expiry THEN retention deletes them (governance is bypassed once immutability is off)."""
    instance, point = adls
    vault_services.update_immutability(lab.trainer, vault, state="Unlocked")
    vault_services.update_immutability(lab.trainer, vault, state="Disabled")
    assert Alert.objects.filter(name="Immutability Disabled").exists()
    security_services.move_lab_clock(lab.trainer, forward=dt.timedelta(days=31))
    [job] = retention.start_retention_runs()
    done = jobs.run(job.pk)
    assert done.status == JobStatus.COMPLETED, done.extended_info
    assert not RecoveryPoint.objects.filter(pk=point.pk).exists()
    assert snapshots_of(store_of(vault), f"bi:{instance.pk}") == []


def test_shorter_retention_raises_its_alerts_when_the_vault_is_not_immutable(lab, vault, adls, make_policy):
    instance, _ = adls
    policy_services.update_policy(lab.trainer, instance.policy,
                                  spec=spec(ADLS, default=Retention(14, "Days"), extra={"Weekly": Retention(12, "Weeks")}))
    [alert] = Alert.objects.filter(name="Modify Policy with Shorter Retention")
    assert alert.affected_resource_id == instance.policy.resource_id and "P30D to P14D" in alert.description
    instance.refresh_from_db()
    short = make_policy(ADLS, "adls-7d", default=Retention(7, "Days"))
    instance_services.change_policy(lab.trainer, instance, short)
    [alert] = Alert.objects.filter(name="Modify Protection with Shorter Retention")
    assert alert.affected_resource_id == instance.resource_id and "'adls-7d'" in alert.description
    # Raising it again raises nothing.
    policy_services.update_policy(lab.trainer, short, spec=spec(ADLS, default=Retention(30, "Days")))
    assert Alert.objects.filter(name__contains="Shorter Retention").count() == 2


def test_retention_reduced_reads_max_days_and_tags():
    assert retention_reduced({"max_retention_days_before": None, "max_retention_days_after": 7}) == []
    assert retention_reduced({"max_retention_days_before": 30, "max_retention_days_after": 90}) == []
    assert retention_reduced({"max_retention_days_before": 90, "max_retention_days_after": 30}) == [
        "the longest retention goes from 90 to 30 days"]
    assert retention_reduced({"retention_before": {"Default": "P30D", "Weekly": "P12W"},
                              "retention_after": {"Default": "P4W", "Weekly": "P3M"}}) == [
        "Default goes from P30D to P4W"]  # 28 days < 30; 3 months > 12 weeks
    assert retention_reduced({"retention_before": {"Default": "P1Y"}, "retention_after": {"Default": "P12M"}}) == []


def test_a_failed_backup_raises_backup_failure(lab, vault, adls):
    """GIVEN the vault identity lost its rights WHEN a backup runs THEN it fails with the coded error and
    the Backup Failure alert names the instance; a cancelled one raises nothing."""
    from security.models import RoleAssignment

    instance, _ = adls
    RoleAssignment.objects.filter(principal=vault.identity).delete()
    job = backup_now_and_run(lab.trainer, instance)
    assert job.status == JobStatus.FAILED and job.error_code == "UserErrorMissingRequiredPermissions"
    [alert] = Alert.objects.filter(name="Backup Failure")
    assert alert.category == "Jobs" and alert.affected_resource_id == instance.resource_id
    assert "UserErrorMissingRequiredPermissions" in alert.description


def test_undelete_of_an_instance_in_an_immutable_vault_keeps_the_store_retention(lab, vault, adls):
    instance, point = adls
    job = deletion.delete_backup_data(lab.trainer, instance, confirm_name=instance.name)
    jobs.run(job.pk)
    vault_services.update_immutability(lab.trainer, vault, state="Unlocked")
    assert {m for _, m in retention_of(vault, point)} == {"governance"}
    deletion.undelete(lab.trainer, instance)
    instance.refresh_from_db()
    assert instance.protection_state == ProtectionState.STOPPED
    backups.resume_backup(lab.trainer, instance)
    with pytest.raises(GuardDenied) as exc:  # deleting again: refused, and the store still holds the data
        deletion.delete_backup_data(lab.trainer, instance, confirm_name=instance.name)
    assert exc.value.decision.guard == IMMUTABILITY_GUARD
    assert {m for _, m in retention_of(vault, point)} == {"governance"}
