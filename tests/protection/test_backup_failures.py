"""Failed backups clean up after themselves, and lost attempts never break an immutable vault (issue 14).

- A full store fails the backup with ``UserErrorBackupStorageFull`` (not InternalError), leaves none of
  its packs, starts a Retention job that garbage-collects the vault's store, and the next backup works
  once space is back.
- In an immutable vault an attempt's snapshots get their retain-until only when the recovery point is
  committed; a leftover that is retained anyway (a worker that died in that very moment) is deferred,
  recorded and shown, never an error, and deleted by the first retention run after its retain-until.
"""

from __future__ import annotations

import datetime as dt
import errno
import os

import pytest

from protection.jobs import runner as jobs
from protection.models import Job, JobOperation, JobStatus
from protection.backups import services as backups
from protection.backups import retention
from protection.policies.services import Retention
from security import clock
from security import services as security_services
from security.models import Alert
from tests.protection._backups_fixtures import (  # noqa: F401  (fixtures)
    ADLS, backup_now_and_run, filled, inventory, make_policy, protect, run_job, snapshots_of, vault,
)
from vaults import services as vault_services
from vaults.store import LocalBackend, Store
from vaults.store.backend import StagedObject

pytestmark = pytest.mark.django_db
UTC = dt.timezone.utc


@pytest.fixture
def adls(lab, vault, make_policy, filled):
    policy = make_policy(ADLS, "adls-fail", default=Retention(30, "Days"))
    return protect(lab, vault, policy, filled.account, name="bi-fail")


def vault_store(vault):
    from vaults.storage import open_store

    return lambda: open_store(vault)


def packs_on_disk(vault) -> list:
    from vaults.storage import store_path

    root = store_path(vault) / "packs"
    return sorted(os.path.join(d, f) for d, _dirs, files in os.walk(root) for f in files)


# --- a full store ------------------------------------------------------------------------------------


def test_a_full_store_fails_with_a_coded_error_cleans_up_and_the_next_backup_works(lab, adls, monkeypatch):
    full = {"on": True}
    write = LocalBackend._atomic_write_raw

    def disk(self, path, chunks):
        if full["on"] and f"{os.sep}packs{os.sep}" in path:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return write(self, path, chunks)

    monkeypatch.setattr(LocalBackend, "_atomic_write_raw", disk)
    staged_write = StagedObject._write_raw

    def staged_disk(self, data):  # packs are written piece by piece into a staged temp file
        if full["on"]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return staged_write(self, data)

    monkeypatch.setattr(StagedObject, "_write_raw", staged_disk)
    before = packs_on_disk(adls.vault)
    job = backup_now_and_run(lab.trainer, adls)
    assert job.status == JobStatus.FAILED and job.error_code == backups.STORAGE_FULL, (job.error_code, job.error_message)
    assert f"The storage of the Backup vault '{adls.vault.name}' is full" in job.error_message
    assert "run the backup again" in job.error_message
    assert packs_on_disk(adls.vault) == before and not adls.recovery_points.exists()
    alert = Alert.objects.get(name=backups.BACKUP_FAILURE_ALERT)
    assert backups.STORAGE_FULL in alert.description

    # the portal follows the failure with a clean-up run that garbage-collects the vault's store
    [cleanup] = Job.objects.filter(operation=JobOperation.RETENTION, vault=adls.vault)
    assert cleanup.parameters["failedBackupJobId"] == str(job.pk)
    done = jobs.run(cleanup.pk)
    assert done.status == JobStatus.COMPLETED, (done.error_code, done.error_message)
    assert done.extended_info["gc"] and "freed" in done.extended_info["gc"][0]
    job.refresh_from_db()
    assert job.extended_info["leftoversRemoved"] == 0
    assert retention.start_retention_runs() == []  # done once

    full["on"] = False  # space is back
    again = backup_now_and_run(lab.trainer, adls)
    assert again.status == JobStatus.COMPLETED, (again.error_code, again.error_message)
    with vault_store(adls.vault)() as store:
        assert store.verify().ok


def test_a_failed_backup_removes_the_items_it_had_committed(lab, adls, monkeypatch):
    """A failure after the first container's snapshot was committed: the snapshot goes, and the clean-up
    run finds nothing left of the job."""
    calls = {"n": 0}
    original = Store.backup_tree

    def second_fails(self, *args, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.EIO, "read error on the storage account")
        return original(self, *args, **kw)

    monkeypatch.setattr(Store, "backup_tree", second_fails)
    job = backup_now_and_run(lab.trainer, adls)
    assert job.status == JobStatus.FAILED and calls["n"] == 2
    assert snapshots_of(vault_store(adls.vault), f"bi:{adls.pk}") == []
    [cleanup] = Job.objects.filter(operation=JobOperation.RETENTION, vault=adls.vault)
    assert jobs.run(cleanup.pk).status == JobStatus.COMPLETED


@pytest.mark.django_db(transaction=True)
def test_a_failure_after_the_point_committed_never_deletes_its_data(lab, adls, monkeypatch):
    """GIVEN a backup whose recovery point has committed WHEN something run at commit raises (an enqueue
    of a later job) THEN the point's snapshots stay: data is never deleted because of what came after."""
    from django.db import transaction

    original_finish = jobs.finish

    def finish_then_a_failing_enqueue(job, status, **kw):
        ended = original_finish(job, status, **kw)
        transaction.on_commit(lambda: (_ for _ in ()).throw(OSError("the broker went away")))
        return ended

    monkeypatch.setattr(jobs, "finish", finish_then_a_failing_enqueue)
    job = backups.backup_now(lab.trainer, adls, retention_rule="Default")
    try:
        run_job(job)
    except OSError:
        pass  # how far the failure travels is the job machinery's business; the data is what counts here
    monkeypatch.setattr(jobs, "finish", original_finish)
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED and job.recovery_point is not None
    assert snapshots_of(vault_store(adls.vault), f"bi:{adls.pk}")  # the point's data is still there


def test_a_failure_before_anything_was_written_needs_no_clean_up(lab, adls):
    from security.models import Principal

    Principal.objects.filter(pk=adls.vault.identity_id).update(enabled=False)  # the vault's identity turned off
    job = backup_now_and_run(lab.trainer, adls)
    assert job.status == JobStatus.FAILED and job.error_code == backups.MISSING_PERMISSIONS
    assert not Job.objects.filter(operation=JobOperation.RETENTION).exists()
    assert retention.start_retention_runs() == []


def test_a_backup_asked_for_by_someone_whose_role_is_gone_stops_before_reading(lab, adls, backup_admin):
    """Backup now is authorized again when the worker runs it, as the person who asked."""
    from security.models import ActivityLogEntry, RoleAssignment

    job = backups.backup_now(backup_admin, adls, retention_rule="Default")
    RoleAssignment.objects.filter(principal=backup_admin).delete()
    jobs.run(job.pk)
    job.refresh_from_db()
    assert (job.status, job.error_code) == (JobStatus.FAILED, "UserErrorBackupNotAuthorized"), job.error_message
    assert not adls.recovery_points.exists() and packs_on_disk(adls.vault) == []
    denial = ActivityLogEntry.objects.filter(details__jobId=str(job.pk), details__guard="RBAC").get()
    assert denial.details["code"] and denial.details["instance"] == adls.name


# --- immutable vaults ----------------------------------------------------------------------------------


def test_an_attempt_never_retains_its_snapshots_the_committed_point_does(lab, adls, monkeypatch):
    vault_services.update_immutability(lab.trainer, adls.vault, state="Unlocked")
    seen = []
    original = Store.backup_tree

    def spy(self, *args, **kw):
        seen.append(kw.get("retain_until"))
        return original(self, *args, **kw)

    monkeypatch.setattr(Store, "backup_tree", spy)
    job = backup_now_and_run(lab.trainer, adls)
    assert job.status == JobStatus.COMPLETED, (job.error_code, job.error_message)
    assert seen and set(seen) == {None}  # nothing retained while the attempt ran
    point = job.recovery_point
    with vault_store(adls.vault)() as store:
        for m in point.manifests:
            snap = store.get_snapshot(m["id"])
            assert snap.retention_mode == "governance"
            assert dt.datetime.fromisoformat(snap.retain_until) == point.expiry_time


def retained_leftover(vault, instance, for_job, documents, until) -> str:
    """What a worker that died right after retaining an attempt's snapshot leaves behind."""
    with vault_store(vault)() as store:
        return store.backup_tree(str(documents.path), source_id=f"bi:{instance.pk}:container:documents",
                                 tags=[f"instance:{instance.pk}", f"job:{for_job.pk}"], retain_until=until,
                                 retention_mode="governance").id


def test_a_retained_leftover_never_breaks_a_rerun_nor_retention(lab, adls, filled, monkeypatch):
    vault = adls.vault
    vault_services.update_immutability(lab.trainer, vault, state="Unlocked")
    documents = filled.account.containers.get(name="documents")
    until = dt.datetime.now(UTC).replace(microsecond=0) + dt.timedelta(days=3)

    # a re-run (attempt 2) completes; the leftover is recorded on the job and shown on its page
    job = backups.backup_now(lab.trainer, adls, retention_rule="Default")
    orphan = retained_leftover(vault, adls, job, documents, until)
    Job.objects.filter(pk=job.pk).update(attempts=1)
    done = run_job(job)
    assert done.status == JobStatus.COMPLETED and done.attempts == 2, (done.error_code, done.error_message)
    [deferred] = done.extended_info["leftoversDeferred"]
    assert deferred["snapshotId"] == orphan and dt.datetime.fromisoformat(deferred["retainUntil"]) == until

    from django.test import Client

    client = Client()
    client.force_login(lab.trainer.user)
    page = client.get(_job_url(done))
    assert page.status_code == 200 and orphan in page.content.decode()

    # a job the reconciler failed: retention completes with a warning instead of failing, every run
    lost = backups.backup_now(lab.trainer, adls, retention_rule="Default")
    orphan2 = retained_leftover(vault, adls, lost, documents, until)
    Job.objects.filter(pk=lost.pk).update(status=JobStatus.FAILED, error_code="JobHeartbeatLost", end_time=clock.now())
    [run] = retention.start_retention_runs()
    ret = jobs.run(run.pk)
    assert ret.status == JobStatus.COMPLETED_WITH_WARNINGS, (ret.error_code, ret.error_message)
    assert [d["snapshotId"] for d in ret.extended_info["leftoversDeferred"]] == [orphan2]
    page = client.get(_job_url(ret)).content.decode()
    assert orphan2 in page and "Waiting for their retention to end" in page
    assert retention.start_retention_runs() == []  # nothing to retry before the retain-until

    # after the retain-until (store time and app time both past it) the next run deletes it
    later = until + dt.timedelta(days=1)
    monkeypatch.setattr("vaults.store.backend.utcnow", lambda: later)
    security_services.move_lab_clock(lab.trainer, forward=dt.timedelta(days=4))
    [run] = retention.start_retention_runs()
    ret = jobs.run(run.pk)
    assert ret.status == JobStatus.COMPLETED, (ret.error_code, ret.error_message)
    assert ret.extended_info["leftoverSnapshotsRemoved"] == 2 and ret.extended_info["leftoversDeferred"] == []
    ids = {s.id for s in snapshots_of(vault_store(vault), f"bi:{adls.pk}")}
    assert orphan not in ids and orphan2 not in ids
    assert ids == {m["id"] for m in done.recovery_point.manifests}  # the real point is untouched
    for j in (lost, done):
        j.refresh_from_db()
        assert "leftoversDeferred" not in j.extended_info


def _job_url(job):
    from django.urls import reverse

    return reverse("protection:job_detail", args=[job.pk])


def test_the_reconciler_giving_up_defers_a_retained_leftover_and_starts_the_clean_up(lab, adls, filled):
    """A third lost worker: the reconciler fails the job and runs its cleanup, which must not break on a
    snapshot the store still retains; a clean-up run (garbage collection) follows."""
    from django.utils import timezone

    vault = adls.vault
    vault_services.update_immutability(lab.trainer, vault, state="Unlocked")
    job = backups.backup_now(lab.trainer, adls, retention_rule="Default")
    until = dt.datetime.now(UTC).replace(microsecond=0) + dt.timedelta(days=3)
    orphan = retained_leftover(vault, adls, job, filled.account.containers.get(name="documents"), until)
    Job.objects.filter(pk=job.pk).update(claimed_at=timezone.now(), worker="dead", attempts=jobs.MAX_ATTEMPTS,
                                         heartbeat_at=timezone.now() - dt.timedelta(minutes=10))
    report = jobs.reconcile()
    assert report.failed == [job.pk]
    job.refresh_from_db()
    assert (job.status, job.error_code) == (JobStatus.FAILED, "JobHeartbeatLost")
    assert "Removed" in job.extended_info["cleanup"]["result"]  # the cleanup did not fail
    assert [d["snapshotId"] for d in job.extended_info["leftoversDeferred"]] == [orphan]
    [cleanup] = Job.objects.filter(operation=JobOperation.RETENTION, vault=vault)
    done = jobs.run(cleanup.pk)
    assert done.status == JobStatus.COMPLETED_WITH_WARNINGS and done.extended_info["gc"]
    assert [d["snapshotId"] for d in done.extended_info["leftoversDeferred"]] == [orphan]

