"""Cancel: the one change a person makes to a job (``backupJobs/cancel/action``)."""

from __future__ import annotations

from django.core.exceptions import ValidationError

from protection.jobs import runner
from protection.models import Job, JobOperation, JobStatus
from security.audit import guarded
from security.operations import JOB_CANCEL

# Jobs that move data stop at their next progress write; management jobs run to their end.
CANCELLABLE_OPERATIONS = (JobOperation.BACKUP, JobOperation.RESTORE, JobOperation.VERIFY, JobOperation.REPLICATION,
                          JobOperation.TIERING, JobOperation.REHYDRATE)  # archive tier: both stop before changing the point


def cancel_job(principal, job: Job) -> Job:
    """Ask a running job to stop (Cancelling); it ends Cancelled with nothing half-written."""
    with guarded(principal, JOB_CANCEL, job, details={"jobId": str(job.pk), "operation": job.operation}):
        if job.is_finished or job.status == JobStatus.CANCELLING:
            raise ValidationError(f"This job is already {job.get_status_display().lower()}.")
        if job.operation not in CANCELLABLE_OPERATIONS:
            raise ValidationError(f"{job.get_operation_display()} jobs cannot be cancelled.")
        runner.request_cancel(job)
    job.refresh_from_db()
    return job
