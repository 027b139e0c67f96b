"""Restores and verification: validate, start, the Restore and Verify job handlers, scheduled verify.

Every state change goes through `security.audit.guarded`:

* ``validate_restore(principal, point, target)`` — the wizard's **Validate** (``validateRestore/action``
  on the backup instance): every rule of `validation` and the vault identity's restore roles
  (`readiness`). A failure raises `ValidationError` whose errors carry the reference's codes;
  `RestoreNotReady` (a ValidationError) also carries the readiness, for **Assign missing roles**.
* ``assign_restore_roles(principal, point, target, level)`` — assigns the missing roles as the
  signed-in user (through `security.services.assign_role`).
* ``start_restore(principal, point, target)`` — **Restore** (``restore/action`` on the instance, so a
  Resource Guard can protect it): validates again, creates the Restore job and enqueues it.
* ``run_restore_job`` (the RESTORE job handler) — checks again (the target may have appeared, a role
  may have gone), runs the datasource's restore (`adls`, `elastic_san`, `postgres`) with progress,
  and ends with a summary in ``Job.extended_info["restore"]``. A failure raises the **Restore Failure**
  alert.
* ``start_verify(principal, point)`` / ``start_scheduled_verifies()`` and ``run_verify_job`` (the
  VERIFY handler) — re-read and authenticate every chunk the point needs; the result goes on the
  recovery point (``health``, ``verified_at``, ``verify_details``) and damage raises an alert.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction

from protection import datasource_types
from protection import network
from protection.datasources.base import RunContext
from protection.jobs import runner as jobs
from protection.jobs.authorize import authorize_run
from protection.models import BackupInstance, Job, JobCategory, JobOperation, JobStatus, ProtectionState, RecoveryPoint
from protection.readiness import describe
from protection import regions
from protection.restores import cross_region as crr
from protection.restores import layout, readiness, targets, validation
from security import clock
from security.audit import caller_label, guarded
from security.guards import GuardDenied, evaluate
from security.operations import RESTORE, VALIDATE_RESTORE

logger = logging.getLogger(__name__)

RESTORE_FAILURE_ALERT = "Restore Failure"
VERIFY_FAILURE_ALERT = "Recovery Point Damaged"
VERIFY_EVERY = dt.timedelta(days=7)  # scheduled verify re-checks a point after this long
VERIFY_BATCH = 50  # points a scheduled run starts at most

_NOT_RESTORABLE = (ProtectionState.SOFT_DELETED, ProtectionState.SOFT_DELETING, ProtectionState.CONFIGURING,
                   ProtectionState.CONFIGURING_FAILED)


class RestoreNotReady(ValidationError):
    """The vault identity lacks restore roles; ``readiness`` says which and who may assign them."""

    def __init__(self, ready: readiness.Readiness):
        self.readiness = ready
        code = validation.MISSING_PERMISSIONS
        super().__init__({"restore_roles": [ValidationError(
            f"{code}: {validation.MISSING_PERMISSIONS_TEXT} {ready.message}", code=code)]})


@dataclass
class Validation:
    resolved: dict
    readiness: readiness.Readiness


# =================================================================================================
# Reads
# =================================================================================================


def restorable_instances(principal, datasource_type: str | None = None):
    """Backup instances the principal may read that have a recovery point (the Recover list)."""
    from protection.instances.services import instances_for

    qs = instances_for(principal).exclude(protection_state__in=_NOT_RESTORABLE).filter(recovery_points__isnull=False)
    if datasource_type:
        qs = qs.filter(datasource_type=datasource_type)
    return qs.distinct().order_by("name")


def points_of(instance, start=None, end=None):
    # A point being soft deleted (a shorter retention expired it, issue 21) is not offered.
    qs = RecoveryPoint.objects.filter(instance=instance, state=RecoveryPoint.State.COMPLETED, soft_deleted_at__isnull=True)
    if start is not None:
        qs = qs.filter(recovery_point_time__gte=start)
    if end is not None:
        qs = qs.filter(recovery_point_time__lte=end)
    return qs.order_by("-recovery_point_time")


def may_restore(principal, instance) -> bool:
    return evaluate(principal, RESTORE, instance).allowed


def may_validate(principal, instance) -> bool:
    return evaluate(principal, VALIDATE_RESTORE, instance).allowed


# =================================================================================================
# Validate, assign missing roles, start
# =================================================================================================


def _check_point(point) -> None:
    instance = point.instance
    if instance.protection_state in _NOT_RESTORABLE:
        raise ValidationError(
            {"instance": f"'{instance.name}' is {instance.get_protection_state_display().lower()}: it cannot be restored "
                         "from now."})
    if point.state != RecoveryPoint.State.COMPLETED:
        raise ValidationError({"recovery_point": "Choose a completed recovery point."})
    fresh = RecoveryPoint.objects.filter(pk=point.pk).values_list("soft_deleted_at", "expiry_time").first()
    if fresh is not None:  # read again: a policy change may have soft deleted it since the page loaded
        point.soft_deleted_at, point.expiry_time = fresh
    if point.is_soft_deleted:
        raise ValidationError({"recovery_point": (
            f"This recovery point is being soft deleted: the backup policy's shorter retention expired it, and it "
            f"is purged on {point.expiry_time:%Y-%m-%d %H:%M} UTC. It cannot be restored. Choose another recovery "
            f"point, or raise the policy's retention before then to bring it back.")})


def _check_rehydrated(point) -> None:
    """Archive tier (issue 21): an archived point restores only from its rehydrated copy."""
    if point.is_archived and not point.is_rehydrated():
        raise ValidationError({"recovery_point": ValidationError(
            "UserErrorRecoveryPointNotRehydrated: This recovery point is in the archive tier (Vault-archive): restore "
            "it with rehydration (choose a rehydration priority and duration), or wait until its rehydration completes.",
            code="UserErrorRecoveryPointNotRehydrated")})


def _printable(value):
    """JSON the activity log can store whatever was typed (PostgreSQL's jsonb refuses NUL)."""
    if isinstance(value, str):
        return value.replace("\x00", "\\0")
    if isinstance(value, dict):
        return {k: _printable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_printable(v) for v in value]
    return value


def _details(point, target) -> dict:
    return {"instance": point.instance.name, "recoveryPointId": str(point.pk),
            "recoveryPointTime": point.recovery_point_time.isoformat(), "target": _printable(targets.to_json(target))}


def _ready(principal, point, target, resolved) -> readiness.Readiness:
    return readiness.check(principal, point.instance.vault, readiness.needs_for(point, target, resolved))


def validate_restore(principal, point: RecoveryPoint, target, *, cross_region: bool = False) -> Validation:
    """The wizard's Validate: rules and the vault identity's roles (see the module docstring); with
    ``cross_region`` also the rules of a restore to the secondary region (`cross_region.check`)."""
    details = _details(point, target) | ({regions.JOB_FLAG: True} if cross_region else {})
    with guarded(principal, VALIDATE_RESTORE, point.instance, details=details) as op:
        _check_point(point)
        if cross_region:
            crr.check(point, target)
        resolved = validation.resolve(point, target, principal=principal)
        ready = _ready(principal, point, target, resolved)
        if not ready.ok:
            raise RestoreNotReady(ready)
        op.details["result"] = "Success"
    return Validation(resolved, ready)


def restore_readiness(principal, point, target) -> readiness.Readiness | None:
    """The identity's restore readiness for a target that passes the rules (None when it does not)."""
    try:
        resolved = validation.resolve(point, target, principal=principal)
    except ValidationError:
        return None
    return _ready(principal, point, target, resolved)


def assign_restore_roles(principal, point: RecoveryPoint, target, level: str) -> list:
    """**Assign missing roles** for a restore: the §2.2 restore roles the vault identity lacks."""
    resolved = validation.resolve(point, target, principal=principal)
    needs = readiness.needs_for(point, target, resolved)
    return readiness.assign_missing(principal, point.instance.vault, needs, level)


def _target_keys(target, resolved) -> set[str]:
    if isinstance(target, targets.AdlsTarget):
        return {f"{target.account_id.lower()}/{c.target_name}" for c in resolved["containers"]}
    if isinstance(target, targets.VolumeTarget):
        return {f"{target.volume_group_id.lower()}/{target.volume_name.lower()}"}
    if isinstance(target, targets.DiskTarget):
        return {target.disk_id.lower()}
    if isinstance(target, targets.PgDatabaseTarget):
        return {f"{target.server_id.lower()}/{target.database_name}"}
    return {f"{target.container_id.lower()}/{name}" for name, _ in resolved["files"]}


def _running_targets(vault_ids=None) -> set[str]:
    keys = set()
    running = Job.objects.filter(operation=JobOperation.RESTORE, status__in=[JobStatus.IN_PROGRESS, JobStatus.CANCELLING])
    for params in running.values_list("parameters", flat=True):
        keys.update((params or {}).get("targetKeys") or [])
    return keys


def _region_parameters(vault, cross_region: bool) -> dict:
    if not cross_region:
        return {}
    return {regions.JOB_FLAG: True, "sourceRegion": vault.region_id, "targetRegion": vault.secondary_region.pk}


def start_restore(principal, point: RecoveryPoint, target, *, cross_region: bool = False) -> Job:
    """**Restore** (or, with ``cross_region``, **Restore to secondary region**): validate again, then create
    and enqueue the Restore job."""
    instance = point.instance
    vault = instance.vault
    change = {"recoveryPointId": str(point.pk), "targetResourceId": network.target_resource_id(target)}
    if cross_region:
        change["crossRegion"] = True  # the network guard judges the vault's secondary endpoints
    with guarded(principal, RESTORE, instance, change=change,
                 details=_details(point, target) | ({regions.JOB_FLAG: True} if cross_region else {})) as op:
        row = BackupInstance.objects.select_for_update().select_related("vault").get(pk=instance.pk)
        point.instance = row
        _check_point(point)
        if cross_region:
            crr.check(point, target)
        _check_rehydrated(point)
        resolved = validation.resolve(point, target, principal=principal)
        ready = _ready(principal, point, target, resolved)
        if not ready.ok:
            raise RestoreNotReady(ready)
        keys = _target_keys(target, resolved)
        busy = keys & _running_targets()
        if busy:
            raise ValidationError(
                f"{validation.TARGET_CONTAINERS_EXIST if isinstance(target, targets.AdlsTarget) else 'UserErrorRestoreInProgress'}: "
                f"Another restore is writing to the same target ({', '.join(sorted(busy))}). Wait for it to finish, "
                "or choose another name.", code="UserErrorRestoreInProgress")
        job = Job(
            vault=vault, instance=row, instance_name=row.name, datasource_type=row.datasource_type,
            datasource_name=row.datasource_name, operation=JobOperation.RESTORE, category=JobCategory.RESTORE,
            status=JobStatus.IN_PROGRESS, is_user_triggered=True, initiated_by=principal,
            initiated_by_name=caller_label(principal), recovery_point=point, start_time=clock.now(),
            parameters={
                "restoreType": "ALR", "recoveryPointId": str(point.pk),
                "recoveryPointTime": point.recovery_point_time.isoformat(),
                "target": targets.to_json(target), "targetKeys": sorted(keys),
                "request": targets.as_api(point, target, region=vault.secondary_region.pk if cross_region
                                          else vault.region_id),
                **_region_parameters(vault, cross_region),
            },
            extended_info={"recoveryPointTime": point.recovery_point_time.isoformat()},
        )
        job.save()
        op.details["jobId"] = str(job.pk)
        jobs.enqueue(job)
    return job


# =================================================================================================
# The Restore job
# =================================================================================================


def _raise_restore_alert(job, point, code: str, message: str) -> None:
    from security import services as security_services
    from security.models import Alert

    with transaction.atomic():
        security_services.raise_alert(
            name=RESTORE_FAILURE_ALERT, category=Alert.Category.JOBS, severity=Alert.Severity.SEV1,
            resource_id=job.instance.resource_id if job.instance_id else job.vault.resource_id,
            description=f"The restore of '{job.instance_name}' from the recovery point of "
                        f"{point.recovery_point_time:%Y-%m-%d %H:%M} UTC failed: {code}: {message}",
            details={"jobId": str(job.pk), "errorCode": code, "vault": job.vault.name},
        )


def _identity_problem(vault) -> str:
    identity = vault.identity
    if identity is None or not identity.enabled:
        return (f"The vault '{vault.name}' has its system-assigned managed identity turned off: turn it on in the "
                "vault's Identity blade, then restore again.")
    return ""


def run_restore_job(job: Job, progress: jobs.Progress) -> dict:
    """The RESTORE job handler (see the module docstring)."""
    from vaults.store import Cancelled, NotFound, StoreError

    point = (RecoveryPoint.objects.select_related("instance__vault__identity", "instance__vault__resource_group")
             .filter(pk=(job.parameters or {}).get("recoveryPointId") or job.recovery_point_id).first())
    if point is None:
        raise jobs.JobError("UserErrorRecoveryPointNotFound",
                            "The recovery point no longer exists (it expired or was deleted); nothing was restored.")
    target = targets.from_json(job.parameters["target"])
    secondary = regions.is_cross_region(job)
    if secondary:
        crr.read_from_secondary(point)  # from here on only the secondary store is opened
    run = RunContext(job, progress)
    started = clock.now()
    try:
        _leftovers(job, point, target)
        refused = network.refusal(point.instance, what=network.CROSS_REGION_WHAT if secondary else network.RESTORE_WHAT,
                                  target_resource_id=network.target_resource_id(target), secondary=secondary)
        if refused is not None:  # the vault's network, asked again when the job runs
            raise jobs.JobError(refused.code, f"{refused.reason} {refused.remedy}")
        authorize_run(job, job.initiated_by, RESTORE, point.instance, denied_code="UserErrorRestoreNotAuthorized",
                      details=_details(point, target),
                      change={"recoveryPointId": str(point.pk), "targetResourceId": network.target_resource_id(target),
                              **({"crossRegion": True} if secondary else {})})
        problem = _identity_problem(point.instance.vault)
        if problem:
            raise jobs.JobError(validation.MISSING_PERMISSIONS, f"{validation.MISSING_PERMISSIONS_TEXT} {problem}")
        try:
            # The worker's own check, before any byte: the target may exist by now, a role may be gone.
            if secondary:
                crr.check(point, target)
            resolved = validation.resolve(point, target, job=job)
        except ValidationError as exc:
            codes = sorted(validation.codes_of(exc)) or ["UserErrorRestoreValidationFailed"]
            raise jobs.JobError(codes[0], " ".join(m.split(": ", 1)[-1] for m in exc.messages)) from None
        lacking = readiness.missing(point.instance.vault.identity, readiness.needs_for(point, target, resolved))
        if lacking:
            raise jobs.JobError(validation.MISSING_PERMISSIONS,
                                f"{validation.MISSING_PERMISSIONS_TEXT} The vault's managed identity needs {describe(lacking)}. "
                                "Validate the restore and Assign missing roles, then restore again.")
        progress(current_item=f"Restoring {point.instance.datasource_name}", force=True)
        outcome = _restore(job, point, target, resolved, run)
    except jobs.JobCancelled:  # a cancel, or JobLost: this worker no longer holds the job
        raise
    except Cancelled:
        raise jobs.JobCancelled() from None
    except jobs.JobError as exc:
        _raise_restore_alert(job, point, exc.code, exc.message)
        raise
    except ValidationError as exc:  # an inventory service refused (a target that appeared meanwhile)
        code = {targets.ADLS_KIND: validation.TARGET_CONTAINERS_EXIST, targets.VOLUME_KIND: validation.VOLUME_EXISTS,
                targets.DISK_KIND: validation.DISK_EXISTS,
                targets.PG_DATABASE_KIND: validation.DATABASE_EXISTS, targets.PG_FILES_KIND: validation.FILES_EXIST}[target.kind]
        message = " ".join(exc.messages) + " Nothing was restored."
        _raise_restore_alert(job, point, code, message)
        raise jobs.JobError(code, message) from None
    except NotFound as exc:
        _raise_restore_alert(job, point, "UserErrorRecoveryPointNotFound", str(exc))
        raise jobs.JobError("UserErrorRecoveryPointNotFound",
                            f"Data of the recovery point is missing from the store ({exc}); nothing was restored.") from None
    except StoreError as exc:
        _raise_restore_alert(job, point, "UserErrorRecoveryPointDamaged", str(exc))
        raise jobs.JobError("UserErrorRecoveryPointDamaged", f"The store could not give back the data: {exc}") from None
    except Exception as exc:
        _raise_restore_alert(job, point, "InternalError", f"{type(exc).__name__}: {exc}")
        raise
    summary = outcome["summary"]
    ended = clock.now()
    summary.update({"durationSeconds": round((ended - started).total_seconds(), 1),
                    "recoveryPointId": str(point.pk), "recoveryPointTime": point.recovery_point_time.isoformat()})
    extended = dict(job.extended_info or {})
    extended.update({"restore": summary, "recoveryDestination": summary.get("targetResourceId", ""),
                     "dataTransferredInBytes": outcome["bytes"],
                     "sourceRecoverPoint": {"recoveryPointID": str(point.pk),
                                            "recoveryPointTime": point.recovery_point_time.isoformat()}})
    return {"extended_info": extended, "bytes_done": max(job.bytes_done, outcome["bytes"]),
            "items_done": max(job.items_done, outcome["items"])}


def _restore(job, point, target, resolved, run) -> dict:
    from protection.restores import adls, elastic_san, managed_disk, postgres

    if isinstance(target, targets.AdlsTarget):
        return adls.restore(job, point, target, resolved, run)
    if isinstance(target, targets.VolumeTarget):
        return elastic_san.restore(job, point, target, resolved, run)
    if isinstance(target, targets.DiskTarget):
        return managed_disk.restore(job, point, target, resolved, run)
    if isinstance(target, targets.PgDatabaseTarget):
        return postgres.restore_database(job, point, target, resolved, run)
    return postgres.restore_files(job, point, target, resolved, run)


def _leftovers(job, point, target) -> None:
    """A job re-run after its worker died: remove what the earlier attempt left (never the target of
    someone else: only the hidden temporary names of this job, or what this job recorded it made)."""
    if job.attempts <= 1:
        return
    remove_restore_leftovers(job, target)


def cleanup_restore_job(job) -> None:
    """The reconciler gave the job up: remove its hidden temporary folder or image, or the database
    it created (the same removal a re-run does first)."""
    target = targets.from_json((job.parameters or {})["target"])
    remove_restore_leftovers(job, target)


def remove_restore_leftovers(job, target) -> None:
    from protection.restores import adls, elastic_san, postgres

    if isinstance(target, targets.AdlsTarget):
        from portal.inventory.models import StorageAccount

        account = StorageAccount.objects.filter(resource_id__iexact=target.account_id).first()
        if account is not None:
            adls.remove_leftovers(account, job)
    elif isinstance(target, targets.VolumeTarget):
        from portal.inventory.models import VolumeGroup

        group = VolumeGroup.objects.filter(resource_id__iexact=target.volume_group_id).first()
        if group is not None:
            elastic_san.remove_leftovers(group, job)
    elif isinstance(target, targets.DiskTarget):
        from protection.restores import managed_disk

        managed_disk.remove_leftovers(target, job)
    elif isinstance(target, targets.PgDatabaseTarget):
        postgres.remove_leftovers(job)


# =================================================================================================
# Verify
# =================================================================================================


def _verify_job(point, principal, *, user_triggered: bool) -> Job:
    instance = point.instance
    return Job(
        vault=instance.vault, instance=instance, instance_name=instance.name, datasource_type=instance.datasource_type,
        datasource_name=instance.datasource_name, operation=JobOperation.VERIFY, category=JobCategory.MANAGEMENT,
        status=JobStatus.IN_PROGRESS, is_user_triggered=user_triggered, initiated_by=principal if user_triggered else None,
        initiated_by_name=caller_label(principal) if user_triggered else "Schedule", recovery_point=point,
        start_time=clock.now(), parameters={"recoveryPointId": str(point.pk)},
        extended_info={"recoveryPointTime": point.recovery_point_time.isoformat()},
    )


def _verify_running(point) -> bool:
    return Job.objects.filter(operation=JobOperation.VERIFY, recovery_point=point,
                              status__in=[JobStatus.IN_PROGRESS, JobStatus.CANCELLING]).exists()


def start_verify(principal, point: RecoveryPoint) -> Job:
    """**Verify** a recovery point now (re-reads and authenticates every chunk it needs)."""
    details = {"instance": point.instance.name, "recoveryPointId": str(point.pk), "check": "Verify recovery point"}
    with guarded(principal, VALIDATE_RESTORE, point.instance, details=details) as op:
        if _verify_running(point):
            raise ValidationError("UserErrorVerifyInProgress: This recovery point is being verified already; "
                                  "see its Verify job.", code="UserErrorVerifyInProgress")
        job = _verify_job(point, principal, user_triggered=True)
        job.save()
        op.details["jobId"] = str(job.pk)
        jobs.enqueue(job)
    return job


def points_due_for_verify(now=None, limit: int = VERIFY_BATCH):
    now = now or clock.now()
    from django.db.models import Q

    return (RecoveryPoint.objects.filter(state=RecoveryPoint.State.COMPLETED)
            .filter(Q(verified_at__isnull=True) | Q(verified_at__lt=now - VERIFY_EVERY))
            .exclude(instance__protection_state__in=[ProtectionState.SOFT_DELETED, ProtectionState.SOFT_DELETING])
            .select_related("instance__vault").order_by("verified_at", "recovery_point_time")[:limit])


def start_scheduled_verifies(*, now=None, limit: int = VERIFY_BATCH) -> list:
    """Beat: a Verify job for each point not verified in the last week (the system principal acts)."""
    from protection.system_access import ensure_verify_access

    due = [p for p in points_due_for_verify(now, limit) if not _verify_running(p)]
    if not due:
        return []
    system = ensure_verify_access()
    started = []
    for point in due:
        try:
            with guarded(system, VALIDATE_RESTORE, point.instance,
                         details={"instance": point.instance.name, "recoveryPointId": str(point.pk),
                                  "check": "Verify recovery point", "scheduled": True}) as op:
                job = _verify_job(point, system, user_triggered=False)
                job.save()
                op.details["jobId"] = str(job.pk)
                jobs.enqueue(job)
        except GuardDenied:  # logged by guarded; another guard (MUA, ...) may refuse the system too
            continue
        started.append(job.pk)
    return started


def run_verify_job(job: Job, progress: jobs.Progress) -> dict:
    """The VERIFY job handler: every engine snapshot of the point, verified; the result recorded."""
    from vaults.store import Cancelled

    point = (RecoveryPoint.objects.select_related("instance__vault")
             .filter(pk=(job.parameters or {}).get("recoveryPointId") or job.recovery_point_id).first())
    if point is None:
        raise jobs.JobError("UserErrorRecoveryPointNotFound", "The recovery point no longer exists; nothing to verify.")
    parts = layout.parts(point)
    run = RunContext(job, progress)
    run.report(bytes_total=sum(p.bytes for p in parts) or None, items_total=len(parts),
               current_item="Verifying", force=True)
    damaged, errors, chunks, checked = [], [], 0, 0
    try:
        with layout.open_point_store(point) as store:
            for index, part in enumerate(parts, start=1):
                run.check_cancel()

                def engine_progress(p, base=run.bytes_base, label=part.item):
                    run.report(bytes_done=base + p.bytes_done, current_item=f"Verifying {label}")

                try:
                    report = store.verify(part.snapshot_id, progress=engine_progress, cancel=run.cancel)
                except Cancelled:
                    raise jobs.JobCancelled() from None
                damaged.extend(layout.item_name(point, i) for i in report.damaged_items)
                errors.extend(report.errors)
                if not report.ok and not report.damaged_items:
                    # Damage the engine found outside the chunks an item needs (a pack trailer, a
                    # pack's hash, an index file, a missing chunk): the point is damaged all the same.
                    damaged.append(part.item)
                chunks += report.chunks_checked
                checked += report.bytes_checked
                run.bytes_base += report.bytes_checked
                run.report(bytes_done=run.bytes_base, items_done=index, force=True)
    except (jobs.JobError, jobs.JobCancelled):
        raise
    except Cancelled:
        raise jobs.JobCancelled() from None
    except Exception as exc:  # the store itself is unreadable: that is damage too
        from vaults.store import StoreError

        if not isinstance(exc, (StoreError, OSError)):
            raise
        damaged.append("<store>")
        errors.append(f"{type(exc).__name__}: {exc}")
    result = record_verification(job, point, damaged=sorted(set(damaged)), errors=errors, chunks=chunks, checked=checked)
    extended = dict(job.extended_info or {})
    extended["verify"] = result
    if damaged:
        shown = ", ".join(sorted(set(damaged))[:20])
        jobs.finish(job, JobStatus.FAILED, error_code="UserErrorRecoveryPointDamaged",
                    error_message=f"The recovery point is damaged: {len(set(damaged))} item(s) cannot be restored: {shown}."
                                  + (f" The store reported: {errors[0]}" if errors else ""),
                    extended_info=extended, bytes_done=run.bytes_base, items_done=len(parts))
        return {}
    return {"extended_info": extended, "bytes_done": run.bytes_base, "items_done": len(parts)}


def record_verification(job, point, *, damaged, errors, chunks, checked) -> dict:
    """Put a verify result on the recovery point, and raise the alert when it is damaged."""
    from security import services as security_services
    from security.models import Alert

    now = clock.now()
    result = {"verifiedAt": now.isoformat(), "jobId": str(job.pk), "chunksChecked": chunks, "bytesChecked": checked,
              "damagedItems": damaged[:500], "damagedCount": len(damaged), "errors": errors[:50]}
    with transaction.atomic():
        row = RecoveryPoint.objects.select_for_update().get(pk=point.pk)
        details = dict(row.verify_details or {})
        details.update(result)
        row.verify_details = details
        row.verified_at = now
        row.health = RecoveryPoint.Health.DAMAGED if damaged else RecoveryPoint.Health.HEALTHY
        row.save(update_fields=["verify_details", "verified_at", "health"])
        if damaged:
            security_services.raise_alert(
                name=VERIFY_FAILURE_ALERT, category=Alert.Category.JOBS, severity=Alert.Severity.SEV1,
                resource_id=point.instance.resource_id,
                description=f"Verify found the recovery point of {point.recovery_point_time:%Y-%m-%d %H:%M} UTC of "
                            f"'{point.instance.name}' damaged: {len(damaged)} item(s) cannot be restored "
                            f"({', '.join(damaged[:10])}{' …' if len(damaged) > 10 else ''}).",
                details={"recoveryPointId": str(point.pk), "jobId": str(job.pk), "damagedItems": damaged[:100]},
            )
    point.verify_details, point.verified_at, point.health = details, now, row.health
    return result


def datasource_label(datasource_type: str) -> str:
    return datasource_types.get(datasource_type).label
