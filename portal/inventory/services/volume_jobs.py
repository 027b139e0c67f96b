"""Jobs on an Elastic SAN volume: "Write sample data" and "Compute checksum".

A page starts one (`start_volume_job`: the volume row says Queued, an Operation notifies the person who
started it) and a worker runs it (`run_volume_job`, through the task named `RUN_VOLUME_JOB_TASK`). The
lab seed runs the same jobs in its own process (`write_sample_data_now`, `compute_checksum_now`).
"""

from __future__ import annotations

import datetime as dt
import logging
import time

from django.core.exceptions import ValidationError
from django.urls import reverse

from portal.enqueue import after_commit
from portal.inventory import volumes
from portal.inventory.models import Volume
from portal.models import Operation
from portal.services import finish_operation, start_operation
from security import clock
from security.audit import guarded, record
from security.guards import GuardDenied, evaluate
from security.models import ActivityLogEntry
from security.operations import VOLUME_WRITE

logger = logging.getLogger(__name__)

RUN_VOLUME_JOB_TASK = "portal.inventory.run_volume_job"  # the worker's task (portal/inventory/tasks.py)
STALE_AFTER = dt.timedelta(minutes=10)
# "Write sample data" waits this long for a backup that is reading the volume (its point-in-time copy)
WRITE_WAIT_SECONDS = 30 * 60
WAITING_FOR_BACKUP = ("Waiting: a backup is reading this volume (its point-in-time copy). The write starts as soon "
                      "as the backup has read the image.")
JOB_ACTION = {
    Volume.Activity.WRITE_SAMPLE_DATA: VOLUME_WRITE,
    # Computing a checksum starts a job that reads every byte of the volume and records the result on
    # it: work, not a look, so read-only roles may not start it (the restore's identity, an Elastic SAN
    # Volume Importer, holds volumes/write).
    Volume.Activity.COMPUTE_CHECKSUM: VOLUME_WRITE,
}


def activity_stale(volume: Volume) -> bool:
    """A job whose worker has not reported for `STALE_AFTER` counts as gone."""
    beat = volume.activity_heartbeat_at or volume.activity_started_at
    return beat is None or clock.now() - beat > STALE_AFTER


def lock_idle_volume(volume: Volume, busy: str) -> Volume:
    """The volume's row, locked; a ValidationError saying ``busy`` (with {job} and {name} filled in)
    while a job that still reports runs on it."""
    locked = Volume.objects.select_for_update().get(pk=volume.pk)
    if locked.activity_running and not activity_stale(locked):
        raise ValidationError(busy.format(job=locked.get_activity_display(), name=locked.name))
    return locked


def start_volume_job(principal, volume: Volume, activity: str, *, enqueue: bool = True) -> Operation:
    """Queue "Write sample data" or "Compute checksum" for a worker; returns the Operation."""
    if activity not in JOB_ACTION:
        raise ValueError(activity)
    label = Volume.Activity(activity).label
    with guarded(principal, JOB_ACTION[activity], volume, details={"job": label}) as op:
        locked = lock_idle_volume(volume, "'{job}' is already running on this volume. Wait for it to finish.")
        if locked.activity_running and locked.activity_operation_id:
            stale_op = Operation.objects.filter(pk=locked.activity_operation_id, status=Operation.Status.IN_PROGRESS).first()
            if stale_op:
                finish_operation(stale_op, succeeded=False, message="No worker finished this job within 10 minutes.")
        now = clock.now()
        operation = start_operation(
            principal,
            f"{label} on volume '{locked.name}'",
            resource_id=locked.resource_id,
            link=reverse("portal:volume_detail", args=[locked.pk]),
        )
        Volume.objects.filter(pk=locked.pk).update(
            activity=activity,
            activity_status=Volume.ActivityStatus.QUEUED,
            activity_progress=0,
            activity_message="",
            activity_started_at=now,
            activity_heartbeat_at=now,
            activity_operation=operation,
        )
        op.details["operationId"] = str(operation.pk)
        if enqueue:
            # After commit: a worker that starts at once must find the Queued row and the Operation.
            after_commit(RUN_VOLUME_JOB_TASK, locked.pk, str(operation.pk))
    return operation


def run_volume_job(volume_id: int, operation_id: str) -> bool:
    """Do the queued job's work (on a worker). Idempotent: only the Queued job is claimed, once."""
    operation = _claim(volume_id, operation_id)
    if operation is None:
        return False
    volume = Volume.objects.select_related("volume_group__elastic_san__resource_group").get(pk=volume_id)
    job = _Job(volume, operation, operation_id)
    try:
        result, info = job.work()
    except Exception as exc:  # the job fails with the reason; the worker stays healthy
        job.fail(exc)
        return False
    job.succeed(result, info)
    return True


def _claim(volume_id: int, operation_id: str) -> Operation | None:
    """The job's Operation when this delivery claims the Queued job; None when there is nothing to run
    (claimed before, or the volume was deleted meanwhile: then its notification says so)."""
    claimed = Volume.objects.filter(
        pk=volume_id, activity_operation_id=operation_id, activity_status=Volume.ActivityStatus.QUEUED
    ).update(activity_status=Volume.ActivityStatus.IN_PROGRESS, activity_heartbeat_at=clock.now())
    operation = Operation.objects.filter(pk=operation_id).first()
    if not claimed:
        if operation and operation.status == Operation.Status.IN_PROGRESS and not Volume.objects.filter(pk=volume_id).exists():
            finish_operation(operation, succeeded=False, message="The volume was deleted before the job ran.")
        return None
    return operation


class _Job:
    """One claimed job on a volume: its work, its progress on the volume row, and how it ends."""

    def __init__(self, volume: Volume, operation: Operation, operation_id: str):
        self.volume = volume
        self.operation = operation
        self.operation_id = operation_id
        self.principal = operation.principal
        self.activity = volume.activity
        self.action = JOB_ACTION[self.activity]
        self.label = Volume.Activity(self.activity).label
        self.seed = volume.pk * 1_000_000 + volume.sample_writes + 1
        self._row = Volume.objects.filter(pk=volume.pk, activity_operation_id=operation_id)
        self._reported_at, self._reported_percent = 0.0, -1
        self._waited = False

    def work(self):
        """(result, image info): the bytes written, or the image's checksum. Refused when the principal
        lost the right since the job was queued."""
        decision = evaluate(self.principal, self.action, self.volume)
        if not decision.allowed:
            raise GuardDenied(decision)
        path = self.volume.image_path
        if self.activity == Volume.Activity.WRITE_SAMPLE_DATA:
            try:
                result = volumes.write_sample_extents(path, self.seed, self.progress, wait=WRITE_WAIT_SECONDS,
                                                      on_wait=self.waiting)
            except TimeoutError:
                raise ValidationError(
                    f"A backup was still reading the volume '{self.volume.name}' after {WRITE_WAIT_SECONDS // 60} minutes, "
                    "so nothing was written. Run “Write sample data” again once the backup has finished.") from None
        else:
            result = volumes.image_checksum(path, self.progress)
        return result, volumes.image_info(path)

    def progress(self, done: int, total: int) -> None:
        """The percentage on the volume's page (at most twice a second) and the job's heartbeat."""
        percent = int(done * 100 / total) if total else 100
        now = time.monotonic()
        if percent != self._reported_percent and (now - self._reported_at > 0.5 or percent >= 100):
            self._reported_at, self._reported_percent = now, percent
            fields = {"activity_progress": min(percent, 99), "activity_heartbeat_at": clock.now()}
            if self._waited:
                fields["activity_message"] = ""  # the backup has read the volume: writing now
            self._row.update(**fields)

    def waiting(self) -> None:
        """A backup holds the volume: say so on its page (and keep the job alive)."""
        self._waited = True
        self._row.update(activity_message=WAITING_FOR_BACKUP, activity_heartbeat_at=clock.now())

    def fail(self, exc: Exception) -> None:
        if isinstance(exc, GuardDenied):
            message = exc.decision.reason
        elif isinstance(exc, ValidationError):
            message = " ".join(exc.messages)
        else:
            message = f"{type(exc).__name__}: {exc}"
        logger.warning("Volume job %s on %s failed: %s", self.activity, self.volume.resource_id, message)
        self._row.update(
            activity_status=Volume.ActivityStatus.FAILED, activity_message=message, activity_heartbeat_at=clock.now()
        )
        finish_operation(self.operation, succeeded=False, message=message)
        record(self.principal, self.action, self.volume.resource_id, status=ActivityLogEntry.Status.FAILED,
               sub_status="JobFailed", message=message, details={"job": self.label})

    def succeed(self, result, info) -> None:
        volume, now = self.volume, clock.now()
        details = {"job": self.label, "operationId": self.operation_id}
        with guarded(self.principal, self.action, volume, details=details):
            fields = {
                "activity_status": Volume.ActivityStatus.SUCCEEDED,
                "activity_progress": 100,
                "activity_heartbeat_at": now,
                "allocated_bytes": info.allocated_bytes,
                "allocated_measured_at": now,
            }
            if self.activity == Volume.Activity.WRITE_SAMPLE_DATA:
                fields.update(sample_writes=volume.sample_writes + 1, sample_written_at=now,
                              checksum_stale=bool(volume.last_checksum))
                message = f"Wrote {result / 1024**2:.1f} MiB of sample data (seed {self.seed})."
                details["seed"], details["bytes"] = self.seed, result
            else:
                fields.update(last_checksum=result, checksum_at=now, checksum_stale=False)
                message = f"Checksum {result}"
                details["checksum"] = result
            fields["activity_message"] = message
            Volume.objects.filter(pk=volume.pk).update(**fields)
            finish_operation(self.operation, succeeded=True, message=message)


def write_sample_data_now(principal, volume: Volume) -> Volume:
    """Write sample data synchronously (the lab seed): the same job, run in this process."""
    operation = start_volume_job(principal, volume, Volume.Activity.WRITE_SAMPLE_DATA, enqueue=False)
    run_volume_job(volume.pk, str(operation.pk))
    return Volume.objects.get(pk=volume.pk)


def write_varied_data_now(principal, volume: Volume, *, total_bytes: int, seed: int) -> Volume:
    """Write ``total_bytes`` of varied sample data (incompressible, compressible, repeated, holes) in
    this process: the lab seed's large volume, big enough that a backup shows progress for a while."""
    details = {"job": Volume.Activity.WRITE_SAMPLE_DATA.label, "bytes": total_bytes, "seed": seed}
    with guarded(principal, VOLUME_WRITE, volume, details=details):
        locked = lock_idle_volume(volume, "'{job}' is running on volume '{name}'. Wait for it to finish.")
        written = volumes.write_varied_data(locked.image_path, seed, total_bytes)
        info = volumes.image_info(locked.image_path)
        now = clock.now()
        Volume.objects.filter(pk=locked.pk).update(
            sample_writes=locked.sample_writes + 1, sample_written_at=now, checksum_stale=bool(locked.last_checksum),
            allocated_bytes=info.allocated_bytes, allocated_measured_at=now,
        )
        details["written"] = written
    return Volume.objects.get(pk=volume.pk)


def compute_checksum_now(principal, volume: Volume) -> Volume:
    operation = start_volume_job(principal, volume, Volume.Activity.COMPUTE_CHECKSUM, enqueue=False)
    run_volume_job(volume.pk, str(operation.pk))
    return Volume.objects.get(pk=volume.pk)
