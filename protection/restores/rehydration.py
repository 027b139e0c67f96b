"""Rehydration: restoring an archived recovery point (reference §3.6, ``AzureBackupRestoreWithRehydrationRequest``).

The point stays in the archive tier; a temporary copy lands in the standard store for the chosen duration.

1. ``start_rehydrated_restore`` (Restore, with a **Rehydration priority** Standard or High and a **Rehydration
   duration** of 10–30 days): the restore's rules and roles are checked as for any restore, then a
   **Rehydrate** job is created (category Restore, as Azure carries ``rehydrationPriority`` on restore jobs).
2. The Rehydrate job really copies the point's snapshots from the archive store into the standard store
   (verified, without the archive's retention lock: it is a temporary copy) and sets when the copy becomes
   restorable: the priority's delay on Strongroom's clock (Standard 15 hours, High 1 hour). Nothing sleeps.
3. ``settle`` (run by the retention schedule, every 10 minutes; before the lab clock moves back its settler
   records the completions due) marks a rehydration COMPLETED once its delay has passed and then starts the **Restore** job the person asked for
   (as them, through the same guards); it removes a rehydrated copy at the end of its duration (status
   DELETED: the point stays archived), and starts the policy's tiering moves.
"""

from __future__ import annotations

import datetime as dt
import logging
import re

from django.core.exceptions import ValidationError
from django.db import transaction

from protection.jobs import runner as jobs
from protection.jobs.authorize import authorize_run
from protection.models import Job, JobCategory, JobOperation, JobStatus, RecoveryPoint
from protection.restores import services as restores
from protection.restores import targets, validation
from protection.tiering import services as tiering
from security import clock
from security import operations as ops
from security.audit import caller_label, guarded
from security.guards import GuardDenied

logger = logging.getLogger(__name__)

PRIORITY_DELAY = {"Standard": dt.timedelta(hours=15), "High": dt.timedelta(hours=1)}
MIN_DAYS, MAX_DAYS = 10, 30
CREATE_IN_PROGRESS, COMPLETED, DELETED, FAILED = "CREATE_IN_PROGRESS", "COMPLETED", "DELETED", "FAILED"
_DAYS = re.compile(r"^P(\d+)D$")


def parse_duration(value) -> int:
    """Days of a rehydration duration: 10–30, as a number or ISO 8601 ``P<n>D``."""
    text = str(value or "").strip().upper()
    match = _DAYS.match(text)
    days = int(match.group(1)) if match else (int(text) if text.isdigit() else None)
    if days is None or not MIN_DAYS <= days <= MAX_DAYS:
        raise ValidationError({"rehydration_duration": ValidationError(
            f"The rehydration duration is {MIN_DAYS} to {MAX_DAYS} days (ISO 8601 such as P15D); '{value}' is not.",
            code="UserErrorInvalidRehydrationDuration")})
    return days


def check_priority(priority: str) -> str:
    if priority not in PRIORITY_DELAY:
        raise ValidationError({"rehydration_priority": ValidationError(
            f"The rehydration priority is Standard or High, not '{priority}'.", code="UserErrorInvalidRehydrationPriority")})
    return priority


def _rehydrate_job(point, principal, target, priority: str, days: int) -> Job:
    instance = point.instance
    return Job(
        vault=instance.vault, instance=instance, instance_name=instance.name, datasource_type=instance.datasource_type,
        datasource_name=instance.datasource_name, operation=JobOperation.REHYDRATE, category=JobCategory.RESTORE,
        status=JobStatus.IN_PROGRESS, is_user_triggered=True, initiated_by=principal,
        initiated_by_name=caller_label(principal), recovery_point=point, start_time=clock.now(),
        parameters={"recoveryPointId": str(point.pk), "rehydrationPriority": priority,
                    "rehydrationRetentionDuration": f"P{days}D", "target": targets.to_json(target),
                    "restorePending": True, "sourceDataStoreName": "ArchiveStore",
                    "destinationDataStoreName": "VaultStore"},
        extended_info={"recoveryPointTime": point.recovery_point_time.isoformat(), "rehydrationPriority": priority},
    )


def start_rehydrated_restore(principal, point: RecoveryPoint, target, *, priority: str, duration) -> Job:
    """Restore an archived point with rehydration: the Rehydrate job (or, when the point is rehydrated
    already, the Restore job at once)."""
    if point.is_archived and point.is_rehydrated():
        return restores.start_restore(principal, point, target)
    days = parse_duration(duration)
    check_priority(priority)
    instance = point.instance
    change = {"recoveryPointId": str(point.pk), "rehydrationPriority": priority}
    details = {"instance": instance.name, "recoveryPointId": str(point.pk), "rehydrationPriority": priority,
               "rehydrationRetentionDuration": f"P{days}D", "target": targets.to_json(target)}
    with guarded(principal, ops.RESTORE, instance, change=change, details=details) as op:
        row = RecoveryPoint.objects.select_for_update().select_related("instance__vault").get(pk=point.pk)
        if not row.is_archived:
            raise ValidationError({"recovery_point": ValidationError(
                "UserErrorRehydrationNotNeeded: This recovery point is in Vault-standard: restore it without rehydration.",
                code="UserErrorRehydrationNotNeeded")})
        if row.rehydration_status == CREATE_IN_PROGRESS:
            raise ValidationError({"recovery_point": ValidationError(
                "UserErrorRehydrationInProgress: This recovery point is being rehydrated already; restore it once the "
                "rehydration completes.", code="UserErrorRehydrationInProgress")})
        validation.resolve(row, target, principal=principal)
        ready = restores.restore_readiness(principal, row, target)
        if ready is not None and not ready.ok:
            raise restores.RestoreNotReady(ready)
        row.rehydration_status, row.rehydration_priority = CREATE_IN_PROGRESS, priority
        row.rehydration_ready_at = row.rehydration_expiry_time = None
        row.save(update_fields=["rehydration_status", "rehydration_priority", "rehydration_ready_at",
                                "rehydration_expiry_time"])
        job = _rehydrate_job(row, principal, target, priority, days)
        job.save()
        op.details["jobId"] = str(job.pk)
        jobs.enqueue(job)
    return job


def run_rehydrate_job(job: Job, progress: jobs.Progress) -> dict:
    """The REHYDRATE job handler: the archive copy into the standard store; restorable after the delay."""
    from vaults.storage import open_archive_store, open_store

    point = tiering._point_for(job)
    params = job.parameters or {}
    priority = params.get("rehydrationPriority", "Standard")
    days = parse_duration(params.get("rehydrationRetentionDuration", "P15D"))
    vault = point.instance.vault
    progress(current_item="Rehydrating from the archive tier", force=True)
    try:
        authorize_run(job, job.initiated_by, ops.RESTORE, point.instance, denied_code="UserErrorRestoreNotAuthorized",
                      details={"instance": point.instance.name, "recoveryPointId": str(point.pk)},
                      change={"recoveryPointId": str(point.pk), "rehydrationPriority": priority})
        with open_archive_store(vault) as archive, open_store(vault) as standard:
            reports = tiering.copy_point(point, archive, standard, progress, label="rehydrating to Vault-standard",
                                         retention=False)
    except BaseException:
        _failed(point)
        raise
    ready = clock.now() + PRIORITY_DELAY.get(priority, PRIORITY_DELAY["Standard"])
    expiry = ready + dt.timedelta(days=days)
    with transaction.atomic():
        updated = RecoveryPoint.objects.filter(pk=point.pk).update(
            rehydration_status=CREATE_IN_PROGRESS, rehydration_ready_at=ready, rehydration_expiry_time=expiry)
        if not updated:
            raise jobs.JobError("UserErrorRecoveryPointNotFound", "The recovery point was deleted while it was rehydrated.")
    info = {**(job.extended_info or {}), "copies": reports, "bytesCopied": sum(r["bytes"] for r in reports),
            "rehydrationReadyAt": ready.isoformat(), "rehydrationExpiryTime": expiry.isoformat(),
            "restoreStartsAt": ready.isoformat(),
            "summary": f"Rehydrated with {priority} priority: restorable from {ready:%Y-%m-%d %H:%M} UTC; the Restore "
                       f"job starts then. The rehydrated copy is kept until {expiry:%Y-%m-%d %H:%M} UTC."}
    return {"extended_info": info, "bytes_done": sum(r["bytes"] for r in reports)}


def _failed(point) -> None:
    """A failed or cancelled rehydration: the copies it made in the standard store go; the point stays archived."""
    from vaults.storage import open_store
    from vaults.store import NotFound

    try:
        with open_store(point.instance.vault) as standard:
            for manifest in point.manifests or []:
                try:
                    standard.delete_snapshot(manifest["id"])
                except NotFound:
                    continue
    except Exception:  # the store itself: the next settle finds no copy to expire either way
        logger.exception("removing a failed rehydration's copies of %s", point.pk)
    RecoveryPoint.objects.filter(pk=point.pk).update(rehydration_status=FAILED, rehydration_ready_at=None,
                                                     rehydration_expiry_time=None)


# =================================================================================================
# settle: rehydrations that completed, pending restores, rehydrated copies that ended
# =================================================================================================


def complete_rehydrations(now) -> int:
    """Mark COMPLETED every rehydration whose priority's delay has passed at ``now`` (also the lab clock's settler)."""
    return RecoveryPoint.objects.filter(rehydration_status=CREATE_IN_PROGRESS, rehydration_ready_at__lte=now).update(
        rehydration_status=COMPLETED)


def _start_pending_restores(now) -> list:
    started = []
    pending = (Job.objects.filter(operation=JobOperation.REHYDRATE, status=JobStatus.COMPLETED,
                                  parameters__restorePending=True)
               .select_related("initiated_by", "recovery_point__instance__vault"))
    for rehydrate in pending:
        point = rehydrate.recovery_point
        if point is not None and point.rehydration_status == CREATE_IN_PROGRESS:
            continue  # not restorable yet (its priority's delay has not passed)
        params = dict(rehydrate.parameters)
        params["restorePending"] = False
        info = dict(rehydrate.extended_info or {})
        try:
            if point is None:
                raise ValidationError("The recovery point no longer exists.")
            # One transaction: the Restore job is enqueued on commit, so its worker never reads (and then
            # writes back) its extended info before the link to the Rehydrate job is in it.
            with transaction.atomic():
                restore = restores.start_restore(rehydrate.initiated_by, point, targets.from_json(params["target"]))
                Job.objects.filter(pk=restore.pk).update(
                    parameters={**restore.parameters, "rehydrateJobId": str(rehydrate.pk)},
                    extended_info={**(restore.extended_info or {}), "rehydrateJobId": str(rehydrate.pk),
                                   "rehydrationPriority": params.get("rehydrationPriority")})
            info["restoreJobId"] = str(restore.pk)
            started.append(restore.pk)
        except (GuardDenied, ValidationError) as exc:
            text = "; ".join(getattr(exc, "messages", None) or [str(exc)])
            info["restoreError"] = (f"The restore after rehydration could not start: {text} The rehydrated copy stays "
                                    "until its duration ends: restore from it in the Restore wizard.")
        Job.objects.filter(pk=rehydrate.pk).update(parameters=params, extended_info=info)
    return started


def expire_rehydrated_copy(principal, point: RecoveryPoint) -> bool:
    """Remove an archived point's rehydrated copy from the standard store (the point stays archived)."""
    from protection.deletion.point_data import reclaim
    from vaults.storage import open_store
    from vaults.store import NotFound

    details = {"instance": point.instance.name, "recoveryPointId": str(point.pk), "rehydratedCopy": "expired"}
    with guarded(principal, ops.RECOVERY_POINT_MOVE, point, change={"rehydratedCopy": "delete"}, details=details):
        row = RecoveryPoint.objects.select_for_update().filter(pk=point.pk).first()
        if row is None or row.rehydration_status not in (COMPLETED, CREATE_IN_PROGRESS):
            return False
        vault = point.instance.vault
        with open_store(vault) as standard:
            for manifest in row.manifests or []:
                try:
                    standard.delete_snapshot(manifest["id"])
                except NotFound:
                    continue
        row.rehydration_status = DELETED
        row.save(update_fields=["rehydration_status"])
    reclaim([lambda: open_store(vault)])
    return True


def settle(now=None) -> dict:
    """Run by the retention schedule (see the module docstring)."""
    now = now or clock.now()
    completed = complete_rehydrations(now)
    restores_started = _start_pending_restores(now)
    ended = 0
    due = (RecoveryPoint.objects.filter(rehydration_status__in=[COMPLETED, CREATE_IN_PROGRESS],
                                        rehydration_expiry_time__lte=now).select_related("instance__vault"))
    if due:
        system = tiering.system_principal()
        for point in due:
            try:
                ended += int(expire_rehydrated_copy(system, point))
            except GuardDenied:
                continue
    moved = tiering.start_policy_tiering(now)
    return {"rehydrationsCompleted": completed, "restoresStarted": len(restores_started),
            "rehydratedCopiesRemoved": ended, "tieringJobs": len(moved)}
