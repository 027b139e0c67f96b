"""The BACKUP job (its handler, registered in `ProtectionConfig.ready`).

`run_backup_job` authorizes the run again (as the person who asked, or the system for a scheduled
one), checks the vault identity's rights, runs the datasource driver through the engine, and — only
when everything succeeded — creates the recovery point (time, tier, retention tag by the policy's
priorities, expiry, sizes) in the same transaction that ends the job. A failure or a cancel deletes
what the run had committed; a failure raises the **Backup Failure** alert and starts a Retention run
that reclaims what the attempt left.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction

from protection import readiness
from protection.backups import replication, retention
from protection.backups.leftovers import FAILED_BEFORE_WRITING, remove_attempt_leftovers
from protection.backups.services import BACKUP_FAILURE_ALERT, MISSING_PERMISSIONS, PROTECTED_FOR_BACKUP, STORAGE_FULL
from protection.datasources import driver_for
from protection.datasources.base import MISSING_PERMISSIONS_MESSAGE, RunContext
from protection.jobs import runner as jobs
from protection.jobs.authorize import authorize_run
from protection.models import BackupInstance, Job, JobStatus, RecoveryPoint
from protection.policy_rules import PolicyError, RetentionRule, point_expiry
from protection.system_access import ensure_system_access
from security import clock
from security.operations import BACKUP_ACTION

logger = logging.getLogger(__name__)


def run_backup_job(job: Job, progress: jobs.Progress) -> dict:
    """The BACKUP job handler. A failed backup raises the **Backup Failure** alert (reference §6.1;
    a cancel does not)."""
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


def cleanup_backup_job(job: Job) -> None:
    """The reconciler gave the job up: remove the snapshots its lost attempts committed (a retained one is
    deferred and recorded), then a clean-up run garbage-collects the stores (packs, stale locks)."""
    result = remove_attempt_leftovers(job)
    info = dict(Job.objects.filter(pk=job.pk).values_list("extended_info", flat=True).first() or {})
    info["leftoversRemoved"] = info.get("leftoversRemoved", 0) + result.removed
    Job.objects.filter(pk=job.pk).update(extended_info=info)
    _reclaim_after_failure(job)


@dataclass(frozen=True)
class NewPoint:
    """The recovery point a run makes: its time, retention rule and expiry."""

    time: dt.datetime
    rule: RetentionRule
    expiry: dt.datetime


def _run_backup_job(job: Job, progress: jobs.Progress) -> dict:
    instance = _instance_to_back_up(job)
    _authorize_run(job, instance)
    driver = driver_for(instance.datasource_type)
    if job.attempts > 1:  # an earlier attempt's worker died: remove whatever it committed
        leftovers = remove_attempt_leftovers(job, instance, driver)
        if leftovers.deferred:
            progress(current_item=f"{len(leftovers.deferred)} snapshot(s) of an earlier attempt are still retained; "
                                  "they are deleted once their retention ends", force=True)
    problem = identity_problems(instance)
    if problem:
        raise jobs.JobError(MISSING_PERMISSIONS, f"{MISSING_PERMISSIONS_MESSAGE} {problem}")

    now = clock.now()
    rule = choose_rule(instance, job, now)
    new = NewPoint(now, rule, point_expiry(instance.policy.policy_rules, rule, now))  # archive tier: tiering rule's retention
    vault = instance.vault
    immutable = vault.immutability_enabled and driver.datastore == RecoveryPoint.Datastore.VAULT
    run = RunContext(job, progress, point_retain_until=new.expiry if immutable else None,
                     retention_mode=_retention_mode(vault))
    progress(current_item=f"Backing up {instance.datasource_name}", force=True)
    outcome, point, extended = _back_up(job, instance, driver, run, new)
    return {"warnings": outcome.warnings or None, "recovery_point": point, "extended_info": extended}


def _instance_to_back_up(job: Job) -> BackupInstance:
    instance = (BackupInstance.objects.select_related("vault__identity", "vault__region", "policy")
                .filter(pk=job.instance_id).first())
    if instance is None:
        raise jobs.JobError("UserErrorBackupInstanceNotFound", "The backup instance no longer exists.")
    if instance.protection_state not in PROTECTED_FOR_BACKUP:
        raise jobs.JobError("UserErrorBackupInstanceNotProtected",
                            f"'{instance.name}' is {instance.get_protection_state_display().lower()}: nothing was backed up.")
    return instance


def _authorize_run(job: Job, instance: BackupInstance) -> None:
    actor = job.initiated_by if job.is_user_triggered and job.initiated_by_id else None
    if actor is None:
        actor = ensure_system_access()
    authorize_run(job, actor, BACKUP_ACTION, instance, denied_code="UserErrorBackupNotAuthorized",
                  details={"instance": instance.name},
                  change={"scheduled_time": job.scheduled_time.isoformat() if job.scheduled_time else None})


def _back_up(job: Job, instance: BackupInstance, driver, run: RunContext, new: NewPoint):
    """Run the driver and commit the recovery point; whatever stops the run removes what it committed
    (a known failure ends the job with its code)."""
    from vaults.store import Cancelled, LockError, StorageFull

    try:
        outcome = driver.backup(instance, run)
        run.check_cancel()  # a cancel that arrived after the last chunk still wins: nothing is kept
        point, extended = _commit_point(job, instance, driver, run, outcome, new)
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
    return outcome, point, extended


def _commit_point(job: Job, instance: BackupInstance, driver, run: RunContext, outcome, new: NewPoint):
    """The recovery point and the job's end, in one transaction: a job that someone else already ended
    (the reconciler, after a lost heartbeat) must not leave a second point behind."""
    vault = instance.vault
    with transaction.atomic():
        point = RecoveryPoint.objects.create(
            instance=instance, recovery_point_time=new.time, datastore=driver.datastore,
            policy_name=instance.policy.name, rule_name=instance.policy.parsed.backup_rule_name,
            retention_tag=new.rule.tag, expiry_time=new.expiry, state=RecoveryPoint.State.COMPLETED,
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
        driver.finalize(instance, outcome, run, new.time)
        if outcome.snapshot_resource_id:
            point.snapshot_resource_id = outcome.snapshot_resource_id
            point.save(update_fields=["snapshot_resource_id"])
        extended = {
            "retentionTag": new.rule.tag, "dataTransferredInBytes": outcome.transferred_bytes,
            "storedBytes": outcome.stored_bytes, "logicalBytes": outcome.logical_bytes,
            "recoveryPointId": str(point.pk), "recoveryPointTime": new.time.isoformat(),
            "expiryTime": new.expiry.isoformat(), "items": outcome.manifests, "warnings": outcome.warnings,
        }
        if replication.wants_replica(vault, point):  # geo-redundant: the secondary copy follows
            extended["replicationJobId"] = str(replication.start_replication(job, point).pk)
        status = JobStatus.COMPLETED_WITH_WARNINGS if outcome.warnings else JobStatus.COMPLETED
        if job.extended_info and job.extended_info.get("leftoversDeferred"):
            extended["leftoversDeferred"] = job.extended_info["leftoversDeferred"]
        if not jobs.finish(job, status, recovery_point=point, extended_info=extended, retention_tag=new.rule.tag,
                           bytes_done=max(job.bytes_done, run.bytes_base), items_done=max(job.items_done, run.items_base)):
            raise jobs.JobError("JobAlreadyEnded", "The job had already ended elsewhere; this run's data was discarded.")
        if run.point_retain_until is not None:  # last: the point exists once this transaction commits
            retain_point_snapshots(run, run.point_retain_until, run.retention_mode)
    return point, extended


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


def retain_point_snapshots(run: RunContext, until, mode: str) -> None:
    """Give the committed snapshots of a recovery point their retain-until (immutable vaults), as the
    point's row is committed: inside its transaction, so a failure here leaves no point; the manifest
    is the last object retained, so a snapshot left behind by a failure stays deletable."""
    for open_store, snapshot_id in run.committed:
        with open_store() as store:
            store.set_snapshot_retention(snapshot_id, until, mode)


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


def _reclaim_after_failure(job: Job) -> None:
    """A failed backup is followed by a Retention job for its vault, which removes what the attempt
    left (snapshots, packs another crash left) and garbage-collects its stores."""
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
