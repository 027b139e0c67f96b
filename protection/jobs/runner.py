"""The job machinery every backup, restore and management run goes through.

A service creates the `Job` row (InProgress, unclaimed) and enqueues the task ``protection.tasks.run_job``
on commit, by its name (so nothing here imports the task module back). The worker *claims* the row with a compare-and-set on ``claimed_at`` (a second delivery, or a
reconciler racing a live worker, becomes a no-op), runs the handler registered for the job's
operation, reports progress and a heartbeat through `Progress`, and ends the job in exactly one
terminal state. The reconciler finds jobs whose heartbeat stopped (a lost worker, a broker that never
redelivers) and re-runs them (they resume from the chunks already stored) or fails them, running the
handler's cleanup when it gives up.

Liveness is progress, not a pulse: while a handler runs, a `Watchdog` thread writes the heartbeat
(the process lives), polls for a cancel request, and watches the job's byte and item counts. When
they have not moved for the stall time of the current phase (``STRONGROOM_JOB_STALL_SECONDS``) the
job fails with ``JobStalled``; a cancel or a stall also stops the external tools the job runs
(`protection.processes`), so a handler blocked on a ``pg_dump`` that waits on a lock wakes up.

Heartbeats and claims use real time (infrastructure), not the lab clock: a trainer moving the lab
clock must not make every running job look dead. Start and end times shown to people use the clock.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from django.conf import settings
from django.db import transaction
from django.dispatch import Signal
from django.db.models import F, Q
from django.utils import timezone

from portal.celery import app as celery_app
from protection import processes
from protection.models import TERMINAL_JOB_STATUSES, Job, JobStatus
from security import clock

logger = logging.getLogger(__name__)

# A running job's watchdog heartbeats every 5 s; a heartbeat older than 20 s means its worker is gone.
# With the reconciler every 10 s (settings.CELERY_BEAT_SCHEDULE) a lost job is handed on at most about
# 35 s after its worker died, and at once when its redelivered message lands on the same host.
HEARTBEAT_EVERY_SECONDS = 5
HEARTBEAT_STALE_AFTER_SECONDS = 20
UNCLAIMED_RESEND_AFTER_SECONDS = 120  # a sent message not picked up by then is resent (then after 2x, 4x, ...)
MAX_RESEND_BACKOFF = 5  # at most 120 s * 2**5 between resends
MAX_ATTEMPTS = 3
PROGRESS_WRITE_INTERVAL = 0.5  # seconds between progress writes (bounded rate)
WATCH_EVERY_SECONDS = 1.0  # how often the watchdog looks for a cancel or a stall
STOP_GRACE_SECONDS = 60  # a handler that ignores a cancel or a stall this long has its job ended for it
# Seconds without a byte or an item moving, per phase, before a job fails with JobStalled. Override
# any of them with settings.STRONGROOM_JOB_STALL_SECONDS.
DEFAULT_STALL_SECONDS = {
    "transfer": 600,  # data moving between a datasource and a store (the default phase)
    "finishing": 3600,  # after the last byte: pg_restore building indexes and committing
    "reclaim": 7200,  # garbage collection reclaiming space (it may wait for running backups first)
}
PHASE_LABELS = {"transfer": "moving data", "finishing": "finishing", "reclaim": "reclaiming space"}
STALLED = "JobStalled"

# Time source of the watchdog (monotonic seconds); tests replace it to move time on without sleeping.
_monotonic = time.monotonic


def stall_seconds(phase: str) -> float:
    limits = {**DEFAULT_STALL_SECONDS, **(getattr(settings, "STRONGROOM_JOB_STALL_SECONDS", None) or {})}
    return float(limits.get(phase, limits["transfer"]))


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds % 3600 == 0 and seconds >= 3600:
        n, unit = seconds // 3600, "hour"
    elif seconds % 60 == 0 and seconds >= 60:
        n, unit = seconds // 60, "minute"
    else:
        n, unit = seconds, "second"
    return f"{n} {unit}{'s' if n != 1 else ''}"


class JobError(Exception):
    """A failure with an Azure-style error code and a message for the job page."""

    def __init__(self, code: str, message: str):
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


class JobCancelled(Exception):
    """Raised inside a handler when the user asked to cancel; the handler cleans up and re-raises."""


class JobLost(JobCancelled):
    """This worker no longer holds the job (the reconciler handed it to another worker).

    The handler cleans up like a cancel, but the job is not ended here: its new owner ends it.
    """


Handler = Callable[[Job, "Progress"], "dict | None"]
Cleanup = Callable[[Job], None]
_handlers: dict[str, Handler] = {}
_cleanups: dict[str, Cleanup] = {}


# Sent once a job reaches its terminal state (listeners: the labs re-check a trainee's work).
job_finished = Signal()


def register_handler(operation: str, handler: Handler, *, cleanup: Cleanup | None = None) -> None:
    """Register the function that runs jobs of ``operation`` (called when apps load).

    ``cleanup(job)`` removes what a lost attempt may have left (a hidden temporary folder, a new
    database, snapshots never turned into a recovery point). The handler runs it itself before a
    re-run; the reconciler runs it when it gives a job up, since no re-run will."""
    _handlers[operation] = handler
    if cleanup is not None:
        _cleanups[operation] = cleanup
    else:
        _cleanups.pop(operation, None)


def handler_for(operation: str) -> Handler | None:
    return _handlers.get(operation)


def cleanup_for(operation: str) -> Cleanup | None:
    return _cleanups.get(operation)


def host_name() -> str:
    """This host's name in `Job.worker`: ``STRONGROOM_HOST_NAME`` (set per host when several share a
    machine name, e.g. containers) or the machine's host name."""
    return os.environ.get("STRONGROOM_HOST_NAME") or socket.gethostname()


def worker_name() -> str:
    return f"{host_name()}:{os.getpid()}"


def _holder_is_gone(worker: str, heartbeat_at, now, stale_after: float) -> bool:
    """Whether the worker holding a claim is dead: its heartbeat is stale, or it ran on this host
    and its process no longer exists (a killed pool child whose message came back at once)."""
    if heartbeat_at is None or heartbeat_at < now - timezone.timedelta(seconds=stale_after):
        return True
    host, _, pid = worker.rpartition(":")
    if host != host_name() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


def claim(job_id, *, stale_after: float = HEARTBEAT_STALE_AFTER_SECONDS) -> Job | None:
    """Take the job for this worker, or None when someone else has it or it already ended.

    A claim whose holder is gone (see `_holder_is_gone`) is taken over with a compare-and-set on the
    holder we saw, counting as a new attempt; the reconciler gives a job up after MAX_ATTEMPTS."""
    now = timezone.now()
    me = worker_name()
    taken = Job.objects.filter(pk=job_id, status=JobStatus.IN_PROGRESS, claimed_at__isnull=True).update(
        claimed_at=now, heartbeat_at=now, worker=me, attempts=F("attempts") + 1
    )
    if not taken:
        held = (Job.objects.filter(pk=job_id, status=JobStatus.IN_PROGRESS, claimed_at__isnull=False,
                                   attempts__lt=MAX_ATTEMPTS)
                .values("claimed_at", "worker", "heartbeat_at").first())
        if held and held["worker"] != me and _holder_is_gone(held["worker"], held["heartbeat_at"], now, stale_after):
            taken = Job.objects.filter(pk=job_id, status=JobStatus.IN_PROGRESS, claimed_at=held["claimed_at"],
                                       worker=held["worker"]).update(
                claimed_at=now, heartbeat_at=now, worker=me, attempts=F("attempts") + 1)
            if taken:
                logger.warning("Job %s: took over the claim of %s, which is gone.", job_id, held["worker"])
    return Job.objects.select_related("vault", "instance").get(pk=job_id) if taken == 1 else None


@dataclass
class Progress:
    """Progress and heartbeat for one running job; also the place a cancel request is noticed.

    Call it as often as you like (the engine's callbacks call it per chunk): it writes to the
    database at most every PROGRESS_WRITE_INTERVAL seconds, and raises JobCancelled once the user
    asked to cancel.
    """

    job: Job
    _last_write: float = 0.0
    phase: str = "transfer"  # picks the stall time (DEFAULT_STALL_SECONDS)
    moved_at: float = field(default_factory=lambda: _monotonic())  # when bytes or items last moved
    # Set by the watchdog (a JobCancelled, or a JobError for a stall); raised at the next call.
    interrupt: BaseException | None = None
    _seen: tuple = (None, None)
    _wrote_bytes: bool = False

    def __call__(self, *, bytes_done=None, items_done=None, current_item=None, bytes_total=None,
                 items_total=None, phase: str | None = None, force: bool = False) -> None:
        if self.interrupt is not None:
            raise self.interrupt
        job = self.job
        if bytes_done is not None:
            job.bytes_done = bytes_done
        if items_done is not None:
            job.items_done = items_done
        if current_item is not None:
            job.current_item = str(current_item)[:1000]
        if bytes_total is not None:
            job.bytes_total = bytes_total
        if items_total is not None:
            job.items_total = items_total
        counts = (job.bytes_done, job.items_done)
        if counts != self._seen or (phase is not None and phase != self.phase):
            self._seen = counts
            self.moved_at = _monotonic()
        if phase is not None:
            self.phase = phase
        now = time.monotonic()
        # The first bytes are written at once (the bar starts moving, even for a short job); after
        # that at most every PROGRESS_WRITE_INTERVAL.
        first_bytes = job.bytes_done and not self._wrote_bytes
        if force or first_bytes or now - self._last_write >= PROGRESS_WRITE_INTERVAL:
            self._last_write = now
            self._wrote_bytes = self._wrote_bytes or bool(job.bytes_done)
            self.write()

    def write(self) -> None:
        job = self.job
        # Fenced on our claim: after the reconciler handed the job to another worker, or someone ended
        # it (the watchdog's last resort), we stop.
        still_ours = owned(job).filter(status__in=ACTIVE).update(
            bytes_done=job.bytes_done, items_done=job.items_done, current_item=job.current_item,
            bytes_total=job.bytes_total, items_total=job.items_total, heartbeat_at=timezone.now(),
        )
        if not still_ours:
            raise JobLost()
        if Job.objects.filter(pk=job.pk, cancel_requested=True).exists():
            raise JobCancelled()

    def heartbeat(self) -> None:
        self(force=True)

    def cancelled(self) -> bool:
        if isinstance(self.interrupt, JobCancelled):
            return True
        return Job.objects.filter(pk=self.job.pk, cancel_requested=True).exists()

    def raise_interrupt(self) -> None:
        """Raise what the watchdog stopped the job for, if it did (a handler calls this when a tool
        it ran died: the cancel or the stall is the story, not the tool's exit status)."""
        if self.interrupt is not None:
            raise self.interrupt


ACTIVE = [JobStatus.IN_PROGRESS, JobStatus.CANCELLING]


class Watchdog:
    """A running job's side thread: heartbeat, cancel and stall (see the module docstring).

    It never runs the handler's code: it only marks ``progress.interrupt`` and stops the job's tools,
    and the handler unwinds (removing what it wrote). A handler that has not unwound
    STOP_GRACE_SECONDS later (blocked where no tool can be killed) has its job ended here, fenced
    like a lost worker, so the job never stays InProgress."""

    def __init__(self, job: Job, progress: Progress, *, every: float | None = None):
        self.job, self.progress, self.every = job, progress, WATCH_EVERY_SECONDS if every is None else every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"watchdog-{job.pk}", daemon=True)
        self._last_beat = _monotonic()
        self._interrupted_at: float | None = None
        self.ended_job = False

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        from django.db import connection

        try:
            while not self._stop.wait(self.every) and not self.ended_job:
                try:
                    self.tick()
                except Exception:  # a database outage: keep watching, the next tick may get through
                    logger.warning("Watchdog of job %s could not check the job", self.job.pk, exc_info=True)
        finally:
            connection.close()

    def tick(self) -> None:
        job, progress, now = self.job, self.progress, _monotonic()
        if now - self._last_beat >= HEARTBEAT_EVERY_SECONDS:
            owned(job).filter(status__in=ACTIVE).update(heartbeat_at=timezone.now())
            self._last_beat = now
        if progress.interrupt is None:
            if Job.objects.filter(pk=job.pk, cancel_requested=True).exists():
                self._interrupt(JobCancelled(), now)
            else:
                limit = stall_seconds(progress.phase)
                if now - progress.moved_at >= limit:
                    self._interrupt(JobError(STALLED, self.stall_message(limit)), now)
        elif now - self._interrupted_at >= STOP_GRACE_SECONDS:
            self._end_for_the_handler()
        if progress.interrupt is not None:
            processes.stop_all_for(job.pk)

    def _interrupt(self, reason: BaseException, now: float) -> None:
        logger.warning("Job %s: stopping it (%s).", self.job.pk, reason if str(reason) else "cancelled")
        self.progress.interrupt = reason
        self._interrupted_at = now

    def stall_message(self, limit: float) -> str:
        job, phase = self.job, self.progress.phase
        doing = job.current_item or PHASE_LABELS.get(phase, phase)
        return (f"No progress for {_duration(limit)} while {doing} (no byte or item moved; phase: {phase}). The job "
                "was stopped and nothing it wrote was kept. Look for what holds it up (a lock held on the datasource, "
                "a stuck disk or network), then run it again. Stall times are set by STRONGROOM_JOB_STALL_SECONDS.")

    def _end_for_the_handler(self) -> None:
        reason = self.progress.interrupt
        fenced = Job(pk=self.job.pk, claimed_at=self.job.claimed_at, worker=self.job.worker)
        if isinstance(reason, JobCancelled):
            ended = finish(fenced, JobStatus.CANCELLED, error_code="UserCancelled",
                           error_message="The job was cancelled by the user.")
        else:
            ended = finish(fenced, JobStatus.FAILED, error_code=reason.code, error_message=reason.message)
        logger.error("Job %s did not stop %s s after it was asked to; ended it (%s).", self.job.pk,
                     STOP_GRACE_SECONDS, "done" if ended else "it had ended already")
        self.ended_job = True


def owned(job: Job):
    """The job's row while this worker still holds its claim (empty once it was handed on)."""
    return Job.objects.filter(pk=job.pk, claimed_at=job.claimed_at, worker=job.worker)


def finish(job: Job, status: str, *, error_code: str = "", error_message: str = "", **fields) -> bool:
    """Move a running job to its terminal state once; False when it had already ended."""
    assert status in TERMINAL_JOB_STATUSES
    updates = {"status": status, "end_time": clock.now(), "error_code": error_code,
               "error_message": error_message[:4000], "heartbeat_at": timezone.now(), **fields}
    if status == JobStatus.COMPLETED:
        updates.setdefault("current_item", "")
    rows = owned(job) if job.claimed_at is not None else Job.objects.filter(pk=job.pk, claimed_at__isnull=True)
    ended = rows.filter(status__in=[JobStatus.IN_PROGRESS, JobStatus.CANCELLING]).update(**updates)
    for key, value in updates.items():
        setattr(job, key, value)
    if ended == 1:
        job_finished.send(sender=Job, job=job)
    return ended == 1


def run(job_id) -> Job | None:
    """Claim and run one job with its registered handler. Safe to call twice for the same job."""
    job = claim(job_id)
    if job is None:
        logger.info("Job %s is taken or finished; nothing to do.", job_id)
        return None
    handler = handler_for(job.operation)
    progress = Progress(job)
    try:
        if handler is None:
            raise JobError("UserErrorOperationNotSupported", f"No worker can run {job.operation} jobs.")
        if job.cancel_requested:
            raise JobCancelled()
        try:
            with Watchdog(job, progress):
                outcome = handler(job, progress) or {}
        except JobLost:
            raise
        except Exception as exc:
            # Whatever the handler raised once the watchdog stopped it (a tool killed mid-stream, say),
            # the job ends for the watchdog's reason: the cancel, or the stall.
            if progress.interrupt is not None and exc is not progress.interrupt:
                raise progress.interrupt from exc
            raise
    except JobLost:
        logger.warning("Job %s was handed to another worker; this attempt stops.", job_id)
        return None
    except JobCancelled:
        finish(job, JobStatus.CANCELLED, error_code="UserCancelled", error_message="The job was cancelled by the user.")
    except JobError as exc:
        finish(job, JobStatus.FAILED, error_code=exc.code, error_message=exc.message)
    except Exception as exc:  # a bug or an environment failure: fail the job, never leave it running
        logger.exception("Job %s failed", job_id)
        finish(job, JobStatus.FAILED, error_code="InternalError", error_message=f"{type(exc).__name__}: {exc}")
    else:
        status = JobStatus.COMPLETED_WITH_WARNINGS if outcome.pop("warnings", None) else JobStatus.COMPLETED
        finish(job, status, **outcome)
    job.refresh_from_db()
    return job


RUN_JOB_TASK = "protection.tasks.run_job"  # the Celery task that runs one job (`run`)
QUEUE_UNREACHABLE = "Queued: the task queue is not reachable; the job starts when it is back."
# Publishing gives up quickly when the broker is down: the page answers, the reconciler sends it later.
SEND_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}


def enqueue(job: Job) -> None:
    """Send the job to a worker once the surrounding transaction commits (see `send`)."""
    job_id = str(job.pk)
    transaction.on_commit(lambda: send(job_id))


def send(job_id) -> bool:
    """Hand the job's message to the broker. When the broker cannot be reached the job stays queued
    with ``queue_error`` set (pages say so) and the reconciler sends it once the broker is back;
    nothing is raised, so the page that started the job answers normally."""
    try:
        routing = {"queue": queue} if (queue := job_queue(job_id)) else {}
        celery_app.send_task(RUN_JOB_TASK, args=(str(job_id),), ignore_result=True, retry=True,
                             retry_policy=SEND_RETRY_POLICY, **routing)
    except Exception as exc:  # kombu's OperationalError, a refused connection, a timeout, ...
        logger.warning("Job %s stays queued: the task queue is not reachable (%s).", job_id, exc)
        Job.objects.filter(pk=job_id, claimed_at__isnull=True).update(
            queue_error=f"{type(exc).__name__}: {exc}"[:500])
        return False
    Job.objects.filter(pk=job_id).update(sent_at=timezone.now(), queue_error="")
    return True


def job_queue(job_id) -> str:
    """The queue a job goes to when several hosts run workers (README "Several hosts"): a job whose vault
    keeps its store on this server's disk (Local) goes to ``STRONGROOM_LOCAL_STORE_QUEUE``, the queue of
    the host holding ``STRONGROOM_DATA_ROOT``; a job of a vault whose store is in an S3 bucket goes to the
    default queue, which every host's worker consumes. "" (the default queue) when the setting is unset."""
    local_queue = getattr(settings, "STRONGROOM_LOCAL_STORE_QUEUE", "")
    if not local_queue:
        return ""
    from vaults.storage import s3_location

    job = Job.objects.select_related("vault").filter(pk=job_id).first()
    if job is None or s3_location(job.vault) is None:
        return local_queue
    return ""


def request_cancel(job: Job) -> bool:
    """Ask a running job to stop; the worker notices at its next progress write."""
    changed = Job.objects.filter(pk=job.pk, status=JobStatus.IN_PROGRESS).update(
        cancel_requested=True, status=JobStatus.CANCELLING
    )
    if changed and job.claimed_at is None:
        # Not started yet: nothing to clean up, it ends now.
        Job.objects.filter(pk=job.pk, claimed_at__isnull=True).update(
            status=JobStatus.CANCELLED, end_time=clock.now(), error_code="UserCancelled",
            error_message="The job was cancelled before it started.",
        )
    return bool(changed)


def run_cleanup(job: Job) -> bool:
    """Run the handler's cleanup for a job that ended without its handler (the reconciler gave it
    up); the outcome is noted in the job's details. False when the cleanup failed."""
    cleanup = cleanup_for(job.operation)
    if cleanup is None:
        return True
    note = {"at": timezone.now().isoformat()}
    try:
        cleanup(job)
        note["result"] = "Removed what the lost attempts left behind."
        ok = True
    except Exception as exc:
        logger.exception("Cleanup of job %s failed", job.pk)
        note["result"] = f"Could not remove what the lost attempts left: {type(exc).__name__}: {exc}"[:1000]
        ok = False
    extended = dict(Job.objects.filter(pk=job.pk).values_list("extended_info", flat=True).first() or {})
    extended["cleanup"] = note
    Job.objects.filter(pk=job.pk).update(extended_info=extended)
    return ok


@dataclass(frozen=True)
class ReconcileReport:
    rerun: list
    failed: list
    resent: list


def reconcile(*, stale_after: int = HEARTBEAT_STALE_AFTER_SECONDS, resend_after: int = UNCLAIMED_RESEND_AFTER_SECONDS) -> ReconcileReport:
    """Re-run or fail jobs whose worker vanished (running the handler's cleanup when it gives one up);
    send jobs whose message never reached the broker, and re-send, once per growing wait, those whose
    message seems lost (each re-send is counted on the job: ``resends``)."""
    now = timezone.now()
    rerun, failed, resent = [], [], []
    stale = Job.objects.filter(
        status__in=ACTIVE, claimed_at__isnull=False,
        heartbeat_at__lt=now - timezone.timedelta(seconds=stale_after),
    )
    for job in stale:
        if job.status == JobStatus.CANCELLING:
            if finish(job, JobStatus.CANCELLED, error_code="UserCancelled", error_message="The job was cancelled."):
                run_cleanup(job)
                failed.append(job.pk)
            continue
        if job.attempts < MAX_ATTEMPTS:
            # Compare-and-set on the heartbeat we saw: a worker that is alive after all wins.
            released = Job.objects.filter(pk=job.pk, heartbeat_at=job.heartbeat_at, status=JobStatus.IN_PROGRESS).update(
                claimed_at=None, worker="", heartbeat_at=None
            )
            if released:
                rerun.append(job.pk)
                enqueue(job)
        elif finish(job, JobStatus.FAILED, error_code="JobHeartbeatLost",
                    error_message=f"The worker running this job stopped answering {job.attempts} times; the job was stopped. "
                                  "Nothing it wrote became a recovery point, and what it left was removed. Run it again."):
            run_cleanup(job)
            failed.append(job.pk)
    waited = timezone.timedelta(seconds=resend_after)
    unclaimed = Job.objects.filter(status=JobStatus.IN_PROGRESS, claimed_at__isnull=True).filter(
        Q(queue_error__gt="") | Q(sent_at__lt=now - waited)
        | Q(sent_at__isnull=True, real_start_time__lt=now - waited))
    for job in unclaimed:
        # Never sent (the broker was down): send now. Sent but not picked up: re-send once per wait,
        # the wait doubling each time, so a long queue behind a busy worker is not flooded.
        if not job.queue_error and job.sent_at and job.sent_at > now - waited * 2 ** min(job.resends, MAX_RESEND_BACKOFF):
            continue
        # Compare-and-set on the count we read: two reconcilers never both re-send.
        if Job.objects.filter(pk=job.pk, claimed_at__isnull=True, resends=job.resends).update(
                resends=F("resends") + 1, sent_at=now):
            job_id = str(job.pk)
            transaction.on_commit(lambda job_id=job_id: send(job_id))
            resent.append(job.pk)
    return ReconcileReport(rerun, failed, resent)
