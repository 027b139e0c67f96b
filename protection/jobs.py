"""The job machinery every backup, restore and management run goes through.

A service creates the `Job` row (InProgress, unclaimed) and enqueues `protection.tasks.run_job` on
commit. The worker *claims* the row with a compare-and-set on ``claimed_at`` (a second delivery, or a
reconciler racing a live worker, becomes a no-op), runs the handler registered for the job's
operation, reports progress and a heartbeat through `Progress`, and ends the job in exactly one
terminal state. The reconciler finds jobs whose heartbeat stopped (a lost worker, a broker that never
redelivers) and re-runs them (they resume from the chunks already stored) or fails them.

Heartbeats and claims use real time (infrastructure), not the lab clock: a trainer moving the lab
clock must not make every running job look dead. Start and end times shown to people use the clock.
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass
from typing import Callable

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from protection.models import TERMINAL_JOB_STATUSES, Job, JobStatus
from security import clock

logger = logging.getLogger(__name__)

# Running jobs heartbeat every few seconds (progress, or `backups.keep_alive` during silent phases);
# with the reconciler every 15 s a job whose worker died is re-run within about 45 seconds.
HEARTBEAT_STALE_AFTER_SECONDS = 30
UNCLAIMED_RESEND_AFTER_SECONDS = 120
MAX_ATTEMPTS = 3
PROGRESS_WRITE_INTERVAL = 0.5  # seconds between progress writes (bounded rate)


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
_handlers: dict[str, Handler] = {}


def register_handler(operation: str, handler: Handler) -> None:
    """Register the function that runs jobs of ``operation`` (called when apps load)."""
    _handlers[operation] = handler


def handler_for(operation: str) -> Handler | None:
    return _handlers.get(operation)


def worker_name() -> str:
    return f"{socket.gethostname()}:{__import__('os').getpid()}"


def claim(job_id) -> Job | None:
    """Take the job for this worker, or None when someone else has it or it already ended."""
    now = timezone.now()
    taken = Job.objects.filter(pk=job_id, status=JobStatus.IN_PROGRESS, claimed_at__isnull=True).update(
        claimed_at=now, heartbeat_at=now, worker=worker_name(), attempts=F("attempts") + 1
    )
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

    def __call__(self, *, bytes_done=None, items_done=None, current_item=None, bytes_total=None,
                 items_total=None, force: bool = False) -> None:
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
        now = time.monotonic()
        if force or now - self._last_write >= PROGRESS_WRITE_INTERVAL:
            self._last_write = now
            self.write()

    def write(self) -> None:
        job = self.job
        # Fenced on our claim: after the reconciler handed the job to another worker, we stop.
        still_ours = owned(job).update(
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
        return Job.objects.filter(pk=self.job.pk, cancel_requested=True).exists()


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
        outcome = handler(job, progress) or {}
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


def enqueue(job: Job) -> None:
    """Send the job to a worker once the surrounding transaction commits."""
    from protection.tasks import run_job

    job_id = str(job.pk)
    transaction.on_commit(lambda: run_job.delay(job_id))


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


@dataclass(frozen=True)
class ReconcileReport:
    rerun: list
    failed: list
    resent: list


def reconcile(*, stale_after: int = HEARTBEAT_STALE_AFTER_SECONDS, resend_after: int = UNCLAIMED_RESEND_AFTER_SECONDS) -> ReconcileReport:
    """Re-run or fail jobs whose worker vanished; re-send jobs whose message was lost."""
    now = timezone.now()
    rerun, failed, resent = [], [], []
    stale = Job.objects.filter(
        status__in=[JobStatus.IN_PROGRESS, JobStatus.CANCELLING], claimed_at__isnull=False,
        heartbeat_at__lt=now - timezone.timedelta(seconds=stale_after),
    )
    for job in stale:
        if job.status == JobStatus.CANCELLING:
            if finish(job, JobStatus.CANCELLED, error_code="UserCancelled", error_message="The job was cancelled."):
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
                                  "Nothing it wrote became a recovery point. Run it again."):
            failed.append(job.pk)
    unclaimed = Job.objects.filter(status=JobStatus.IN_PROGRESS, claimed_at__isnull=True,
                                   start_time__lt=clock.now() - timezone.timedelta(seconds=resend_after))
    for job in unclaimed:
        enqueue(job)
        resent.append(job.pk)
    return ReconcileReport(rerun, failed, resent)
