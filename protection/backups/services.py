"""Backups: on-demand and scheduled, stop and resume, and cancelling a job.

- `backup_now` (the portal's **Backup now**): the person picks one of the policy's retention rules;
  the reference's per-day limits apply (`UserErrorBackupRequestThrottled`).
- `dispatch_due_backups` (Celery beat, every minute): one indexed query for the instances that are
  due, then per instance the *latest* due slot only, inserted as a Job with its ``scheduled_time``
  (unique per instance) after a compare-and-set that moves ``next_backup_at`` on. Two dispatchers at
  once, or a redelivered beat message, therefore never create a slot twice.
- The job they start runs in `protection.backups.backup_job` (the codes it ends with are named here).
- `stop_backup` (Retain forever → ProtectionStopped; Retain as per policy → BackupSchedulesSuspended)
  and `resume_backup`.
- `cancel_job` (`protection.jobs.services`, named here too beside the backup operations): Cancelling
  → Cancelled at the next progress write; nothing half-written stays.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from protection import redating
from protection.datasources import base as datasource_base
from protection.jobs import runner as jobs
from protection.jobs.services import cancel_job  # noqa: F401  (re-exported: Cancel on a backup job)
from protection.models import STOP_REASONS, BackupInstance, Job, JobCategory, JobOperation, JobStatus, ProtectionState, RecoveryPoint
from protection.policy_rules import PolicyError, point_expiry
from protection.scheduling import schedule_next
from security import clock
from security.audit import caller_label, guarded, record_denial
from security.guards import evaluate
from security.operations import BACKUP_ACTION, RESUME_BACKUPS, RESUME_PROTECTION, STOP_PROTECTION, SUSPEND_BACKUPS
from vaults.networking.guard import NETWORK_GUARD

logger = logging.getLogger(__name__)

# What a backup ends with: the error codes of Backup now and of the Backup job, and the alert a failure raises.
STORAGE_FULL = "UserErrorBackupStorageFull"
MISSING_PERMISSIONS = datasource_base.MISSING_PERMISSIONS
BACKUP_FAILURE_ALERT = "Backup Failure"
THROTTLED = "UserErrorBackupRequestThrottled"
THROTTLED_MESSAGE = "The number of backups on a given backup instance in a day reached the maximum limit."
RETAIN_FOREVER = "RetainForever"
RETAIN_AS_PER_POLICY = "RetainAsPerPolicy"

# Backups run only while protection is configured (not stopped, suspended or soft-deleted).
PROTECTED_FOR_BACKUP = (ProtectionState.CONFIGURED,)


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
        if row.protection_state not in PROTECTED_FOR_BACKUP:
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
        # A slot the vault's network refuses still gets its job, which fails with the network's code (and
        # raises Backup Failure) when it runs: a trainee sees the scheduled backup fail, not vanish.
        if not decision.allowed and decision.guard != NETWORK_GUARD:
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
        # A point being soft deleted keeps its purge time (issue 21): it is purged once retention runs again.
        points = RecoveryPoint.objects.filter(instance=row, soft_deleted_at__isnull=True)
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
            rule = redating.rule_for(policy, point.retention_tag)  # Default when the policy lacks the tag
            point.expiry_time = point_expiry(row.policy.policy_rules, rule, point.recovery_point_time)  # archive tier
            point.save(update_fields=["expiry_time"])
        row.protection_state = ProtectionState.CONFIGURED
        schedule_next(row)
        row.save(update_fields=["protection_state", "next_backup_at", "last_scheduled_slot", "updated_at"])
    instance.protection_state = row.protection_state
    instance.next_backup_at, instance.last_scheduled_slot = row.next_backup_at, row.last_scheduled_slot
    return instance
