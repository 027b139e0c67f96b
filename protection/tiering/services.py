"""Move to archive: a recovery point's engine snapshots copied into the vault's archive store, verified
there, then removed from the standard store (garbage collection frees the space), and the point marked
``ArchiveStore`` — by a person (**Move to archive** on an eligible point) or by the policy's tiering rule
(the retention schedule, as the system principal).

Order of a Tiering job: copy and verify every snapshot (the point is still Vault-standard: a failed or
cancelled job leaves it there, whole; the archive's partial copy is garbage its next GC reclaims) → mark
the point ``ArchiveStore`` with its manifests pointing at the archive store → remove the standard copies.
A re-run of a job that died after the mark only removes what is left of the standard copies.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from protection import datasource_types
from protection.jobs import runner as jobs
from protection.jobs.authorize import authorize_run
from protection.models import Job, JobCategory, JobOperation, JobStatus, RecoveryPoint
from protection.policy_rules import PolicyError, tiering_rules
from protection.archive_eligibility import ineligible_reason
from security import clock
from security import operations as ops
from security.audit import caller_label, guarded
from security.guards import GuardDenied

POLICY_BATCH = 50  # points the retention schedule moves per run at most


def tiering_role():
    """The system principal's role for the policy's tiering rule and a rehydrated copy's end."""
    from protection.system_access import SystemRole

    return SystemRole(
        "Strongroom Archive Tiering",
        (ops.VAULT_READ, ops.INSTANCE_READ, ops.RECOVERY_POINT_READ, ops.POLICY_READ, ops.JOB_READ,
         ops.RECOVERY_POINT_MOVE),
        "Held by the Strongroom system principal only: moves recovery points to the archive tier by their policy's "
        "tiering rule and removes rehydrated copies at the end of their duration. Do not assign it to people.",
        "Strongroom: archive tiering",
    )


def system_principal():
    from protection.system_access import ensure_system_role

    return ensure_system_role(tiering_role())


# =================================================================================================
# Move to archive
# =================================================================================================


def _tiering_job(point, principal, *, user_triggered: bool, reason: str) -> Job:
    instance = point.instance
    return Job(
        vault=instance.vault, instance=instance, instance_name=instance.name, datasource_type=instance.datasource_type,
        datasource_name=instance.datasource_name, operation=JobOperation.TIERING, category=JobCategory.TIERING,
        status=JobStatus.IN_PROGRESS, is_user_triggered=user_triggered, initiated_by=principal,
        initiated_by_name=caller_label(principal) if user_triggered else "Tiering rule (policy)",
        recovery_point=point, start_time=clock.now(),
        parameters={"recoveryPointId": str(point.pk), "sourceDataStoreName": "VaultStore",
                    "destinationDataStoreName": "ArchiveStore", "reason": reason},
        extended_info={"recoveryPointTime": point.recovery_point_time.isoformat()},
    )


def move_to_archive(principal, point: RecoveryPoint, *, reason: str = "Move to archive") -> Job:
    """**Move to archive**: refuse an ineligible point with its reason, else create and enqueue a Tiering job."""
    details = {"instance": point.instance.name, "recoveryPointId": str(point.pk),
               "recoveryPointTime": point.recovery_point_time.isoformat(), "reason": reason}
    change = {"datastore": point.datastore, "targetDataStore": RecoveryPoint.Datastore.ARCHIVE}
    with guarded(principal, ops.RECOVERY_POINT_MOVE, point, change=change, details=details) as op:
        row = RecoveryPoint.objects.select_for_update().select_related("instance__vault").filter(pk=point.pk).first()
        if row is None:
            raise ValidationError("UserErrorRecoveryPointNotFound: The recovery point no longer exists.",
                                  code="UserErrorRecoveryPointNotFound")
        why = ineligible_reason(row)
        if why:
            raise ValidationError(f"UserErrorRecoveryPointNotEligibleForArchive: {why}.",
                                  code="UserErrorRecoveryPointNotEligibleForArchive")
        job = _tiering_job(row, principal, user_triggered=reason == "Move to archive", reason=reason)
        job.save()
        op.details["jobId"] = str(job.pk)
        jobs.enqueue(job)
    return job


def copy_point(point, source, target, job_progress, *, label: str, retention: bool = True, manifests=None,
               unverified=None, count_bytes: bool = False) -> list:
    """Copy every engine snapshot of ``point`` (or of ``manifests``) from store ``source`` to ``target`` (same
    keys), each verified in the target; progress reads "<item>: <label>" (with the bytes copied when
    ``count_bytes``). A copy that does not verify raises ``unverified(item, errors)`` (by default the
    tiering's: the point was not moved). Returns the per-snapshot reports. Raises JobCancelled, JobError."""
    from vaults.store import Cancelled

    cancelled = {"flag": False}

    def engine_progress(item):
        def callback(p):
            counts = {"bytes_done": p.bytes_done} if count_bytes else {}
            try:
                job_progress(items_done=p.items_done, items_total=p.items_total, **counts,
                             current_item=f"{item}: {label}")
            except jobs.JobCancelled:
                cancelled["flag"] = True
        return callback

    if manifests is None:
        manifests = point.manifests or [{"id": point.manifest_id, "item": point.instance.datasource_name}]
    reports = []
    try:
        for manifest in manifests:
            report = source.replicate(manifest["id"], target, verify=True, progress=engine_progress(manifest["item"]),
                                      cancel=lambda: cancelled["flag"], retention=retention)
            if report.verified is False:
                errors = "; ".join(report.verify_errors[:5])
                raise (unverified or _not_moved(label))(manifest["item"], errors)
            reports.append({"item": manifest["item"], "summary": report.summary(), "bytes": report.bytes_copied})
    except Cancelled:
        raise jobs.JobCancelled() from None
    return reports


def _not_moved(label: str):
    def error(item: str, errors: str) -> jobs.JobError:
        return jobs.JobError("UserErrorTieringVerificationFailed",
                             f"The copy of {item} did not verify ({label}): {errors} The recovery point was not moved.")
    return error


def _point_for(job) -> RecoveryPoint:
    point = (RecoveryPoint.objects.select_related("instance__vault").filter(pk=(job.parameters or {}).get("recoveryPointId"))
             .first())
    if point is None:
        raise jobs.JobError("UserErrorRecoveryPointNotFound", "The recovery point was deleted before it moved; nothing changed.")
    return point


def run_tiering_job(job: Job, progress: jobs.Progress) -> dict:
    """The TIERING job handler (see the module docstring)."""
    from protection.deletion.point_data import reclaim
    from vaults.storage import open_archive_store, open_store

    point = _point_for(job)
    vault = point.instance.vault
    authorize_run(job, job.initiated_by if job.is_user_triggered else system_principal(), ops.RECOVERY_POINT_MOVE, point,
                  denied_code="UserErrorRecoveryPointMoveNotAuthorized",
                  details={"instance": point.instance.name, "recoveryPointId": str(point.pk)},
                  change={"datastore": point.datastore, "targetDataStore": RecoveryPoint.Datastore.ARCHIVE})
    reports = []
    if point.datastore == RecoveryPoint.Datastore.VAULT:
        progress(current_item="Copying to the archive tier", force=True)
        with open_store(vault) as standard, open_archive_store(vault, create=True) as archive:
            reports = copy_point(point, standard, archive, progress, label="copying to Vault-archive", retention=True)
        progress(current_item="Verified in the archive tier", force=True)
        with transaction.atomic():
            row = RecoveryPoint.objects.select_for_update().filter(pk=point.pk).first()
            if row is None:
                raise jobs.JobError("UserErrorRecoveryPointNotFound",
                                    "The recovery point expired while it moved; its archive copy is reclaimed by GC.")
            row.manifests = [{**m, "store": "archive"} for m in (row.manifests or [])]
            row.datastore, row.archived_at = RecoveryPoint.Datastore.ARCHIVE, clock.now()
            row.save(update_fields=["manifests", "datastore", "archived_at"])
        point = row
    elif point.datastore != RecoveryPoint.Datastore.ARCHIVE:
        raise jobs.JobError("UserErrorRecoveryPointNotEligibleForArchive",
                            f"The recovery point is in {point.get_datastore_display()}, which has no archive tier.")
    removed = _remove_standard_copy(point)
    try:
        progress(current_item="Reclaiming space", phase="reclaim", force=True)
    except jobs.JobCancelled:  # the point is in the archive tier already: too late to cancel, the space is reclaimed
        pass
    gc = reclaim([lambda: open_store(vault)])
    return {"extended_info": {**(job.extended_info or {}), "copies": reports, "bytesCopied": sum(r["bytes"] for r in reports),
                              "standardCopiesRemoved": removed, "gc": gc,
                              "sourceDataStoreName": "VaultStore", "destinationDataStoreName": "ArchiveStore"},
            "bytes_done": sum(r["bytes"] for r in reports)}


def _remove_standard_copy(point) -> int:
    """Delete the point's snapshots from the standard store (their archive copies carry the retention)."""
    from vaults.storage import open_store
    from vaults.store import NotFound, RetentionError

    removed = 0
    with open_store(point.instance.vault) as standard:
        for manifest in point.manifests or []:
            try:
                standard.delete_snapshot(manifest["id"], bypass_governance=True)
                removed += 1
            except NotFound:
                continue
            except RetentionError as exc:
                raise jobs.JobError("UserErrorRecoveryPointRetained",
                                    f"The standard copy is under compliance retention ({exc}); the point is in the "
                                    "archive tier and its standard copy is removed once the retention ends.") from None
    return removed


# =================================================================================================
# The policy's tiering rule (run by the retention schedule)
# =================================================================================================


def points_due_for_tiering(now=None, limit: int = POLICY_BATCH) -> list:
    """Vault-standard points whose policy's tiering rule says they move now, and may."""
    from protection.models import BackupInstance, ProtectionState

    # as retention: while protection is configured or suspended (a soft-deleted or stopped instance keeps its tier)
    active = [ProtectionState.CONFIGURED, ProtectionState.BACKUPS_SUSPENDED, ProtectionState.PROTECTION_ERROR,
              ProtectionState.UPDATING]

    now = now or clock.now()
    due = []
    for instance in (BackupInstance.objects.filter(datasource_type=datasource_types.POSTGRES_FLEX,
                                                   protection_state__in=active)
                     .select_related("policy", "vault")):
        try:
            rules = tiering_rules(instance.policy.policy_rules)
        except PolicyError:
            continue
        for point in instance.recovery_points.filter(datastore=RecoveryPoint.Datastore.VAULT, retention_tag__in=list(rules),
                                                     expired_at__isnull=True):
            if rules[point.retention_tag].move_at(point.recovery_point_time) <= now and not ineligible_reason(point, now):
                due.append(point)
                if len(due) >= limit:
                    return due
    return due


def start_policy_tiering(now=None) -> list:
    """A Tiering job for each point its policy's tiering rule moves now (the system principal acts)."""
    due = points_due_for_tiering(now)
    if not due:
        return []
    system = system_principal()
    started = []
    for point in due:
        try:
            started.append(move_to_archive(system, point, reason="Tiering rule").pk)
        except (GuardDenied, ValidationError):  # logged by guarded; the next run tries again
            continue
    return started
