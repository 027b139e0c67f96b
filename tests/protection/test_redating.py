"""Policy changes re-date existing recovery points (issue 21; reference §5.5, §3.2, §3.1, §6.1).

Editing a policy's retention or moving an instance to another policy recomputes every existing
point's expiry from its tag (Default when the new policy lacks it); points the shorter retention
already expired go "being soft deleted" for the vault's soft-delete period, then retention purges them
(engine data first); raising retention first brings them back; an immutable vault never shortens a
point; the shorter-retention alerts fire only when something actually gets shorter."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from protection import redating
from protection.backups import retention
from protection.instances import services as instance_services
from protection.jobs import runner as jobs
from protection.models import JobStatus, RecoveryPoint
from protection.policies import services as policy_services
from protection.policies.services import Retention
from protection.restores import services as restore_services
from security import clock
from security import services as security_services
from security.models import ActivityLogEntry, Alert
from tests.protection._backups_fixtures import (  # noqa: F401  (fixtures)
    ADLS, ESAN, backup_now_and_run, filled, inventory, make_policy, protect, snapshots_of, spec,
    vault,
)
from tests.protection._redating_fixtures import DAY, bare_instance, points
from vaults import services as vault_services
from vaults.models import BackupVault

pytestmark = pytest.mark.django_db
SHORTER_POLICY = "Modify Policy with Shorter Retention"
SHORTER_PROTECTION = "Modify Protection with Shorter Retention"


def alerts(name) -> list:
    return list(Alert.objects.filter(name=name))


def fresh(point) -> RecoveryPoint:
    return RecoveryPoint.objects.get(pk=point.pk)


@pytest.fixture
def thirty(lab, vault, make_policy):
    """An ADLS policy (Default 30 days, Weekly 12 weeks) and an instance with four points."""
    policy = make_policy(ADLS, "rd-30d", default=Retention(30, "Days"), extra={"Weekly": Retention(12, "Weeks")})
    instance = bare_instance(vault, policy)
    made = points(instance, [(1, "Default", 30), (10, "Default", 30), (20, "Default", 30), (40, "Weekly", 84)])
    return policy, instance, made


def test_shorter_retention_soft_deletes_what_it_expired_and_longer_brings_it_back(lab, thirty):
    policy, instance, (p1, p10, p20, w40) = thirty
    now = clock.now()
    policy_services.update_policy(lab.trainer, policy, spec=spec(ADLS, default=Retention(7, "Days"),
                                                                 extra={"Weekly": Retention(12, "Weeks")}))
    p1, p10, p20, w40 = map(fresh, (p1, p10, p20, w40))
    assert p1.expiry_time == p1.recovery_point_time + 7 * DAY and not p1.is_soft_deleted  # shorter, still ahead
    for gone in (p10, p20):  # the 7-day retention already expired them: soft deleted for the vault's 14 days
        assert gone.is_soft_deleted and abs(gone.expiry_time - (now + 14 * DAY)) < dt.timedelta(seconds=30)
    assert w40.expiry_time == w40.recovery_point_time + 84 * DAY and not w40.is_soft_deleted  # its rule is unchanged
    entry = ActivityLogEntry.objects.filter(operation=policy_services.POLICY_WRITE, status="Succeeded").latest("id")
    assert entry.details["redated"] | {} == {"recoveryPoints": 4, "expiryEarlier": 3, "expiryLater": 0,
                                             "softDeleted": 2, "broughtBack": 0, "expiredWithoutSoftDelete": 0,
                                             "keptByImmutability": 0}
    [alert] = alerts(SHORTER_POLICY)
    assert "Default goes from P30D to P7D" in alert.description
    assert "3 existing recovery points now expire earlier; 2 already expired and are being soft deleted" in alert.description

    # Not restorable, not offered by the restore pickers, and retention leaves it until its purge.
    assert set(restore_services.points_of(instance)) == {p1, w40}
    with pytest.raises(ValidationError, match="being soft deleted.*cannot be restored"):
        restore_services._check_point(p10)
    from protection.restores import access

    browse = access.decide(lab.trainer, p10, access.LIST, "documents")  # nor browsed or downloaded
    assert not browse.allowed and browse.refusal.code == access.POINT_SOFT_DELETED_CODE
    assert access.decide(lab.trainer, p1, access.LIST, "documents").allowed
    assert retention.start_retention_runs() == []

    # Raising retention before the purge brings them back with their recomputed expiry.
    policy_services.update_policy(lab.trainer, policy, spec=spec(ADLS, default=Retention(60, "Days"),
                                                                 extra={"Weekly": Retention(12, "Weeks")}))
    p1, p10, p20 = map(fresh, (p1, p10, p20))
    assert not any(p.is_soft_deleted for p in (p1, p10, p20))
    assert [p.expiry_time - p.recovery_point_time for p in (p1, p10, p20)] == [60 * DAY] * 3
    assert len(alerts(SHORTER_POLICY)) == 1  # longer: no new alert
    assert set(restore_services.points_of(instance)) == {p1, p10, p20, w40}


def test_a_soft_deleted_point_is_purged_with_its_engine_data_after_the_soft_delete_period(lab, vault, make_policy, filled):
    """End to end on a real backup: shorten → being soft deleted → retention leaves it → the lab clock
    passes the vault's soft-delete period → the Retention job deletes its snapshots and its row."""
    from vaults.storage import open_store

    policy = make_policy(ADLS, "rd-real", default=Retention(30, "Days"))
    instance = protect(lab, vault, policy, filled.account, name="bi-rd-real")
    point = backup_now_and_run(lab.trainer, instance).recovery_point
    ids = {m["id"] for m in point.manifests}
    security_services.move_lab_clock(lab.trainer, forward=10 * DAY)
    policy_services.update_policy(lab.trainer, policy, spec=spec(ADLS, default=Retention(7, "Days")))
    point = fresh(point)
    assert point.is_soft_deleted and point.expiry_time > clock.now() + 13 * DAY
    security_services.move_lab_clock(lab.trainer, forward=13 * DAY)
    assert retention.start_retention_runs() == []  # still inside its 14 days
    assert ids <= {s.id for s in snapshots_of(lambda: open_store(vault), f"bi:{instance.pk}")}
    security_services.move_lab_clock(lab.trainer, forward=2 * DAY)
    [job] = [jobs.run(j.pk) for j in retention.start_retention_runs()]
    assert job.status == JobStatus.COMPLETED and job.extended_info["expired"] == 1
    assert not RecoveryPoint.objects.filter(pk=point.pk).exists()
    assert not ids & {s.id for s in snapshots_of(lambda: open_store(vault), f"bi:{instance.pk}")}


@pytest.mark.parametrize("case", ["soft delete off", "operational tier"])
def test_without_soft_delete_an_expired_point_goes_at_the_next_retention_run(lab, vault, make_policy, case):
    """Soft delete Off (Azure keeps nothing then) or Elastic SAN snapshots (outside soft delete): the point
    takes its new, past, expiry and the next retention run deletes it — never soft deleted."""
    kind = ESAN if case == "operational tier" else ADLS
    if case == "soft delete off":
        BackupVault.objects.filter(pk=vault.pk).update(soft_delete_state="Off")
        vault.refresh_from_db()
    policy = make_policy(kind, "rd-off", default=Retention(30, "Days"))
    instance = bare_instance(vault, policy)
    [old] = points(instance, [(10, "Default", 30)])
    policy_services.update_policy(lab.trainer, policy, spec=spec(kind, default=Retention(7, "Days")))
    old = fresh(old)
    assert not old.is_soft_deleted and old.expiry_time == old.recovery_point_time + 7 * DAY < clock.now()
    assert retention._due(clock.now()).filter(pk=old.pk).exists()


def test_change_policy_redates_and_immutability_never_shortens(lab, vault, make_policy, thirty):
    """Moving an instance to a policy whose rules are no shorter still shortens a point carried over with
    a longer tag (Monthly, from an older policy; the new policy falls back to Default): the alert fires
    for that point. On a locked (immutable) vault the same move keeps the point's expiry."""
    _, instance, _ = thirty
    [monthly] = points(instance, [(5, "Monthly", 180)])
    target = make_policy(ADLS, "rd-60d", default=Retention(60, "Days"), extra={"Weekly": Retention(12, "Weeks")})
    vault_services.update_immutability(lab.trainer, vault, state="Unlocked")
    vault_services.update_immutability(lab.trainer, vault, state="Locked", confirm_name=vault.name)
    instance_services.change_policy(lab.trainer, instance, target)
    assert fresh(monthly).expiry_time == monthly.expiry_time  # only ever later under immutability
    entry = ActivityLogEntry.objects.filter(operation=instance_services.INSTANCE_WRITE, status="Succeeded").latest("id")
    assert entry.details["redated"]["keptByImmutability"] == 1 and entry.details["redated"]["expiryLater"] == 3
    assert alerts(SHORTER_PROTECTION) == []


def test_change_policy_alert_fires_for_a_point_that_gets_shorter(lab, vault, make_policy, thirty):
    _, instance, _ = thirty
    [monthly] = points(instance, [(5, "Monthly", 180)])
    target = make_policy(ADLS, "rd-60d", default=Retention(60, "Days"), extra={"Weekly": Retention(12, "Weeks")})
    instance_services.change_policy(lab.trainer, instance, target)
    assert fresh(monthly).expiry_time == monthly.recovery_point_time + 60 * DAY
    [alert] = alerts(SHORTER_PROTECTION)
    assert "its retention rules are not shorter" in alert.description
    assert "1 existing recovery point now expire earlier" in alert.description


@pytest.mark.parametrize("change", ["longer", "equal in days", "schedule only", "a rule removed, longer Default"])
def test_no_alert_when_nothing_gets_shorter(lab, thirty, change):
    policy, instance, made = thirty
    new = {
        "longer": spec(ADLS, default=Retention(60, "Days"), extra={"Weekly": Retention(12, "Weeks")}),
        "equal in days": spec(ADLS, default=Retention(30, "Days"), extra={"Weekly": Retention(84, "Days")}),
        "schedule only": spec(ADLS, time=dt.time(5, 30), default=Retention(30, "Days"),
                              extra={"Weekly": Retention(12, "Weeks")}),
        "a rule removed, longer Default": spec(ADLS, default=Retention(1, "Years")),
    }[change]
    policy_services.update_policy(lab.trainer, policy, spec=new)
    assert alerts(SHORTER_POLICY) == []
    assert not RecoveryPoint.objects.filter(instance=instance, soft_deleted_at__isnull=False).exists()
    if change == "a rule removed, longer Default":  # the Weekly point falls back to Default: a year
        weekly = fresh(made[3])
        assert weekly.expiry_time == weekly.recovery_point_time + dt.timedelta(days=365)


def test_redating_takes_the_same_queries_for_25_points_and_a_thousand(lab, vault, make_policy):
    """One SELECT and one bulk UPDATE per 1,000 changed points, whatever the count."""
    counts = {}
    for n in (25, 1000):
        policy = make_policy(ADLS, f"rd-q{n}", default=Retention(30, "Days"))
        instance = bare_instance(vault, policy)
        points(instance, [(i % 25, "Default", 30) for i in range(n)])
        rules = spec(ADLS, default=Retention(10, "Days"))
        with CaptureQueriesContext(connection) as service:
            policy_services.update_policy(lab.trainer, policy, spec=rules)
        with CaptureQueriesContext(connection) as alone:
            done = redating.redate(type(instance).objects.filter(pk=instance.pk), policy.policy_rules, vault)
        assert done.examined == n and done.shorter == 0  # the second run finds nothing to change
        # (the lab clock's offset is cached for a moment: whether it is read again depends on timing)
        sql = [q["sql"] for q in service.captured_queries if "security_labclock" not in q["sql"]]
        counts[n] = len(sql)
        assert sum(s.startswith('SELECT "protection_recoverypoint"') for s in sql) == 1
        assert sum(s.startswith('UPDATE "protection_recoverypoint"') for s in sql) == 1
        assert len(alone) == 1  # only the SELECT
        assert RecoveryPoint.objects.filter(instance=instance, soft_deleted_at__isnull=False).count() == n * 15 // 25
    assert counts[25] == counts[1000], counts


def test_a_removed_rule_whose_points_fall_back_to_a_longer_default_is_not_a_reduction(lab, vault, thirty):
    """Immutability refuses only what is shorter: dropping Weekly (12 weeks) for a one-year Default is
    allowed on a locked vault, and its Weekly point now lives a year; dropping it for a 30-day Default is not."""
    from security.guards import GuardDenied
    from vaults.guards import retention_reduced

    assert retention_reduced({"retention_before": {"Default": "P30D", "Weekly": "P12W"},
                              "retention_after": {"Default": "P1Y"}}) == []
    assert retention_reduced({"retention_before": {"Default": "P30D", "Weekly": "P12W"},
                              "retention_after": {"Default": "P30D"}}) == ["the Weekly rule (P12W) is removed"]
    policy, _, made = thirty
    vault_services.update_immutability(lab.trainer, vault, state="Unlocked")
    with pytest.raises(GuardDenied, match="the Weekly rule"):
        policy_services.update_policy(lab.trainer, policy, spec=spec(ADLS, default=Retention(30, "Days")))
    policy_services.update_policy(lab.trainer, policy, spec=spec(ADLS, default=Retention(1, "Years")))
    weekly = fresh(made[3])
    assert weekly.expiry_time == weekly.recovery_point_time + dt.timedelta(days=365)


def test_stopping_or_undeleting_keeps_a_soft_deleted_points_purge(lab, thirty):
    """Retain forever clears every expiry except a point being soft deleted: it keeps its purge time (it is
    purged once retention runs for the instance again), and stays not restorable."""
    from protection.backups import services as backups

    policy, instance, (p1, p10, _, _) = thirty
    policy_services.update_policy(lab.trainer, policy, spec=spec(ADLS, default=Retention(7, "Days"),
                                                                 extra={"Weekly": Retention(12, "Weeks")}))
    purge = fresh(p10).expiry_time
    backups.stop_backup(lab.trainer, instance, retain=backups.RETAIN_FOREVER)
    assert fresh(p1).expiry_time is None
    assert fresh(p10).expiry_time == purge and fresh(p10).is_soft_deleted


def test_a_longer_retention_on_an_immutable_vault_extends_the_stores_retention(lab, vault, make_policy, filled):
    """Re-dating moved a point's expiry later but the store kept retaining its snapshots until the old expiry
    only: the immutable store's promise fell short of the point's expiry."""
    from protection.backups import services as backups
    from vaults import storage

    policy = make_policy(ADLS, default=Retention(30, "Days"))
    instance = protect(lab, vault, policy, filled.account)
    point = jobs.run(backups.backup_now(lab.trainer, instance, retention_rule="Default").pk).recovery_point
    vault_services.update_immutability(lab.trainer, vault, state="Unlocked")

    def retained_until():
        with storage.open_store(vault) as store:
            return store.backend.get_retention(f"snapshots/{point.manifest_id}").until

    assert retained_until() == point.expiry_time
    policy_services.update_policy(lab.trainer, policy, spec=spec(ADLS, default=Retention(60, "Days")))
    later = fresh(point).expiry_time
    assert later == point.recovery_point_time + dt.timedelta(days=60)
    assert retained_until() == later
