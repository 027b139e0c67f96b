"""The scheduled-backup dispatcher: one indexed query, the latest due slot only after a lab-clock jump,
idempotent under two dispatchers at once on PostgreSQL (compare-and-set, then the unique key), and
subject to the guards as the system principal."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection

from protection.jobs import runner as jobs
from protection.models import BackupInstance, Job, JobStatus, ProtectionState
from protection.backups import services as backups
from security import clock
from security import services as security_services
from security.guards import Refusal
from security.models import ActivityLogEntry
from tests.protection._backups_fixtures import (  # noqa: F401  (fixtures)
    ADLS, filled, inventory, make_policy, principal_with, protect, put_blobs, vault,
)
from tests.conftest import refusing


@pytest.fixture
def enqueued(monkeypatch):
    """Record enqueues instead of sending them (no worker in these tests; the jobs are run inline)."""
    sent = []
    monkeypatch.setattr(jobs, "enqueue", lambda job: sent.append(job.pk))
    return sent


def _daily(make_policy, name="daily-0200"):
    import datetime as dt_

    return make_policy(ADLS, name, time=dt_.time(2, 0))


def _accounts(lab, n):
    from portal.inventory import services as inv

    made = []
    for i in range(n):
        account = inv.create_storage_account(lab.trainer, resource_group=lab.lab_group, name=f"sadisp{i}{id(made) % 9999}",
                                             region=lab.region)
        inv.create_container(lab.trainer, account, name="data")
        made.append(account)
    return made


@pytest.mark.date_sensitive
@pytest.mark.django_db
def test_after_a_clock_jump_only_the_latest_slot_runs(lab, vault, make_policy, filled, enqueued):
    """GIVEN a daily 02:00 schedule WHEN the lab clock jumps five days THEN one job is created, for the
    latest 02:00 before now; the schedule moves to the next 02:00 and a second run creates nothing."""
    instance = protect(lab, vault, _daily(make_policy), filled.account, name="bi-sched")
    first_due = instance.next_backup_at
    assert first_due > clock.now() and (first_due.hour, first_due.minute) == (2, 0)
    assert backups.dispatch_due_backups().enqueued == []  # nothing due yet
    security_services.move_lab_clock(lab.trainer, forward=dt.timedelta(days=5))
    now = clock.now()
    report = backups.dispatch_due_backups()
    [job] = Job.objects.filter(instance=instance, operation="Backup")
    assert report.enqueued == [job.pk] and enqueued[-1] == job.pk
    latest = now.replace(hour=2, minute=0, second=0, microsecond=0)
    if latest > now:
        latest -= dt.timedelta(days=1)
    assert job.scheduled_time == latest and job.scheduled_time > first_due + dt.timedelta(days=3)
    assert job.initiated_by_name == "Schedule" and not job.is_user_triggered
    instance.refresh_from_db()
    assert instance.last_scheduled_slot == latest
    assert instance.next_backup_at == latest + dt.timedelta(days=1)
    assert backups.dispatch_due_backups().enqueued == []
    ran = jobs.run(job.pk)
    assert ran.status == JobStatus.COMPLETED, ran.error_message
    assert not ran.recovery_point.is_user_triggered


@pytest.mark.django_db
def test_the_unique_key_stops_a_slot_from_being_created_twice(lab, vault, make_policy, filled, enqueued):
    """GIVEN a dispatched slot WHEN the instance's schedule is set back (a stale read, a restore of the
    row) THEN the next dispatch meets the unique (instance, scheduled_time) key and creates nothing."""
    instance = protect(lab, vault, _daily(make_policy), filled.account, name="bi-uniq")
    security_services.move_lab_clock(lab.trainer, forward=dt.timedelta(days=2))
    assert len(backups.dispatch_due_backups().enqueued) == 1
    BackupInstance.objects.filter(pk=instance.pk).update(next_backup_at=instance.next_backup_at, last_scheduled_slot=None)
    report = backups.dispatch_due_backups()
    assert report.enqueued == [] and report.lost == 1
    assert Job.objects.filter(instance=instance, operation="Backup").count() == 1


@pytest.mark.django_db
def test_the_due_question_is_one_indexed_query(lab, vault, make_policy, filled, django_assert_num_queries, request):
    protect(lab, vault, _daily(make_policy), filled.account, name="bi-idx")
    request.getfixturevalue("steady_clock")  # read the lab clock now: the count is the due question alone
    with django_assert_num_queries(1):
        backups.dispatch_due_backups()
    if connection.vendor != "postgresql":
        pytest.skip("The plan check needs PostgreSQL.")
    sql, params = backups.due_instances(clock.now(), 1000).query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "instance_due_idx" in plan, plan


@pytest.mark.django_db
def test_a_guard_can_refuse_a_scheduled_backup(lab, vault, make_policy, filled, enqueued):
    instance = protect(lab, vault, _daily(make_policy), filled.account, name="bi-guarded")

    paused = Refusal("Test", "BackupsPaused", "Backups are paused for this test.")
    with refusing(backups.BACKUP_ACTION, paused, name="test-no-backups"):
        security_services.move_lab_clock(lab.trainer, forward=dt.timedelta(days=1, hours=1))
        report = backups.dispatch_due_backups()
    assert report.refused == 1 and report.enqueued == []
    assert not Job.objects.filter(instance=instance, operation="Backup").exists()
    entry = ActivityLogEntry.objects.filter(operation=backups.BACKUP_ACTION, status="Failed").latest("id")
    assert entry.caller == "Strongroom system" and entry.message == "Backups are paused for this test."


@pytest.mark.django_db
def test_stopped_and_suspended_instances_are_not_dispatched(lab, vault, make_policy, filled, enqueued):
    instance = protect(lab, vault, _daily(make_policy), filled.account, name="bi-stop")
    backups.stop_backup(lab.trainer, instance, retain=backups.RETAIN_AS_PER_POLICY)
    security_services.move_lab_clock(lab.trainer, forward=dt.timedelta(days=3))
    assert backups.dispatch_due_backups().enqueued == []
    backups.resume_backup(lab.trainer, instance)
    assert backups.dispatch_due_backups().enqueued == []  # resumed from now: no backlog
    security_services.move_lab_clock(lab.trainer, forward=dt.timedelta(days=1))
    assert len(backups.dispatch_due_backups().enqueued) == 1


@pytest.mark.django_db(transaction=True)
def test_two_dispatchers_at_once_create_each_slot_once(lab, vault, make_policy, enqueued, monkeypatch):
    """GIVEN five due instances WHEN two dispatchers (threads, each with its own PostgreSQL connection)
    both read the same due rows and then act THEN every instance gets exactly one job: one dispatcher
    wins each compare-and-set, the other updates nothing."""
    policy = _daily(make_policy)
    instances = [protect(lab, vault, policy, account, name=f"bi-race-{i}") for i, account in enumerate(_accounts(lab, 5))]
    security_services.move_lab_clock(lab.trainer, forward=dt.timedelta(days=1, hours=1))
    both_read = threading.Barrier(2, timeout=30)
    original = backups.due_instances

    def due_then_wait(now, limit):
        rows = list(original(now, limit))
        both_read.wait()  # neither acts before both have read the same due rows
        return rows

    monkeypatch.setattr(backups, "due_instances", due_then_wait)
    reports, errors = [], []

    def dispatcher():
        try:
            reports.append(backups.dispatch_due_backups())
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=dispatcher) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(len(r.enqueued) for r in reports) in ([0, 5], [1, 4], [2, 3])  # who wins each row varies
    assert sum(len(r.enqueued) for r in reports) == 5 and sum(r.lost for r in reports) == 5
    for instance in instances:
        assert Job.objects.filter(instance=instance, operation="Backup").count() == 1
    backup_jobs = set(Job.objects.filter(operation="Backup").values_list("pk", flat=True))
    assert len(backup_jobs) == 5 and backup_jobs <= set(enqueued)
