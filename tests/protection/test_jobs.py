"""The job machinery: claims, progress, cancel, terminal states, reconciler."""

import datetime as dt

import pytest
from django.utils import timezone

from protection import jobs
from protection.models import Job, JobCategory, JobOperation, JobStatus
from security import clock


@pytest.fixture
def vault(lab):
    from vaults import services as vault_services

    return vault_services.create_vault(lab.trainer, name="bv-jobs", region=lab.region, resource_group=lab.lab_group)


@pytest.fixture
def handler():
    """Register a handler for Verify jobs for the test; it records calls and does what it is told."""
    calls = []
    behaviour = {"do": lambda job, progress: None}

    def run(job, progress):
        calls.append(job.pk)
        return behaviour["do"](job, progress)

    previous = jobs.handler_for(JobOperation.VERIFY)
    jobs.register_handler(JobOperation.VERIFY, run)
    yield calls, behaviour
    if previous:
        jobs.register_handler(JobOperation.VERIFY, previous)
    else:
        jobs._handlers.pop(JobOperation.VERIFY, None)


def _job(vault, **kw):
    return Job.objects.create(vault=vault, operation=JobOperation.VERIFY, category=JobCategory.MANAGEMENT,
                              start_time=clock.now(), **kw)


def test_a_job_runs_once_however_often_it_is_delivered(vault, handler):
    calls, _ = handler
    job = _job(vault)
    assert jobs.run(job.pk).status == JobStatus.COMPLETED
    assert jobs.run(job.pk) is None  # redelivered: already finished
    assert calls == [job.pk]


def test_a_claimed_job_cannot_be_claimed_again(vault):
    job = _job(vault)
    assert jobs.claim(job.pk) is not None
    assert jobs.claim(job.pk) is None


def test_coded_failures_keep_their_code_and_message(vault, handler):
    _, behaviour = handler

    def fail(job, progress):
        raise jobs.JobError("UserErrorMissingRequiredPermissions", "Appropriate permissions to perform the operation are missing.")

    behaviour["do"] = fail
    job = jobs.run(_job(vault).pk)
    assert (job.status, job.error_code) == (JobStatus.FAILED, "UserErrorMissingRequiredPermissions")
    assert job.end_time is not None


def test_an_unexpected_error_fails_the_job_instead_of_leaving_it_running(vault, handler):
    _, behaviour = handler
    behaviour["do"] = lambda job, progress: 1 / 0
    job = jobs.run(_job(vault).pk)
    assert (job.status, job.error_code) == (JobStatus.FAILED, "InternalError")
    assert "ZeroDivisionError" in job.error_message


def test_progress_is_written_and_a_cancel_is_noticed(vault, handler):
    _, behaviour = handler
    seen = []

    def work(job, progress):
        progress(bytes_total=1000, bytes_done=250, items_done=3, current_item="a/b.txt", force=True)
        seen.append(Job.objects.get(pk=job.pk).percent)
        jobs.request_cancel(job)  # the user presses Cancel while it runs
        progress(bytes_done=500, force=True)  # the next progress write notices
        raise AssertionError("not reached")

    behaviour["do"] = work
    job = jobs.run(_job(vault).pk)
    assert seen == [25]
    assert (job.status, job.error_code) == (JobStatus.CANCELLED, "UserCancelled")


def test_progress_writes_are_rate_limited(vault, django_assert_max_num_queries):
    job = jobs.claim(_job(vault).pk)
    progress = jobs.Progress(job)
    progress(bytes_done=1, force=True)
    with django_assert_max_num_queries(0):
        for i in range(1000):
            progress(bytes_done=i)


def test_cancel_before_start_ends_the_job_at_once(vault, handler):
    calls, _ = handler
    job = _job(vault)
    assert jobs.request_cancel(job)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert jobs.run(job.pk) is None and calls == []


def test_reconciler_reruns_a_job_whose_worker_died_then_gives_up(vault, handler, django_capture_on_commit_callbacks):
    job = _job(vault)
    for attempt in range(1, jobs.MAX_ATTEMPTS + 1):
        claimed = jobs.claim(job.pk)
        assert claimed.attempts == attempt
        # the worker dies: its heartbeat stops
        Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - dt.timedelta(minutes=5))
        with django_capture_on_commit_callbacks() as callbacks:
            report = jobs.reconcile()
        if attempt < jobs.MAX_ATTEMPTS:
            assert report.rerun == [job.pk] and len(callbacks) == 1
        else:
            assert report.failed == [job.pk]
    job.refresh_from_db()
    assert (job.status, job.error_code) == (JobStatus.FAILED, "JobHeartbeatLost")


def test_reconciler_leaves_live_jobs_alone(vault):
    job = jobs.claim(_job(vault).pk)
    report = jobs.reconcile()
    assert report == jobs.ReconcileReport([], [], [])
    assert Job.objects.get(pk=job.pk).claimed_at is not None


def test_reconciler_resends_a_job_whose_message_was_lost(vault, django_capture_on_commit_callbacks):
    job = _job(vault)
    Job.objects.filter(pk=job.pk).update(start_time=clock.now() - dt.timedelta(minutes=10))
    with django_capture_on_commit_callbacks() as callbacks:
        assert jobs.reconcile().resent == [job.pk]
    assert len(callbacks) == 1


def test_a_worker_that_lost_its_claim_stops_and_cannot_end_the_job(vault, handler):
    """GIVEN a worker whose heartbeat looked stale, so the reconciler handed its job to another
    WHEN the first worker reports progress or tries to finish THEN it stops, and only the new
    owner's outcome counts."""
    _, behaviour = handler
    job = _job(vault)
    first = jobs.claim(job.pk)
    # The reconciler releases the claim; a second worker takes the job.
    Job.objects.filter(pk=job.pk).update(claimed_at=None, worker="", heartbeat_at=None)
    second = jobs.claim(job.pk)
    assert second is not None
    Job.objects.filter(pk=job.pk).update(worker="other-host:1")
    with pytest.raises(jobs.JobLost):
        jobs.Progress(first)(bytes_done=5, force=True)
    assert jobs.finish(first, JobStatus.COMPLETED) is False
    assert Job.objects.get(pk=job.pk).status == JobStatus.IN_PROGRESS
