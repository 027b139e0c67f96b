"""Backups: on-demand and scheduled, the job that runs them, recovery points, stop and resume.

- `backup_now` (the portal's **Backup now**): the person picks one of the policy's retention rules;
  the reference's per-day limits apply (`UserErrorBackupRequestThrottled`).
- `dispatch_due_backups` (Celery beat, every minute): one indexed query for the instances that are
  due, then per instance the *latest* due slot only, inserted as a Job with its ``scheduled_time``
  (unique per instance) after a compare-and-set that moves ``next_backup_at`` on. Two dispatchers at
  once, or a redelivered beat message, therefore never create a slot twice.
- `run_backup_job` (the BACKUP job handler): checks the vault identity's rights, runs the datasource
  driver through the engine, and — only when everything succeeded — creates the recovery point (time,
  tier, retention tag by the policy's priorities, expiry, sizes) in the same transaction that ends the
  job. A failure or a cancel deletes what the run had committed.
- `stop_backup` (Retain forever → ProtectionStopped; Retain as per policy → BackupSchedulesSuspended)
  and `resume_backup`.
- `cancel_job`: Cancelling → Cancelled at the next progress write; nothing half-written stays.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from protection import readiness
from protection.backups import replication
from protection.datasources import driver_for
from protection.datasources.base import MISSING_PERMISSIONS, MISSING_PERMISSIONS_MESSAGE, RunContext
from protection.jobs import runner as jobs
from protection.models import (
    BackupInstance,
    Job,
    JobCategory,
    JobOperation,
    JobStatus,
    ProtectionState,
    RecoveryPoint,
)
from protection.policy_rules import PolicyError
from protection.scheduling import schedule_next
from security import clock
from security.audit import caller_label, guarded, record_denial
from security.guards import evaluate
from security.operations import (
    BACKUP_ACTION, JOB_CANCEL, RESUME_BACKUPS, RESUME_PROTECTION, STOP_PROTECTION, SUSPEND_BACKUPS,
)

logger = logging.getLogger(__name__)

STORAGE_FULL = "UserErrorBackupStorageFull"
THROTTLED = "UserErrorBackupRequestThrottled"
THROTTLED_MESSAGE = "The number of backups on a given backup instance in a day reached the maximum limit."
RETAIN_FOREVER = "RetainForever"
RETAIN_AS_PER_POLICY = "RetainAsPerPolicy"
STOP_REASONS = ["Decommissioned", "Moved to another backup solution", "Not needed any more", "Others"]

# Backups run only while protection is configured (not stopped, suspended or soft-deleted).
_PROTECTED_FOR_BACKUP = (ProtectionState.CONFIGURED,)


# =================================================================================================
# On-demand: Backup now
# =================================================================================================


def start_of_day(moment: dt.datetime) -> dt.datetime:
    moment = moment.astimezone(dt.timezone.utc)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def on_demand_today(instance, now: dt.datetime) -> int:
    """On-demand backups of the instance today (UTC), except those cancelled before they began."""
    return (
        Job.objects.filter(instance=instance, operation=JobOperation.BACKUP, is_user_triggered=True,
                           start_time__gte=start_of_day(now))
        .exclude(status=JobStatus.CANCELLED, claimed_at__isnull=True)
        .count()
    )


def backup_rule_choices(instance) -> list[tuple[str, str]]:
    """The retention rules a person may pick for Backup now: (tag, "Weekly — 12 weeks")."""
    policy = instance.policy.parsed
    return [(r.tag, f"{r.tag} (retained {r.duration.label()})") for r in policy.retention_rules]


def _job_for(instance, *, user_triggered: bool, principal, scheduled_time=None, rule_name="", tag="") -> Job:
    return Job(
        vault=instance.vault, instance=instance, instance_name=instance.name,
        datasource_type=instance.datasource_type, datasource_name=instance.datasource_name,
        operation=JobOperation.BACKUP, category=JobCategory.BACKUP, status=JobStatus.IN_PROGRESS,
        is_user_triggered=user_triggered, initiated_by=principal if user_triggered else None,
        initiated_by_name=caller_label(principal) if user_triggered else "Schedule",
        scheduled_time=scheduled_time, rule_name=rule_name, retention_tag=tag,
        parameters={"policyName": instance.policy.name, "retentionTagOverride": tag} if user_triggered
        else {"policyName": instance.policy.name},
        start_time=clock.now(),
    )


IN_PROGRESS = "UserErrorBackupOperationInProgress"


def active_backup(instance) -> Job | None:
    """The instance's running (or queued, or cancelling) backup job, if any: at most one exists."""
    return (Job.objects.filter(instance=instance, operation=JobOperation.BACKUP,
                               status__in=[JobStatus.IN_PROGRESS, JobStatus.CANCELLING])
            .order_by("start_time").first())


def _in_progress_message(running: Job | None) -> str:
    if running is not None and running.claimed_at is None and running.queue_error:
        return (f"{IN_PROGRESS}: A backup of this instance is already in progress: it is queued, and the task queue is "
                "not reachable; it starts when the queue is back (see Jobs). There is no need to start another.")
    return (f"{IN_PROGRESS}: A backup of this instance is already in progress. "
            "Wait for it to finish (see Jobs), then try again.")


def backup_now(principal, instance: BackupInstance, *, retention_rule: str) -> Job:
    """Start an on-demand backup kept by ``retention_rule`` (one of the policy's retention tags)."""
    details = {"instance": instance.name, "retentionTag": retention_rule}
    with guarded(principal, BACKUP_ACTION, instance, details=details) as op:
        row = BackupInstance.objects.select_for_update().select_related("policy", "vault").get(pk=instance.pk)
        if row.protection_state not in _PROTECTED_FOR_BACKUP:
            raise ValidationError(
                f"Backup now needs protection to be configured; '{row.name}' is "
                f"{row.get_protection_state_display().lower()}. Resume backup first."
            )
        try:
            policy = row.policy.parsed
            rule = policy.rule(retention_rule)
        except PolicyError:
            raise ValidationError({"retention_rule": f"Choose one of the policy's retention rules: "
                                                     f"{', '.join(t for t, _ in backup_rule_choices(row))}."}) from None
        limit = row.datasource.on_demand_per_day
        now = clock.now()
        if limit is not None and on_demand_today(row, now) >= limit:
            raise ValidationError(
                f"{THROTTLED}: {THROTTLED_MESSAGE} {row.datasource.label} allows {limit} on-demand backups per "
                f"backup instance per day, and '{row.name}' has had {limit} today. Try again after midnight (UTC).",
                code=THROTTLED,
            )
        running = active_backup(row)
        if running is not None:
            raise ValidationError(_in_progress_message(running), code=IN_PROGRESS)
        job = _job_for(row, user_triggered=True, principal=principal, rule_name=policy.backup_rule_name, tag=rule.tag)
        try:
            with transaction.atomic():  # one active backup per instance: the constraint decides a race
                job.save()
        except IntegrityError:
            raise ValidationError(_in_progress_message(active_backup(row)), code=IN_PROGRESS) from None
        op.details["jobId"] = str(job.pk)
        jobs.enqueue(job)
    # The message was handed to the broker when the transaction committed (or not: queue_error).
    job.refresh_from_db(fields=["sent_at", "queue_error"])
    return job


# =================================================================================================
# Scheduled: the dispatcher
# =================================================================================================


@dataclass
class DispatchReport:
    enqueued: list = field(default_factory=list)  # job ids
    advanced: int = 0  # due instances whose schedule moved on without a slot to run
    lost: int = 0  # another dispatcher got there first
    refused: int = 0  # a guard refused the scheduled backup
    busy: list = field(default_factory=list)  # job ids of slots not run: a backup of the instance was running
    errors: list = field(default_factory=list)


def due_instances(now: dt.datetime, limit: int):
    """The one indexed query (instance_due_idx: protection_state, next_backup_at)."""
    return (
        BackupInstance.objects.filter(protection_state=ProtectionState.CONFIGURED, next_backup_at__lte=now)
        .select_related("policy", "vault")
        .order_by("next_backup_at")[:limit]
    )


def dispatch_due_backups(*, now: dt.datetime | None = None, limit: int = 1000) -> DispatchReport:
    """Enqueue the latest due slot of every instance that is due (idempotent; see the module doc)."""
    from protection.system_access import ensure_system_access

    now = now or clock.now()
    report = DispatchReport()
    due = list(due_instances(now, limit))
    if not due:
        return report
    system = ensure_system_access()
    parsed: dict[int, object] = {}
    for instance in due:
        try:
            policy = parsed.get(instance.policy_id) or instance.policy.parsed
            parsed[instance.policy_id] = policy
            _dispatch_one(instance, policy, now, system, report)
        except PolicyError as exc:
            report.errors.append(f"{instance.resource_id}: {exc}")
            logger.error("Cannot schedule %s: %s", instance.resource_id, exc)
    return report


def _dispatch_one(instance, policy, now, system, report: DispatchReport) -> None:
    slot = policy.latest_due(instance.last_scheduled_slot, now)
    next_at = policy.next_run_after(now)
    with transaction.atomic():
        # Compare-and-set on the value we read: a second dispatcher that read the same row blocks on
        # the row lock, then finds next_backup_at changed and updates nothing.
        updates = {"next_backup_at": next_at}
        if slot is not None:
            updates["last_scheduled_slot"] = slot
        won = BackupInstance.objects.filter(
            pk=instance.pk, protection_state=ProtectionState.CONFIGURED, next_backup_at=instance.next_backup_at
        ).update(**updates)
        if not won:
            report.lost += 1
            return
        if slot is None:
            report.advanced += 1
            return
        decision = evaluate(system, BACKUP_ACTION, instance, {"scheduled_time": slot.isoformat()})
        if not decision.allowed:
            record_denial(system, decision, {"instance": instance.name, "scheduledTime": slot.isoformat()})
            report.refused += 1
            return
        job = _job_for(instance, user_triggered=False, principal=system, scheduled_time=slot,
                       rule_name=policy.backup_rule_name)
        running = active_backup(instance)
        if running is None:
            try:
                with transaction.atomic():  # a savepoint: the unique keys are the last line of defence
                    job.save()
            except IntegrityError:
                running = active_backup(instance)
                if running is None or Job.objects.filter(instance=instance, scheduled_time=slot).exists():
                    report.lost += 1
                    return
            else:
                jobs.enqueue(job)
                report.enqueued.append(job.pk)
                return
        _record_busy_slot(job, running, report)


def _record_busy_slot(job: Job, running: Job, report: DispatchReport) -> None:
    """One backup per instance at a time: the slot is not run, and its job says why (visible in Jobs)."""
    who = running.initiated_by_name or ("Schedule" if not running.is_user_triggered else "someone")
    kind = "on-demand" if running.is_user_triggered else "scheduled"
    job.status = JobStatus.FAILED
    job.end_time = clock.now()
    job.error_code = IN_PROGRESS
    job.error_message = (f"Another backup of '{job.instance_name}' was running (the {kind} backup started by {who} at "
                         f"{running.start_time:%Y-%m-%d %H:%M} UTC, job {running.pk}): one backup per instance runs at "
                         "a time, so this scheduled backup did not start. The next one runs at its scheduled time.")
    job.extended_info = {"runningJobId": str(running.pk)}
    try:
        with transaction.atomic():
            job.save()
    except IntegrityError:  # another dispatcher recorded the slot already
        report.lost += 1
        return
    report.busy.append(job.pk)


# =================================================================================================
# The job: run a backup
# =================================================================================================


def identity_problems(instance) -> str:
    """'' when the vault identity may back this datasource up now, else what is missing.

    The same question the configure-protection readiness asks (`protection.readiness`), asked again
    when the job runs: a role revoked in IAM since, or the identity turned off, fails the backup."""
    identity = instance.vault.identity
    if identity is None or not identity.enabled:
        return (f"The vault '{instance.vault.name}' has its system-assigned managed identity turned off: turn it on "
                "in the vault's Identity blade, then run the backup again.")
    missing = readiness.missing_needs(identity, readiness.Datasource(
        instance.datasource_type, instance.datasource_resource_id, instance.datasource_name,
        instance.datasource_set_resource_id, instance.snapshot_resource_group_id))
    if not missing:
        return ""
    return (f"The vault's managed identity '{identity.display_name}' needs {readiness.describe(missing)}. Assign the "
            "missing roles (Backup readiness: Assign missing roles, or Access control (IAM)), then run the backup again.")


def _earlier_scheduled_points(instance, moment):
    return list(
        RecoveryPoint.objects.filter(instance=instance, is_user_triggered=False,
                                     recovery_point_time__gte=moment - dt.timedelta(days=370),
                                     recovery_point_time__lt=moment)
        .values_list("recovery_point_time", flat=True)
    )


def choose_rule(instance, job, moment):
    """The retention rule of the point a job makes: the person's choice, or the tag priorities."""
    policy = instance.policy.parsed
    if job.is_user_triggered and job.retention_tag:
        try:
            return policy.rule(job.retention_tag)
        except PolicyError:
            pass  # the policy changed since: fall back to its priorities
    return policy.tag_for(moment, _earlier_scheduled_points(instance, moment))


def _retention_mode(vault):
    from vaults.models import ImmutabilityState

    if vault.immutability_state == ImmutabilityState.LOCKED:
        return "compliance"
    return "governance"


@dataclass
class Leftovers:
    """What `remove_attempt_leftovers` did: snapshots removed, and those the store still retains."""

    removed: int = 0
    deferred: list = field(default_factory=list)  # [{"snapshotId", "retainUntil", "mode"}]
    openers: list = field(default_factory=list)  # the stores looked at (for garbage collection)


def remove_attempt_leftovers(job: Job, instance=None, driver=None) -> Leftovers:
    """Delete engine snapshots an attempt of ``job`` committed but never turned into a recovery point.

    A worker can die between the engine writing a snapshot's manifest and the recovery point's row
    being committed. Such a snapshot carries the tag ``job:<id>``; it is removed before the job runs
    again (or, for a failed job, by the next retention run). Attempts never give their snapshots a
    retain-until (that happens when the recovery point is committed), but a worker that died in that
    very moment can leave a retained one: it is deferred (recorded on the job, shown on its page, and
    deleted by the first retention run after its retain-until), never an error."""
    from vaults.store import NotFound, RetentionError

    result = Leftovers()
    instance = instance or job.instance
    if instance is None:
        return result
    driver = driver or driver_for(instance.datasource_type)
    kept = {m["id"] for manifests in RecoveryPoint.objects.filter(instance=instance).values_list("manifests", flat=True)
            for m in manifests}
    for opener in driver.store_openers(instance):
        result.openers.append(opener)
        with opener() as store:
            for snap in store.list_snapshots():
                if f"job:{job.pk}" not in snap.tags or snap.id in kept:
                    continue
                try:
                    store.delete_snapshot(snap.id)
                    result.removed += 1
                except NotFound:
                    continue
                except RetentionError as exc:
                    result.deferred.append({"snapshotId": snap.id, "mode": exc.mode,
                                            "retainUntil": exc.until.isoformat() if exc.until else None})
    if result.deferred:
        info = dict(Job.objects.filter(pk=job.pk).values_list("extended_info", flat=True).first() or {})
        info["leftoversDeferred"] = result.deferred
        Job.objects.filter(pk=job.pk).update(extended_info=info)
        job.extended_info = info
    return result


def retain_point_snapshots(run: RunContext, until, mode: str) -> None:
    """Give the committed snapshots of a recovery point their retain-until (immutable vaults), as the
    point's row is committed: inside its transaction, so a failure here leaves no point; the manifest
    is the last object retained, so a snapshot left behind by a failure stays deletable."""
    for open_store, snapshot_id in run.committed:
        with open_store() as store:
            store.set_snapshot_retention(snapshot_id, until, mode)


BACKUP_FAILURE_ALERT = "Backup Failure"


def run_backup_job(job: Job, progress: jobs.Progress) -> dict:
    """The BACKUP job handler (registered with `protection.jobs.runner`). A failed backup raises the
    **Backup Failure** alert (reference §6.1; a cancel does not)."""
    try:
        return _run_backup_job(job, progress)
    except jobs.JobCancelled:  # includes JobLost: another worker owns the job now
        raise
    except jobs.JobError as exc:
        if exc.code != "JobAlreadyEnded":
            _raise_backup_failure(job, exc.code, exc.message)
            if exc.code not in FAILED_BEFORE_WRITING:
                _reclaim_after_failure(job)
        raise
    except Exception as exc:
        if isinstance(progress.interrupt, jobs.JobCancelled):  # a tool stopped by a cancel: no alert
            raise
        _raise_backup_failure(job, "InternalError", f"{type(exc).__name__}: {exc}")
        _reclaim_after_failure(job)
        raise


def _raise_backup_failure(job: Job, code: str, message: str) -> None:
    from security import services as security_services
    from security.models import Alert

    try:
        with transaction.atomic():
            security_services.raise_alert(
                name=BACKUP_FAILURE_ALERT, category=Alert.Category.JOBS, severity=Alert.Severity.SEV1,
                resource_id=job.instance.resource_id if job.instance_id and job.instance else job.vault.resource_id,
                description=(f"The {'on-demand' if job.is_user_triggered else 'scheduled'} backup of '{job.instance_name}' "
                             f"in the Backup vault '{job.vault.name}' failed: {code}: {message}"),
                details={"jobId": str(job.pk), "errorCode": code, "vault": job.vault.name,
                         "instance": job.instance_name},
            )
    except Exception:  # the job's own failure matters more than its alert
        logger.exception("Could not raise the Backup Failure alert of job %s", job.pk)


# failures raised before the driver wrote anything: nothing to clean up after them
FAILED_BEFORE_WRITING = {"UserErrorBackupInstanceNotFound", "UserErrorBackupInstanceNotProtected",
                         "UserErrorBackupNotAuthorized", MISSING_PERMISSIONS}


def _reclaim_after_failure(job: Job) -> None:
    """A failed backup is followed by a Retention job for its vault, which removes what the attempt
    left (snapshots, packs another crash left) and garbage-collects its stores."""
    from protection.backups import retention

    try:
        retention.start_retention_run(job.vault, failed_job=job)
    except Exception:  # the backup's own failure matters more
        logger.exception("Could not start the clean-up after the failed backup job %s", job.pk)


def storage_full_message(instance, driver, exc) -> str:
    if driver.datastore == RecoveryPoint.Datastore.OPERATIONAL:
        group = (instance.snapshot_resource_group_id or "").rstrip("/").rsplit("/", 1)[-1]
        where = f"The operational store of the snapshot resource group '{group}'"
    else:
        where = f"The storage of the Backup vault '{instance.vault.name}'"
    return (f"{where} is full ({exc.location}). Nothing of this backup was kept, and what it had written was "
            "removed again. Free space there (delete recovery points you no longer need, or give the storage "
            "more room), then run the backup again.")


def _run_backup_job(job: Job, progress: jobs.Progress) -> dict:
    from vaults.store import Cancelled, LockError, StorageFull

    instance = (BackupInstance.objects.select_related("vault__identity", "vault__region", "policy")
                .filter(pk=job.instance_id).first())
    if instance is None:
        raise jobs.JobError("UserErrorBackupInstanceNotFound", "The backup instance no longer exists.")
    if instance.protection_state not in _PROTECTED_FOR_BACKUP:
        raise jobs.JobError("UserErrorBackupInstanceNotProtected",
                            f"'{instance.name}' is {instance.get_protection_state_display().lower()}: nothing was backed up.")
    # Authorized again when it runs, as the person who asked (or the system, for a scheduled one): a role
    # removed or a guard that now refuses since the job was queued stops it before any byte is read.
    actor = job.initiated_by if job.is_user_triggered and job.initiated_by_id else None
    if actor is None:
        from protection.system_access import ensure_system_access

        actor = ensure_system_access()
    decision = evaluate(actor, BACKUP_ACTION, instance, {"job_id": str(job.pk), "scheduled_time":
                                                         job.scheduled_time.isoformat() if job.scheduled_time else None})
    if not decision.allowed:
        record_denial(actor, decision, {"instance": instance.name, "jobId": str(job.pk)})
        raise jobs.JobError("UserErrorBackupNotAuthorized", f"{decision.reason} {decision.remedy}".strip())
    driver = driver_for(instance.datasource_type)
    if job.attempts > 1:  # an earlier attempt's worker died: remove whatever it committed
        leftovers = remove_attempt_leftovers(job, instance, driver)
        if leftovers.deferred:
            progress(current_item=f"{len(leftovers.deferred)} snapshot(s) of an earlier attempt are still retained; "
                                  "they are deleted once their retention ends", force=True)
    problem = identity_problems(instance)
    if problem:
        raise jobs.JobError(MISSING_PERMISSIONS, f"{MISSING_PERMISSIONS_MESSAGE} {problem}")

    rp_time = clock.now()
    rule = choose_rule(instance, job, rp_time)
    expiry = rule.duration.add_to(rp_time)
    vault = instance.vault
    immutable = vault.immutability_enabled and driver.datastore == RecoveryPoint.Datastore.VAULT
    run = RunContext(job, progress, point_retain_until=expiry if immutable else None,
                     retention_mode=_retention_mode(vault))
    progress(current_item=f"Backing up {instance.datasource_name}", force=True)
    try:
        outcome = driver.backup(instance, run)
        run.check_cancel()  # a cancel that arrived after the last chunk still wins: nothing is kept
        with transaction.atomic():
            point = RecoveryPoint.objects.create(
                instance=instance, recovery_point_time=rp_time, datastore=driver.datastore,
                policy_name=instance.policy.name, rule_name=instance.policy.parsed.backup_rule_name,
                retention_tag=rule.tag, expiry_time=expiry, state=RecoveryPoint.State.COMPLETED,
                is_user_triggered=job.is_user_triggered, manifest_id=outcome.manifests[0]["id"] if outcome.manifests else "",
                manifests=outcome.manifests, logical_bytes=outcome.logical_bytes, stored_bytes=outcome.stored_bytes,
                transferred_bytes=outcome.transferred_bytes, item_count=outcome.item_count,
                # Geo-redundant vaults get their secondary copy from the Replication job below.
                copies=[{"region": vault.region_id, "role": "primary",
                         "store": "operational" if driver.datastore == RecoveryPoint.Datastore.OPERATIONAL else "vault"}],
                verify_details={"backup": outcome.details} if outcome.details else {},
            )
            # Once this transaction commits the snapshots belong to the point: a later on-commit
            # callback that raises (an enqueue) must never make the failure handler delete them.
            transaction.on_commit(run.committed.clear)
            driver.finalize(instance, outcome, run, rp_time)
            if outcome.snapshot_resource_id:
                point.snapshot_resource_id = outcome.snapshot_resource_id
                point.save(update_fields=["snapshot_resource_id"])
            extended = {
                "retentionTag": rule.tag, "dataTransferredInBytes": outcome.transferred_bytes,
                "storedBytes": outcome.stored_bytes, "logicalBytes": outcome.logical_bytes,
                "recoveryPointId": str(point.pk), "recoveryPointTime": rp_time.isoformat(),
                "expiryTime": expiry.isoformat(), "items": outcome.manifests, "warnings": outcome.warnings,
            }
            if replication.wants_replica(vault, point):  # geo-redundant: the secondary copy follows
                extended["replicationJobId"] = str(replication.start_replication(job, point).pk)
            status = JobStatus.COMPLETED_WITH_WARNINGS if outcome.warnings else JobStatus.COMPLETED
            # The point and the job's end commit together: a job that someone else already ended
            # (the reconciler, after a lost heartbeat) must not leave a second point behind.
            if job.extended_info and job.extended_info.get("leftoversDeferred"):
                extended["leftoversDeferred"] = job.extended_info["leftoversDeferred"]
            if not jobs.finish(job, status, recovery_point=point, extended_info=extended, retention_tag=rule.tag,
                               bytes_done=max(job.bytes_done, run.bytes_base), items_done=max(job.items_done, run.items_base)):
                raise jobs.JobError("JobAlreadyEnded", "The job had already ended elsewhere; this run's data was discarded.")
            if run.point_retain_until is not None:  # last: the point exists once this transaction commits
                retain_point_snapshots(run, run.point_retain_until, run.retention_mode)
    except (jobs.JobCancelled, Cancelled):
        run.discard_committed()
        raise jobs.JobCancelled() from None
    except ValidationError as exc:
        run.discard_committed()
        raise jobs.JobError("UserErrorBackupFailed", " ".join(exc.messages)) from None
    except StorageFull as exc:
        run.discard_committed()
        raise jobs.JobError(STORAGE_FULL, storage_full_message(instance, driver, exc)) from None
    except LockError as exc:
        run.discard_committed()
        raise jobs.JobError("UserErrorStoreBusy", f"The vault's store stayed locked by maintenance (garbage "
                            f"collection) for too long: {exc}. Run the backup again later.") from None
    except BaseException:
        run.discard_committed()
        raise
    return {"warnings": outcome.warnings or None, "recovery_point": point, "extended_info": extended}


def cleanup_backup_job(job: Job) -> None:
    """The reconciler gave the job up: remove the snapshots its lost attempts committed (a retained one is
    deferred and recorded), then a clean-up run garbage-collects the stores (packs, stale locks)."""
    result = remove_attempt_leftovers(job)
    info = dict(Job.objects.filter(pk=job.pk).values_list("extended_info", flat=True).first() or {})
    info["leftoversRemoved"] = info.get("leftoversRemoved", 0) + result.removed
    Job.objects.filter(pk=job.pk).update(extended_info=info)
    _reclaim_after_failure(job)


# =================================================================================================
# Stop backup, resume backup
# =================================================================================================


def stop_backup(principal, instance: BackupInstance, *, retain: str, reason: str = "", comments: str = "") -> BackupInstance:
    """Stop backup, keeping the data: Retain forever (ProtectionStopped: no point ever expires) or
    Retain as per policy (BackupSchedulesSuspended: retention goes on; the latest point is kept forever)."""
    if retain not in (RETAIN_FOREVER, RETAIN_AS_PER_POLICY):
        raise ValidationError({"retain": "Choose Retain forever or Retain as per policy."})
    operation = STOP_PROTECTION if retain == RETAIN_FOREVER else SUSPEND_BACKUPS
    details = {"instance": instance.name, "retain": retain, "reason": reason, "comments": comments[:500]}
    with guarded(principal, operation, instance, change={"retain": retain}, details=details):
        row = BackupInstance.objects.select_for_update().get(pk=instance.pk)
        allowed = [ProtectionState.CONFIGURED, ProtectionState.PROTECTION_ERROR]
        if retain == RETAIN_FOREVER:
            allowed.append(ProtectionState.BACKUPS_SUSPENDED)
        if row.protection_state not in allowed:
            raise ValidationError(f"'{row.name}' is {row.get_protection_state_display().lower()}: "
                                  "there is no backup to stop.")
        if reason and reason not in STOP_REASONS:
            raise ValidationError({"reason": f"Choose a reason: {', '.join(STOP_REASONS)}."})
        points = RecoveryPoint.objects.filter(instance=row)
        if retain == RETAIN_FOREVER:
            points.update(expiry_time=None)
            row.protection_state = ProtectionState.STOPPED
        else:
            latest = points.order_by("-recovery_point_time").values_list("pk", flat=True).first()
            if latest:
                points.filter(pk=latest).update(expiry_time=None)
            row.protection_state = ProtectionState.BACKUPS_SUSPENDED
        row.next_backup_at = None
        row.save(update_fields=["protection_state", "next_backup_at", "updated_at"])
        # Scheduled backups not yet picked up by a worker will not run now.
        for job in Job.objects.filter(instance=row, operation=JobOperation.BACKUP, status=JobStatus.IN_PROGRESS,
                                      claimed_at__isnull=True, is_user_triggered=False):
            jobs.request_cancel(job)
    instance.protection_state, instance.next_backup_at = row.protection_state, None
    return instance


def resume_backup(principal, instance: BackupInstance) -> BackupInstance:
    """Resume backup of a stopped or suspended instance: the schedule restarts from now (no backlog)
    and points kept forever by the stop get their policy expiry again."""
    operation = RESUME_PROTECTION if instance.protection_state == ProtectionState.STOPPED else RESUME_BACKUPS
    with guarded(principal, operation, instance, details={"instance": instance.name}):
        row = BackupInstance.objects.select_for_update().select_related("policy").get(pk=instance.pk)
        if row.protection_state not in (ProtectionState.STOPPED, ProtectionState.BACKUPS_SUSPENDED):
            raise ValidationError(f"'{row.name}' is {row.get_protection_state_display().lower()}: only a stopped "
                                  "or suspended backup can be resumed.")
        policy = row.policy.parsed
        for point in RecoveryPoint.objects.filter(instance=row, expiry_time__isnull=True):
            try:
                rule = policy.rule(point.retention_tag)
            except PolicyError:
                rule = policy.default_rule()
            point.expiry_time = rule.duration.add_to(point.recovery_point_time)
            point.save(update_fields=["expiry_time"])
        row.protection_state = ProtectionState.CONFIGURED
        schedule_next(row)
        row.save(update_fields=["protection_state", "next_backup_at", "last_scheduled_slot", "updated_at"])
    instance.protection_state = row.protection_state
    instance.next_backup_at, instance.last_scheduled_slot = row.next_backup_at, row.last_scheduled_slot
    return instance


# =================================================================================================
# Jobs: cancel
# =================================================================================================


def cancel_job(principal, job: Job) -> Job:
    """Ask a running job to stop (Cancelling); it ends Cancelled with nothing half-written."""
    with guarded(principal, JOB_CANCEL, job, details={"jobId": str(job.pk), "operation": job.operation}):
        if job.is_finished or job.status == JobStatus.CANCELLING:
            raise ValidationError(f"This job is already {job.get_status_display().lower()}.")
        if job.operation not in (JobOperation.BACKUP, JobOperation.RESTORE, JobOperation.VERIFY,
                                 JobOperation.REPLICATION):
            raise ValidationError(f"{job.get_operation_display()} jobs cannot be cancelled.")
        jobs.request_cancel(job)
    job.refresh_from_db()
    return job

