"""No job can hang, round trips through a real worker (Redis) and real tools:

* a ``pg_dump`` waiting on a table lock writes nothing: after the stall time (injected, not slept) the
  job fails with JobStalled, and a Cancel stops it within seconds; either way no pg_dump survives;
* Backup now with the broker down leaves a queued job and a normal page that says so; a second click
  is refused as queued; the reconciler sends it once the broker is back and a worker runs it;
* one backup per instance at a time, whoever starts it;
* a restore the reconciler gives up still has its hidden temporary folder removed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from protection import processes
from protection.jobs import runner as jobs
from protection.models import Job, JobCategory, JobOperation, JobStatus, RecoveryPoint
from protection.backups import services as backups
from security import clock
from tests.protection._backups_fixtures import (  # noqa: F401  (fixtures)
    ADLS, PG, filled, inventory, make_policy, pg_database, principal_with, protect, put_blobs,
    snapshots_of, vault,
)
from tests.conftest import process_gone as _gone
from tests.conftest import wait_until as wait_for


def protect_and_wait(*args, **kwargs):
    """`protect`, when a real worker may be the one that runs the ConfigureProtection job."""
    from protection.models import BackupInstance, ProtectionState

    instance = protect(*args, **kwargs)
    wait_for(lambda: BackupInstance.objects.filter(pk=instance.pk, protection_state=ProtectionState.CONFIGURED).exists(),
             60, "protection to be configured")
    instance.refresh_from_db()
    return instance


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


# --- pg_dump waiting on a lock ------------------------------------------------------------------


@pytest.mark.celery
@pytest.mark.django_db(transaction=True)
def test_a_pg_dump_waiting_on_a_lock_is_stopped_by_a_stall_and_by_cancel(lab, vault, make_policy, inventory,
                                                                         pg_database, worker, monkeypatch,
                                                                         pg_cluster_turn):
    """GIVEN a table locked by another session, so pg_dump waits without writing a byte WHEN no byte
    moves for the stall time THEN the job fails JobStalled; WHEN the next backup is cancelled THEN it
    ends Cancelled within seconds. Neither leaves a pg_dump process, a recovery point or a snapshot."""
    from portal.inventory import postgres
    from vaults.storage import open_store

    fake = FakeClock()
    monkeypatch.setattr(jobs, "_monotonic", fake)
    monkeypatch.setattr(jobs, "WATCH_EVERY_SECONDS", 0.1)
    name = pg_database("sr_lock")
    params = postgres.ConnectionParams("127.0.0.1", 5432, "postgres").with_database(name)
    table = sorted(postgres.table_counts(params))[0]
    instance = protect_and_wait(lab, vault, make_policy(PG, "pg-lock"), inventory.server, name="bi-pg-lock")

    def blocked_dump(job):
        """The job's pg_dump pid once it waits on our lock (seen from the server's side too)."""
        pids = processes.pids_for(job.pk)
        if not pids or Job.objects.get(pk=job.pk).current_item != f"Dumping {name}.dump":
            return None
        with postgres.connect(params) as conn:
            # The job's tools carry its id as their application name (PGAPPNAME).
            waiting = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name "
                                   "= %s AND wait_event_type = 'Lock'", [name, f"strongroom-job-{job.pk}"]).fetchone()[0]
        return pids[0] if waiting else None

    def server_sessions():
        with postgres.connect(params) as conn:
            return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name "
                                "LIKE 'strongroom-job-%%'", [name]).fetchone()[0]

    locker = postgres.connect(params)
    try:
        locker.execute(f'LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE')  # held until the end of the test
        # 1. The stall: time moves on by hand, nothing is slept.
        job = backups.backup_now(lab.trainer, instance, retention_rule="Default")
        pid = wait_for(lambda: blocked_dump(job), 120, "pg_dump to wait on the lock")
        fake.now += jobs.stall_seconds("transfer") + 1
        wait_for(lambda: Job.objects.filter(pk=job.pk, status=JobStatus.FAILED).exists(), 30, "the stalled job to fail")
        job.refresh_from_db()
        assert job.error_code == "JobStalled"
        assert job.error_message.startswith(f"No progress for 10 minutes while Dumping {name}.dump")
        assert _gone(pid) and processes.pids_for(job.pk) == []

        # 2. Cancel: the watchdog kills pg_dump's group; the job ends within seconds.
        job = backups.backup_now(lab.trainer, instance, retention_rule="Default")
        pid = wait_for(lambda: blocked_dump(job), 120, "pg_dump to wait on the lock again")
        asked = time.monotonic()
        backups.cancel_job(lab.trainer, job)
        wait_for(lambda: Job.objects.filter(pk=job.pk, status=JobStatus.CANCELLED).exists(), 30, "the job to end Cancelled")
        took = time.monotonic() - asked
        print(f"Cancel of a pg_dump waiting on a lock: ended Cancelled after {took:.2f} s")
        assert took < 30, f"Cancel took {took:.1f} s"
        job.refresh_from_db()
        assert job.error_code == "UserCancelled"
        assert _gone(pid) and processes.pids_for(job.pk) == []
        # A killed pg_dump's server session ends when PostgreSQL notices, at the latest at its lock-wait
        # timeout (60 s + 10 %): on a quiet machine pg_dump's own cancel request ends it at once.
        wait_for(lambda: server_sessions() == 0, 90, "pg_dump's server session to end")
    finally:
        locker.close()
    assert not RecoveryPoint.objects.filter(instance=instance).exists()
    assert snapshots_of(lambda: open_store(vault), f"bi:{instance.pk}") == []  # not even globals.sql


# --- Backup now with the broker down -------------------------------------------------------------


@contextlib.contextmanager
def broker_down():
    """Publishing goes to a port where no broker listens (the worker's own connection is untouched)."""
    from portal.celery import app

    good = app.conf.get("broker_write_url")

    def switch(url):
        app.conf.broker_write_url = url  # the write URL wins over CELERY_BROKER_URL in the environment
        app._pool = None  # noqa: SLF001 - the producer pools are built from the broker URL on first use
        app.amqp._producer_pool = None  # noqa: SLF001

    switch("redis://127.0.0.1:1/0")
    try:
        yield
    finally:
        switch(good)


@pytest.mark.celery
@pytest.mark.django_db(transaction=True)
def test_backup_now_with_the_broker_down_queues_the_job_and_the_reconciler_sends_it(lab, vault, make_policy, inventory,
                                                                                   signed_in_client, worker):
    documents = inventory.account.containers.get(name="documents")
    put_blobs(lab.trainer, documents, {"a.txt": b"queued while the broker was down\n" * 100})
    instance = protect_and_wait(lab, vault, make_policy(ADLS, "queue-daily"), inventory.account, name="bi-queued",
                                all_containers=False, containers=["documents"])
    client = signed_in_client(lab.trainer)
    url = reverse("protection:instance_backup_now", args=[instance.pk])
    with broker_down():
        started = time.monotonic()
        response = client.post(url, {"retention_rule": "Default"}, follow=True)
        print(f"Backup now with the broker down answered in {time.monotonic() - started:.2f} s")
        assert time.monotonic() - started < 30  # no wait on the broker: a loaded CI machine still answers well within this
        assert response.status_code == 200
        assert jobs.QUEUE_UNREACHABLE in response.content.decode()
        [job] = Job.objects.filter(instance=instance, operation=JobOperation.BACKUP)
        assert job.status == JobStatus.IN_PROGRESS and job.claimed_at is None and job.sent_at is None
        assert "OperationalError" in job.queue_error or "Connection" in job.queue_error
        # The htmx pane says the same, and a second click is refused as queued, not as a server error.
        again = client.post(url, {"retention_rule": "Default"}, HTTP_HX_REQUEST="true")
        assert again.status_code == 200
        assert "already in progress: it is queued, and the task queue is not reachable" in again.content.decode()
        assert Job.objects.filter(instance=instance, operation=JobOperation.BACKUP).count() == 1
        assert jobs.reconcile().resent == [job.pk]  # the broker is still down: still queued
        job.refresh_from_db()
        assert job.queue_error and job.claimed_at is None
    report = jobs.reconcile()  # the broker is back: sent at once, no 120 s wait
    assert report.resent == [job.pk]
    wait_for(lambda: Job.objects.filter(pk=job.pk, status__in=[JobStatus.COMPLETED, JobStatus.FAILED]).exists(), 60,
             "the queued job to run")
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, job.error_message
    assert job.queue_error == "" and job.sent_at is not None and job.resends == 2
    page = client.get(reverse("protection:job_detail", args=[job.pk])).content.decode()
    assert "resent by the reconciler 2 times" in page


# --- One backup per instance at a time -------------------------------------------------------------


@pytest.mark.django_db
def test_a_scheduled_backup_does_not_start_while_an_on_demand_one_runs(lab, vault, make_policy, filled, monkeypatch):
    """GIVEN an on-demand backup running WHEN the instance's scheduled slot comes THEN the slot's job is
    recorded as not started (UserErrorBackupOperationInProgress, naming the running job) and only one
    backup of the instance is active; the database refuses a second active one whoever inserts it."""
    from security import services as security_services

    monkeypatch.setattr(jobs, "enqueue", lambda job: None)  # run inline below
    instance = protect(lab, vault, make_policy(ADLS, "daily-busy", time=dt.time(2, 0)), filled.account, name="bi-busy")
    running = backups.backup_now(lab.trainer, instance, retention_rule="Default")
    security_services.move_lab_clock(lab.trainer, forward=dt.timedelta(days=1))
    report = backups.dispatch_due_backups()
    assert report.enqueued == [] and len(report.busy) == 1
    skipped = Job.objects.get(pk=report.busy[0])
    assert (skipped.status, skipped.error_code) == (JobStatus.FAILED, "UserErrorBackupOperationInProgress")
    assert str(running.pk) in skipped.error_message and "did not start" in skipped.error_message
    assert Job.objects.filter(instance=instance, status=JobStatus.IN_PROGRESS).count() == 1
    with pytest.raises(IntegrityError), transaction.atomic():
        Job.objects.create(vault=vault, instance=instance, operation=JobOperation.BACKUP, category=JobCategory.BACKUP,
                           start_time=clock.now())
    assert jobs.run(running.pk).status == JobStatus.COMPLETED
    security_services.move_lab_clock(lab.trainer, forward=dt.timedelta(days=1))
    assert len(backups.dispatch_due_backups().enqueued) == 1  # nothing runs: the next slot starts


# --- The reconciler gives a restore up: its leftovers go --------------------------------------------


@pytest.mark.django_db
def test_a_restore_the_reconciler_gives_up_has_its_hidden_folder_removed(lab, vault, make_policy, filled,
                                                                        django_capture_on_commit_callbacks):
    from protection.restores import adls, readiness, services
    from tests.protection._restore_fixtures import adls_target, backup, new_account

    instance = protect(lab, vault, make_policy(ADLS), filled.account)
    point = backup(lab, instance)
    account = new_account(lab)
    target = adls_target(account)
    services.assign_restore_roles(lab.trainer, point, target, readiness.SCOPE_RESOURCE)
    with django_capture_on_commit_callbacks():
        job = services.start_restore(lab.trainer, point, target)
    # Three workers died mid-restore; the last left its hidden folder behind.
    hidden = account.data_path / f"{adls.TEMP_PREFIX}{job.pk.hex}"
    (hidden / "documents").mkdir(parents=True)
    (hidden / "documents" / "half.bin").write_bytes(b"x" * 1000)
    Job.objects.filter(pk=job.pk).update(attempts=jobs.MAX_ATTEMPTS, claimed_at=timezone.now(), worker="gone:1",
                                         heartbeat_at=timezone.now() - dt.timedelta(minutes=5))
    assert jobs.reconcile().failed == [job.pk]
    job.refresh_from_db()
    assert (job.status, job.error_code) == (JobStatus.FAILED, "JobHeartbeatLost")
    assert not hidden.exists()
    assert "Removed" in job.extended_info["cleanup"]["result"]
