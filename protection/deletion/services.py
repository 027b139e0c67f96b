"""Deleting backup data, soft delete, undelete and purge (reference §1.4–1.5, §3.1–3.2, §5.5, §6.1;
decisions 4, 5 and 7).

* `delete_backup_data` (Stop backup → **Delete Backup Data**, or **Delete** on the instance): the
  person types the instance's name and gives a reason and comments. It is the critical operation
  ``backupInstances/delete`` (a Resource Guard may protect it; an immutable vault refuses it). What
  happens depends on the vault's soft delete *at that moment*:

  - **On / AlwaysOn**: the instance goes ``SoftDeleting`` and an UnConfigure job ("Delete backup
    data") moves it to ``SoftDeleted``. Its ``scheduled_purge_at`` is now + the vault's soft-delete
    retention at deletion time. Nothing of it expires meanwhile (retention skips soft-deleted
    instances), it still blocks deleting its vault, its datasource cannot be protected again in the
    same vault, and the **Delete Backup Data** alert fires.
  - **Off**: the UnConfigure job deletes the data now (engine snapshots, Elastic SAN snapshots and
    their inventory resources, the recovery points, then the instance) and reclaims the space with
    the engine's GC. No alert (§6.1: "not fired if soft delete is disabled").

* `undelete` (``deletedBackupInstances/undelete/action``): SoftDeleted → ProtectionStopped with all
  its recovery points (kept forever, as after Stop backup with Retain forever); **Resume backup**
  then restarts it (and gives the points their policy's expiry again).

* Purge: `start_purges` (Celery beat) raises **Upcoming Purge** two days before an instance's
  scheduled purge and creates a Purge job per instance past it. The job acts as the *system
  principal* with its own action ``deletedBackupInstances/purge/action`` — not ``backupInstances/
  delete``, so a Resource Guard never blocks the system's purge — deletes the data through the
  engine (its GC reclaims the space) and raises **Purge Complete**. A store that still holds a
  retention lock (an immutable vault whose lab clock ran ahead) *defers* the purge: the instance
  stays soft-deleted and the next run tries again.

* The store enforces immutability too: `apply_store_retention` (registered with
  `vaults.services.register_immutability_listener`) gives every vault-tier recovery point already in
  the vault a retain-until of its expiry when immutability is enabled (governance) or locked
  (compliance); new points get it at backup time (`protection.backups.backup_job`).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from protection.deletion import point_data
from protection.jobs import runner as jobs
from protection.models import (
    STOP_REASONS,
    BackupInstance,
    Job,
    JobCategory,
    JobOperation,
    JobStatus,
    ProtectionState,
    RecoveryPoint,
)
from security import clock
from security.audit import caller_label, guarded
from security.guards import GuardDenied, evaluate
# SOFT_DELETE_COMPLETE and PURGE are the system's own actions (its role only: `protection.system_access`).
from security.operations import INSTANCE_DELETE, PURGE, SOFT_DELETE_COMPLETE, UNDELETE
from vaults.guards import undelete_refusal

logger = logging.getLogger(__name__)

DELETE_REASONS = STOP_REASONS  # the portal's one list, Stop backup's too
UPCOMING_PURGE_WINDOW = dt.timedelta(days=2)

DELETE_BACKUP_DATA_ALERT = "Delete Backup Data"
UPCOMING_PURGE_ALERT = "Upcoming Purge"
PURGE_COMPLETE_ALERT = "Purge Complete"

# States from which the data of an instance may be deleted (not while configuring, being deleted, or
# already soft-deleted).
DELETABLE_STATES = (
    ProtectionState.CONFIGURED, ProtectionState.PROTECTION_ERROR, ProtectionState.BACKUPS_SUSPENDED,
    ProtectionState.STOPPED, ProtectionState.CONFIGURING_FAILED,
)
# Work on an instance that must end before its data goes (a running backup would add a point to it).
_BUSY_OPERATIONS = (JobOperation.BACKUP, JobOperation.RESTORE, JobOperation.VERIFY, JobOperation.REPLICATION,
                    JobOperation.CONFIGURE_PROTECTION)
_RUNNING = (JobStatus.IN_PROGRESS, JobStatus.CANCELLING)


def _vault_row(vault_id):
    from vaults.models import BackupVault

    return BackupVault.objects.select_related("identity", "region").get(pk=vault_id)


def delete_change(instance, vault=None) -> dict:
    """The ``change`` guards see for deleting ``instance``'s backup data (also used by the preview)."""
    vault = vault or instance.vault
    return {"delete_data": True, "datastore": instance.datasource.datastore,
            "soft_delete": vault.soft_delete_state}


def deletion_preview(principal, instance):
    """What `delete_backup_data` would decide for ``principal``, without acting."""
    return evaluate(principal, INSTANCE_DELETE, instance, delete_change(instance))


def _raise_alert(name, *, resource_id, description, details, severity=None):
    from security import services as security_services
    from security.models import Alert

    return security_services.raise_alert(
        name=name, category=Alert.Category.SECURITY, severity=severity or Alert.Severity.SEV1,
        resource_id=resource_id, description=description, details=details,
    )


# =================================================================================================
# Delete backup data
# =================================================================================================


def delete_backup_data(principal, instance: BackupInstance, *, confirm_name: str, reason: str = "",
                       comments: str = "") -> Job:
    """Stop protection and delete the backup data of ``instance`` (soft-deleted when the vault's soft
    delete is on). Returns the UnConfigure job that finishes it. See the module docstring."""
    vault = _vault_row(instance.vault_id)
    details = {"instance": instance.name, "reason": reason, "comments": (comments or "")[:500],
               "softDelete": vault.soft_delete_state}
    with guarded(principal, INSTANCE_DELETE, instance, change=delete_change(instance, vault), details=details) as op:
        row = BackupInstance.objects.select_for_update().select_related("policy").get(pk=instance.pk)
        vault = _vault_row(row.vault_id)  # the soft-delete setting at the moment of deletion
        if (confirm_name or "").strip() != row.name:
            raise ValidationError({"confirm_name": f"Type the name of the backup item, '{row.name}', to confirm "
                                                   "deleting its backup data."})
        if reason and reason not in DELETE_REASONS:
            raise ValidationError({"reason": f"Choose a reason: {', '.join(DELETE_REASONS)}."})
        if len(comments or "") > 500:
            raise ValidationError({"comments": "Comments can be at most 500 characters long."})
        if row.protection_state not in DELETABLE_STATES:  # a soft-deleted one: the "Soft delete" guard said why
            raise ValidationError(
                f"'{row.name}' is {row.get_protection_state_display().lower()}: its backup data cannot be deleted now.")
        busy = Job.objects.filter(instance=row, operation__in=_BUSY_OPERATIONS, status__in=_RUNNING)
        running = busy.filter(claimed_at__isnull=False).first()
        if running is not None:
            raise ValidationError(
                f"UserErrorAnotherOperationInProgress: a {running.get_operation_display().lower()} job of '{row.name}' "
                "is running. Wait for it to finish or cancel it (Backup jobs), then delete the backup data.",
                code="UserErrorAnotherOperationInProgress")
        for waiting in busy.filter(claimed_at__isnull=True):  # queued work will not run on deleted data
            jobs.request_cancel(waiting)
        now = clock.now()
        soft = vault.soft_delete_enabled
        row.deleted_at = now
        row.delete_reason, row.delete_comments = reason, (comments or "")
        row.next_backup_at = None
        if soft:
            row.protection_state = ProtectionState.SOFT_DELETING
            row.scheduled_purge_at = now + dt.timedelta(days=vault.soft_delete_retention_days)
        else:
            # Deleted for good by the UnConfigure job; "Updating protection" until it has.
            row.protection_state = ProtectionState.UPDATING
            row.scheduled_purge_at = None
        row.save(update_fields=["protection_state", "deleted_at", "scheduled_purge_at", "delete_reason",
                                "delete_comments", "next_backup_at", "updated_at"])
        job = Job.objects.create(
            vault=vault, instance=row, instance_name=row.name, datasource_type=row.datasource_type,
            datasource_name=row.datasource_name, operation=JobOperation.UNCONFIGURE, category=JobCategory.MANAGEMENT,
            is_user_triggered=True, initiated_by=principal if getattr(principal, "pk", None) else None,
            initiated_by_name=caller_label(principal), start_time=now,
            parameters={"softDelete": soft, "softDeleteRetentionDays": vault.soft_delete_retention_days if soft else None,
                        "scheduledPurgeTime": row.scheduled_purge_at.isoformat() if soft else None,
                        "reason": reason},
        )
        jobs.enqueue(job)
        op.details["jobId"] = str(job.pk)
        points = RecoveryPoint.objects.filter(instance=row).count()
        if soft:
            op.details["scheduledPurgeTime"] = row.scheduled_purge_at.isoformat()
            _raise_alert(
                DELETE_BACKUP_DATA_ALERT, resource_id=row.resource_id,
                description=(f"{caller_label(principal)} stopped protection of '{row.name}' in the Backup vault "
                             f"'{vault.name}' and deleted its backup data ({points} recovery point"
                             f"{'s' if points != 1 else ''}). It is soft-deleted and can be undeleted until "
                             f"{row.scheduled_purge_at:%Y-%m-%d %H:%M} UTC, when it is purged."
                             + (f" Reason: {reason}." if reason else "")),
                details={"instance": row.name, "vault": vault.name, "recoveryPoints": points,
                         "scheduledPurgeTime": row.scheduled_purge_at.isoformat(), "reason": reason,
                         "comments": (comments or "")[:500], "by": caller_label(principal)},
            )
    instance.protection_state, instance.deleted_at = row.protection_state, row.deleted_at
    instance.scheduled_purge_at, instance.next_backup_at = row.scheduled_purge_at, None
    return job


def run_unconfigure_job(job: Job, progress: jobs.Progress) -> dict:
    """The UNCONFIGURE ("Delete backup data") job handler: finish a soft delete, or delete the data."""
    from protection.system_access import ensure_system_access

    instance = BackupInstance.objects.select_related("vault", "policy").filter(pk=job.instance_id).first()
    if instance is None:
        return {"extended_info": {"summary": "The backup instance was already removed."}}
    system = ensure_system_access()
    if job.parameters.get("softDelete"):
        progress(current_item=f"Soft deleting {instance.name}", items_total=1, force=True)
        complete_soft_delete(system, instance)
        return {"items_done": 1, "extended_info": {
            "summary": f"'{instance.name}' is soft-deleted; it is purged at "
                       f"{instance.scheduled_purge_at:%Y-%m-%d %H:%M} UTC unless it is undeleted before.",
            "scheduledPurgeTime": instance.scheduled_purge_at.isoformat(),
            "backupInstanceState": instance.protection_state}}
    return _purge(system, instance, progress, soft_deleted=False)


def complete_soft_delete(system, instance: BackupInstance) -> BackupInstance:
    """SoftDeleting → SoftDeleted, as the system principal (the UnConfigure job's last step)."""
    with guarded(system, SOFT_DELETE_COMPLETE, instance, details={"instance": instance.name}):
        row = BackupInstance.objects.select_for_update().get(pk=instance.pk)
        if row.protection_state != ProtectionState.SOFT_DELETING:
            raise ValidationError(f"'{row.name}' is {row.get_protection_state_display().lower()}, not being soft deleted.")
        row.protection_state = ProtectionState.SOFT_DELETED
        row.save(update_fields=["protection_state", "updated_at"])
    instance.protection_state = row.protection_state
    return instance


# =================================================================================================
# Undelete
# =================================================================================================


def undelete_preview(principal, instance):
    return evaluate(principal, UNDELETE, instance)


def undelete(principal, instance: BackupInstance) -> BackupInstance:
    """SoftDeleted → ProtectionStopped with all its recovery points (kept forever until Resume backup)."""
    details = {"instance": instance.name,
               "scheduledPurgeTime": instance.scheduled_purge_at.isoformat() if instance.scheduled_purge_at else None}
    with guarded(principal, UNDELETE, instance, details=details) as op:
        row = BackupInstance.objects.select_for_update().get(pk=instance.pk)
        if refusal := undelete_refusal(row, clock.now()):  # the "Soft delete" guard's rule, again under the lock
            raise ValidationError(refusal.reason)
        purging = Job.objects.filter(instance=row, operation=JobOperation.PURGE, status__in=_RUNNING)
        if purging.filter(claimed_at__isnull=False).exists():
            raise ValidationError(f"'{row.name}' is being purged: it can no longer be undeleted.")
        for waiting in purging:
            jobs.request_cancel(waiting)
        points = RecoveryPoint.objects.filter(instance=row)
        op.details["recoveryPoints"] = points.count()
        # ProtectionStopped = retain forever; Resume backup restores expiries. A point being soft deleted
        # (issue 21) keeps its purge time.
        points.filter(soft_deleted_at__isnull=True).update(expiry_time=None)
        row.protection_state = ProtectionState.STOPPED
        row.deleted_at = row.scheduled_purge_at = None
        row.delete_reason, row.delete_comments = "", ""
        row.next_backup_at = None
        row.save(update_fields=["protection_state", "deleted_at", "scheduled_purge_at", "delete_reason",
                                "delete_comments", "next_backup_at", "updated_at"])
    for f in ("protection_state", "deleted_at", "scheduled_purge_at", "delete_reason", "delete_comments",
              "next_backup_at"):
        setattr(instance, f, getattr(row, f))
    return instance


# =================================================================================================
# Purge
# =================================================================================================


def _due_purges(now):
    """Soft-deleted instances past their purge time (or whose purge was already recorded as started),
    and hard deletes whose data is still there (a deferred UnConfigure job)."""
    return BackupInstance.objects.filter(
        Q(protection_state=ProtectionState.SOFT_DELETED, scheduled_purge_at__lte=now)
        | Q(protection_state=ProtectionState.SOFT_DELETED, purge_started_at__isnull=False)
        | Q(protection_state=ProtectionState.UPDATING, deleted_at__isnull=False, scheduled_purge_at__isnull=True)
    )


def record_due_purges(now) -> int:
    """Record ``purge_started_at`` on every soft-deleted instance past its purge time at ``now``
    (idempotent): from then on it is purged and can no longer be undeleted, even if the lab clock is
    moved back before its scheduled purge. Also the lab clock's settler."""
    return BackupInstance.objects.filter(protection_state=ProtectionState.SOFT_DELETED, scheduled_purge_at__lte=now,
                                         purge_started_at__isnull=True).update(purge_started_at=now)


def warn_upcoming_purges(*, now=None) -> int:
    """Raise **Upcoming Purge** once for each soft-deleted instance that is purged within two days."""
    from security.models import Alert

    now = now or clock.now()
    raised = 0
    soon = BackupInstance.objects.filter(protection_state=ProtectionState.SOFT_DELETED, scheduled_purge_at__gt=now,
                                         scheduled_purge_at__lte=now + UPCOMING_PURGE_WINDOW).select_related("vault")
    for instance in soon:
        if Alert.objects.filter(name=UPCOMING_PURGE_ALERT, affected_resource_id=instance.resource_id,
                                raised_at__gte=instance.deleted_at).exists():
            continue
        with transaction.atomic():
            _raise_alert(
                UPCOMING_PURGE_ALERT, resource_id=instance.resource_id,
                description=(f"The soft-deleted backup instance '{instance.name}' of the Backup vault "
                             f"'{instance.vault.name}' is purged at {instance.scheduled_purge_at:%Y-%m-%d %H:%M} UTC: "
                             "its backup data is then gone for good. Undelete it before if it is still needed."),
                details={"instance": instance.name, "vault": instance.vault.name,
                         "scheduledPurgeTime": instance.scheduled_purge_at.isoformat()},
            )
        raised += 1
    return raised


def start_purges(*, now=None) -> list[Job]:
    """Celery beat: warn about upcoming purges and create a Purge job for every instance that is due
    (unless one is already running for it). Returns the jobs created."""
    from protection.system_access import ensure_system_access

    now = now or clock.now()
    warn_upcoming_purges(now=now)
    record_due_purges(now)
    due = list(_due_purges(now).select_related("vault"))
    if not due:
        return []
    system = ensure_system_access()
    busy = set(Job.objects.filter(instance__in=due, operation__in=[JobOperation.PURGE, JobOperation.UNCONFIGURE],
                                  status__in=_RUNNING).values_list("instance_id", flat=True))
    created = []
    for instance in due:
        if instance.pk in busy:
            continue
        with transaction.atomic():
            job = Job.objects.create(
                vault=instance.vault, instance=instance, instance_name=instance.name,
                datasource_type=instance.datasource_type, datasource_name=instance.datasource_name,
                operation=JobOperation.PURGE, category=JobCategory.MANAGEMENT, initiated_by=system,
                initiated_by_name="Purge schedule", start_time=clock.now(),
                parameters={"scheduledPurgeTime": instance.scheduled_purge_at.isoformat()
                            if instance.scheduled_purge_at else None},
            )
            jobs.enqueue(job)
        created.append(job)
    return created


def run_purge_job(job: Job, progress: jobs.Progress) -> dict:
    """The PURGE job handler: delete what is past its purge time (see the module docstring)."""
    from protection.system_access import ensure_system_access

    instance = BackupInstance.objects.select_related("vault", "policy").filter(pk=job.instance_id).first()
    if instance is None:
        return {"extended_info": {"summary": f"'{job.instance_name}' was already purged."}}
    now = clock.now()
    soft = instance.protection_state == ProtectionState.SOFT_DELETED
    if not _due_purges(now).filter(pk=instance.pk).exists():
        return {"extended_info": {"summary": f"'{instance.name}' is {instance.get_protection_state_display().lower()}"
                                             " and not due for purge: nothing was deleted."}}
    return _purge(ensure_system_access(), instance, progress, soft_deleted=soft)


@dataclass
class _PurgeOutcome:
    removed: int = 0
    deferred: list = field(default_factory=list)
    touched: dict = field(default_factory=dict)


def _still_being_deleted(row: BackupInstance) -> bool:
    return row.deleted_at is not None and row.protection_state in (ProtectionState.SOFT_DELETED, ProtectionState.UPDATING)


def _purge_point(system, rp: RecoveryPoint, *, bypass_governance: bool) -> dict:
    """Delete one recovery point of an instance being deleted: its snapshots (and Elastic SAN snapshot
    resource), then its row. Raises `point_data.Deferred` while the store retains it."""
    instance = rp.instance
    change = {"recovery_point": str(rp.pk), "datastore": rp.datastore,
              "expiry_time": rp.expiry_time.isoformat() if rp.expiry_time else None}
    details = {"instance": instance.name, "recoveryPointTime": rp.recovery_point_time.isoformat()}
    with guarded(system, PURGE, instance, change=change, details=details):
        # The instance's row lock orders this against Undelete: an undeleted instance keeps its points.
        row = BackupInstance.objects.select_for_update().get(pk=instance.pk)
        if not _still_being_deleted(row):
            raise ValidationError(f"'{row.name}' is {row.get_protection_state_display().lower()}: it is no longer "
                                  "being deleted, so its recovery points stay.")
        locked = RecoveryPoint.objects.select_for_update().filter(pk=rp.pk).first()
        if locked is None:
            return {}
        if rp.datastore == RecoveryPoint.Datastore.OPERATIONAL:
            point_data.delete_inventory_snapshot(rp)  # as the vault identity
        touched = point_data.delete_snapshots(rp, bypass_governance=bypass_governance)
        Job.objects.filter(recovery_point=rp).update(recovery_point=None)
        locked.delete()
    return touched


def _purge_points(system, instance, progress) -> _PurgeOutcome:
    from vaults.models import ImmutabilityState

    vault = _vault_row(instance.vault_id)
    # Governance locks left by an immutability that was enabled and then disabled may be bypassed;
    # compliance locks (immutability locked) never.
    bypass = vault.immutability_state == ImmutabilityState.DISABLED
    points = list(RecoveryPoint.objects.filter(instance=instance).select_related("instance__vault__identity")
                  .order_by("recovery_point_time"))
    outcome = _PurgeOutcome()
    progress(items_total=len(points), items_done=0, force=True)
    for n, rp in enumerate(points, start=1):
        progress(items_done=n - 1, current_item=f"Deleting the recovery point of {rp.recovery_point_time:%Y-%m-%d %H:%M}")
        try:
            outcome.touched.update(_purge_point(system, rp, bypass_governance=bypass))
            outcome.removed += 1
        except point_data.Deferred as exc:
            outcome.deferred.append(f"{rp.recovery_point_time.isoformat()}: the store still retains it ({exc})")
        except GuardDenied as exc:
            outcome.deferred.append(f"{rp.recovery_point_time.isoformat()}: {exc.decision.reason}")
    return outcome


def _purge(system, instance, progress, *, soft_deleted: bool) -> dict:
    """Delete every recovery point of ``instance``, reclaim the space, then remove the instance
    (raising Purge Complete for a soft-deleted one). A deferral leaves the instance for the next run."""
    outcome = _purge_points(system, instance, progress)
    progress(items_done=outcome.removed, current_item="Reclaiming space", phase="reclaim", force=True)
    gc_reports = point_data.reclaim(outcome.touched.values())
    info = {"recoveryPointsDeleted": outcome.removed, "deferred": outcome.deferred, "gc": gc_reports}
    if outcome.deferred:
        info["summary"] = (f"{len(outcome.deferred)} recovery point(s) of '{instance.name}' are still retained by the "
                           "vault's store (immutability); the purge is retried at the next run.")
        return {"warnings": outcome.deferred, "extended_info": info, "items_done": outcome.removed}
    remove_deleted_instance(system, instance, purged=soft_deleted, points=outcome.removed)
    info["summary"] = (f"The backup data of '{instance.name}' was {'purged' if soft_deleted else 'deleted'}: "
                       f"{outcome.removed} recovery point(s).")
    return {"extended_info": info, "items_done": outcome.removed}


def remove_deleted_instance(system, instance: BackupInstance, *, purged: bool, points: int = 0) -> None:
    """Remove the instance row once its data is gone (its jobs stay, naming it)."""
    vault_name = instance.vault.name
    with guarded(system, PURGE, instance, details={"instance": instance.name, "final": True}):
        row = BackupInstance.objects.select_for_update().get(pk=instance.pk)
        if not _still_being_deleted(row):
            raise ValidationError(f"'{row.name}' is no longer being deleted.")
        if RecoveryPoint.objects.filter(instance=row).exists():
            raise ValidationError(f"'{row.name}' still has recovery points.")
        resource_id, deleted_at = row.resource_id, row.deleted_at
        row.delete()
        if purged:
            _raise_alert(
                PURGE_COMPLETE_ALERT, resource_id=resource_id,
                description=(f"The soft-deleted backup instance '{instance.name}' of the Backup vault '{vault_name}' "
                             f"was purged: {points} recovery point(s) are gone for good (deleted on "
                             f"{deleted_at:%Y-%m-%d %H:%M} UTC)."),
                details={"instance": instance.name, "vault": vault_name, "recoveryPoints": points},
            )


# =================================================================================================
# The store enforces immutability too
# =================================================================================================


def apply_store_retention(vault, state: str) -> dict:
    """Immutability listener: when ``vault`` becomes immutable (governance) or locked (compliance),
    every vault-tier recovery point already in it is retained in the store until its expiry.
    A store that cannot enforce retention refuses the change (ValidationError)."""
    from vaults.store import COMPLIANCE, GOVERNANCE, ImmutabilityUnsupported, RetentionError

    mode = COMPLIANCE if state == "Locked" else GOVERNANCE
    points = RecoveryPoint.objects.filter(instance__vault_id=vault.pk, expiry_time__gt=timezone.now(),
                                          datastore__in=[RecoveryPoint.Datastore.VAULT, RecoveryPoint.Datastore.ARCHIVE])
    from protection.store_retention import retain_in_store

    count = objects = 0
    try:
        for point in points.iterator():
            objects += retain_in_store(point, vault, mode)
            count += 1
    except ImmutabilityUnsupported as exc:
        raise ValidationError({"state": f"The vault's store cannot enforce immutability: {exc}"}) from None
    except RetentionError as exc:
        raise ValidationError({"state": f"The vault's store refused to retain a recovery point: {exc}"}) from None
    return {"storeRetention": {"mode": mode, "recoveryPoints": count, "objects": objects}}
