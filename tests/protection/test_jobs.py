"""The job machinery: claims, progress, cancel, terminal states, reconciler."""

import datetime as dt
import socket
import subprocess
import time

import pytest
from django.utils import timezone

from protection import processes
from protection.jobs import runner as jobs
from protection.models import Job, JobCategory, JobOperation, JobStatus
from security import clock
from tests.conftest import process_gone as _gone


@pytest.fixture
def vault(lab):
    from vaults import services as vault_services

    return vault_services.create_vault(lab.trainer, name="bv-jobs", region=lab.region, resource_group=lab.lab_group)


@pytest.fixture
def handler():
    """Register a handler for Verify jobs for the test; it records calls and does what it is told.
    Its cleanup (run when the reconciler gives a job up) records the jobs it was given."""
    calls = []
    behaviour = {"do": lambda job, progress: None, "cleaned": []}

    def run(job, progress):
        calls.append(job.pk)
        return behaviour["do"](job, progress)

    previous = jobs.handler_for(JobOperation.VERIFY)
    previous_cleanup = jobs.cleanup_for(JobOperation.VERIFY)
    jobs.register_handler(JobOperation.VERIFY, run, cleanup=lambda job: behaviour["cleaned"].append(job.pk))
    yield calls, behaviour
    if previous:
        jobs.register_handler(JobOperation.VERIFY, previous, cleanup=previous_cleanup)
    else:
        jobs._handlers.pop(JobOperation.VERIFY, None)
        jobs._cleanups.pop(JobOperation.VERIFY, None)


class FakeClock:
    """The watchdog's monotonic clock, moved on by the test instead of sleeping."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


@pytest.fixture
def fake_clock(monkeypatch):
    clock_ = FakeClock()
    monkeypatch.setattr(jobs, "_monotonic", clock_)
    monkeypatch.setattr(jobs, "WATCH_EVERY_SECONDS", 0.05)  # the watchdog looks often; time moves by hand
    return clock_


def _living_in_group(pgid) -> list:
    """Pids of the process group that are not zombies."""
    living = []
    for pid in subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True).stdout.split():
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            living.append(pid)
    return living


def _job(vault, **kw):
    return Job.objects.create(vault=vault, operation=JobOperation.VERIFY, category=JobCategory.MANAGEMENT,
                              start_time=clock.now(), **kw)


def _claimed_by_a_dead_worker_of_this_host(vault):
    """A job whose claim (fresh heartbeat, first attempt) is held by a process of this host that has exited."""
    job = _job(vault)
    dead = subprocess.Popen(["true"])
    dead.wait()
    now = timezone.now()
    Job.objects.filter(pk=job.pk).update(claimed_at=now, heartbeat_at=now, attempts=1,
                                         worker=f"{socket.gethostname()}:{dead.pid}")
    return job


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


def test_the_first_bytes_are_written_at_once_even_right_after_a_forced_write(vault, handler):
    """A short job still shows movement: the first write with bytes done is not held back by the rate
    limit after a forced "Backing up ..." write just before it."""
    _, behaviour = handler
    seen = []

    def work(job, progress):
        progress(current_item="Backing up", force=True)
        progress(bytes_total=1000, bytes_done=100)
        seen.append(Job.objects.get(pk=job.pk).bytes_done)

    behaviour["do"] = work
    jobs.run(_job(vault).pk)
    assert seen == [100]


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
    _, behaviour = handler
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
    # Giving up still runs the handler's cleanup (once), and the job says so.
    assert behaviour["cleaned"] == [job.pk]
    assert "Removed what the lost attempts left" in job.extended_info["cleanup"]["result"]


def test_reconciler_leaves_live_jobs_alone(vault):
    job = jobs.claim(_job(vault).pk)
    report = jobs.reconcile()
    assert report == jobs.ReconcileReport([], [], [])
    assert Job.objects.get(pk=job.pk).claimed_at is not None


def test_reconciler_resends_a_job_whose_message_was_lost_once_and_records_it(vault, django_capture_on_commit_callbacks):
    """GIVEN a job whose message never reached a worker WHEN the reconciler ticks again and again THEN
    it is re-sent once (counted on the job), and again only after twice the wait."""
    job = _job(vault)
    ten_minutes_ago = dt.timedelta(minutes=10)  # the reconciler measures the wait in real time
    Job.objects.filter(pk=job.pk).update(start_time=clock.now() - ten_minutes_ago, real_start_time=timezone.now() - ten_minutes_ago)
    with django_capture_on_commit_callbacks() as callbacks:
        assert jobs.reconcile().resent == [job.pk]
    assert len(callbacks) == 1
    for _ in range(3):  # the next ticks
        with django_capture_on_commit_callbacks() as callbacks:
            assert jobs.reconcile().resent == []
        assert callbacks == []
    job.refresh_from_db()
    assert job.resends == 1 and job.sent_at is not None
    wait = jobs.UNCLAIMED_RESEND_AFTER_SECONDS
    Job.objects.filter(pk=job.pk).update(sent_at=timezone.now() - dt.timedelta(seconds=wait + 5))
    assert jobs.reconcile().resent == []  # the second re-send waits twice as long
    Job.objects.filter(pk=job.pk).update(sent_at=timezone.now() - dt.timedelta(seconds=2 * wait + 5))
    assert jobs.reconcile().resent == [job.pk]
    assert Job.objects.get(pk=job.pk).resends == 2


def test_a_job_the_broker_never_got_is_sent_at_the_next_tick(vault, django_capture_on_commit_callbacks):
    job = _job(vault, queue_error="OperationalError: Error 111 connecting to 127.0.0.1:6399. Connection refused.")
    with django_capture_on_commit_callbacks() as callbacks:
        assert jobs.reconcile().resent == [job.pk]  # no 120 s wait: it was never sent
    assert len(callbacks) == 1


def test_a_redelivered_message_takes_over_the_claim_of_a_dead_worker(vault):
    """GIVEN a job claimed by a worker process of this host that was killed (a pool child) WHEN its
    message comes back at once THEN the new delivery takes the job over (a new attempt) instead of
    doing nothing until the reconciler notices; a live holder elsewhere keeps it."""
    job = _claimed_by_a_dead_worker_of_this_host(vault)
    taken = jobs.claim(job.pk)
    assert taken is not None and taken.attempts == 2 and taken.worker == jobs.worker_name()
    # Another host's worker with a fresh heartbeat: the duplicate delivery does nothing.
    Job.objects.filter(pk=job.pk).update(worker="elsewhere:1", heartbeat_at=timezone.now())
    assert jobs.claim(job.pk) is None
    # ... until its heartbeat is stale.
    Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - dt.timedelta(seconds=jobs.HEARTBEAT_STALE_AFTER_SECONDS + 1))
    assert jobs.claim(job.pk).attempts == 3
    # The last attempt is used up: only the reconciler may end it now (with its cleanup).
    Job.objects.filter(pk=job.pk).update(worker="elsewhere:1", heartbeat_at=timezone.now() - dt.timedelta(minutes=5))
    assert jobs.claim(job.pk) is None


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


# --- Liveness is progress: stalls, cancels that reach a tool, the watchdog --------------------------


def test_a_job_whose_tool_makes_no_progress_fails_with_JobStalled_and_the_tool_is_killed(vault, handler, fake_clock):
    """GIVEN a handler blocked on a tool that writes nothing (like pg_dump waiting on a lock) WHEN no
    byte or item moves for the stall time THEN the tool's process group is killed and the job fails
    with JobStalled and a readable message; the heartbeat alone never kept it alive."""
    _, behaviour = handler
    seen = {}

    def work(job, progress):
        progress(current_item="Dumping sales.dump", bytes_done=10, force=True)
        with processes.running(["sleep", "600"], job=job) as proc:
            seen["pid"] = proc.pid
            assert processes.pids_for(job.pk) == [proc.pid]
            fake_clock.advance(jobs.stall_seconds("transfer") + 1)
            proc.wait(timeout=30)  # woken by the watchdog's kill, not by the tool
            progress.raise_interrupt()
        raise AssertionError("not reached")

    behaviour["do"] = work
    started = time.monotonic()
    job = jobs.run(_job(vault).pk)
    assert time.monotonic() - started < 10
    assert (job.status, job.error_code) == (JobStatus.FAILED, "JobStalled")
    assert job.error_message.startswith("No progress for 10 minutes while Dumping sales.dump")
    assert _gone(seen["pid"]) and processes.pids_for(job.pk) == []


def test_each_phase_has_its_own_stall_time(vault, fake_clock, settings):
    """Moving bytes or a new phase restart the count; 'finishing' (pg_restore building indexes after
    the last byte) may be quiet longer than 'transfer'; settings override either."""
    settings.STRONGROOM_JOB_STALL_SECONDS = {"transfer": 60}
    job = jobs.claim(_job(vault).pk)
    progress = jobs.Progress(job)
    dog = jobs.Watchdog(job, progress)
    progress(bytes_done=1, force=True)
    fake_clock.advance(59)
    dog.tick()
    progress(bytes_done=2)  # it moved: the count starts again
    fake_clock.advance(59)
    dog.tick()
    assert progress.interrupt is None
    progress(phase="finishing", current_item="pg_restore finishing db1")
    fake_clock.advance(3599)
    dog.tick()
    assert progress.interrupt is None
    fake_clock.advance(1)
    dog.tick()
    assert isinstance(progress.interrupt, jobs.JobError) and progress.interrupt.code == "JobStalled"
    assert "No progress for 1 hour while pg_restore finishing db1 (no byte or item moved; phase: finishing)" in progress.interrupt.message
    with pytest.raises(jobs.JobError):
        progress(bytes_done=3)  # the handler meets the stall at its next report


def test_a_handler_that_ignores_a_stall_has_its_job_ended_for_it(vault, fake_clock):
    """The last resort: a handler blocked where no tool can be killed still cannot keep its job
    InProgress; once it wakes, its writes are fenced off (JobLost)."""
    job = jobs.claim(_job(vault).pk)
    progress = jobs.Progress(job)
    dog = jobs.Watchdog(job, progress)
    fake_clock.advance(jobs.stall_seconds("transfer"))
    dog.tick()
    assert progress.interrupt is not None
    fake_clock.advance(jobs.STOP_GRACE_SECONDS)
    dog.tick()
    ended = Job.objects.get(pk=job.pk)
    assert (ended.status, ended.error_code) == (JobStatus.FAILED, "JobStalled")
    progress.interrupt = None  # as if the handler had not looked
    with pytest.raises(jobs.JobLost):
        progress(bytes_done=5, force=True)


@pytest.mark.django_db(transaction=True)
def test_cancel_reaches_a_running_tool_and_the_job_ends_cancelled_within_seconds(vault, handler):
    """GIVEN a handler blocked on a tool that would run for ten minutes WHEN the user cancels THEN the
    watchdog kills the tool's group, the job ends Cancelled within seconds and no process survives."""
    _, behaviour = handler
    seen = {}

    def work(job, progress):
        with processes.running(["sh", "-c", "sleep 600 & sleep 600"], job=job) as proc:
            seen["pid"] = proc.pid
            jobs.request_cancel(job)  # the user presses Cancel (committed: the watchdog sees it)
            seen["asked"] = time.monotonic()
            proc.wait(timeout=30)
            progress.raise_interrupt()
        raise AssertionError("not reached")

    behaviour["do"] = work
    job = jobs.run(_job(vault).pk)
    assert (job.status, job.error_code) == (JobStatus.CANCELLED, "UserCancelled")
    assert time.monotonic() - seen["asked"] < 20  # "within seconds": a 1 s tick plus 3 s of grace, with room for a loaded CI machine
    assert _gone(seen["pid"])
    # The whole group went, the tool's own child too (killed orphans may wait a moment for init to reap them).
    deadline = time.monotonic() + 5
    while _living_in_group(seen["pid"]):
        assert time.monotonic() < deadline, f"still running: {_living_in_group(seen['pid'])}"
        time.sleep(0.05)


@pytest.mark.django_db(transaction=True)
def test_the_watchdog_heartbeats_while_the_handler_is_silent(vault, handler, monkeypatch):
    """A silent phase (no progress report) keeps a fresh heartbeat, so the reconciler does not take the
    job for dead; the heartbeat proves the process lives, the stall time judges the work."""
    _, behaviour = handler
    monkeypatch.setattr(jobs, "HEARTBEAT_EVERY_SECONDS", 0.05)
    monkeypatch.setattr(jobs, "WATCH_EVERY_SECONDS", 0.05)

    def silent(job, progress):
        first = Job.objects.get(pk=job.pk).heartbeat_at
        deadline = time.monotonic() + 10
        while Job.objects.get(pk=job.pk).heartbeat_at == first:
            assert time.monotonic() < deadline, "no heartbeat was written"
            time.sleep(0.02)
        assert jobs.reconcile(stale_after=60).rerun == []

    behaviour["do"] = silent
    assert jobs.run(_job(vault).pk).status == JobStatus.COMPLETED


@pytest.mark.celery
@pytest.mark.django_db(transaction=True)
def test_a_killed_pool_childs_redelivered_message_reruns_the_job_at_once(vault, handler, worker):
    """GIVEN a job whose worker process died holding the claim (its heartbeat still looks fresh)
    WHEN its message comes back to a worker of the same host THEN that worker takes the job over and
    runs it, without waiting for the reconciler."""
    calls, _ = handler
    job = _claimed_by_a_dead_worker_of_this_host(vault)
    started = time.monotonic()
    assert jobs.send(job.pk)  # the redelivery
    deadline = started + 30
    while not Job.objects.filter(pk=job.pk, status=JobStatus.COMPLETED).exists():
        assert time.monotonic() < deadline, "the redelivered job did not run"
        time.sleep(0.05)
    assert time.monotonic() - started < 10
    job.refresh_from_db()
    assert job.attempts == 2 and calls == [job.pk]
