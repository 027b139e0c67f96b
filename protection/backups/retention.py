"""Retention: expiring recovery points when their time has come, and reclaiming the space.

`start_retention_runs` (Celery beat, every 10 minutes) creates one Retention job per vault that has
something to expire — recovery points past their expiry, or Elastic SAN and Azure Disk instances above
the 450-point limit — and the job handler `run_retention_job` expires them one by one as the *system
principal*, through `expire_recovery_point`, i.e. through `guarded` and every guard (a future
immutability or soft-delete guard can refuse it; a refusal is logged and the point stays).

Expiring a point deletes its engine snapshots from the store first, then the row: if the process
dies in between, the next run finds the row again and the snapshots already gone (NotFound is
fine), so nothing is left half-deleted. A store that still holds a retention lock (immutable vault
while the lab clock ran ahead of the real one) defers the deletion instead of failing. Elastic SAN
snapshots are also removed from the inventory, by the vault identity (as Azure's service does with
its Disk Snapshot Contributor rights).

Space is reclaimed by the engine's garbage collection on every store a run touched (the vault's, its
secondary copy's, an operational store); the engine keeps what is newer than its safety window or
retained, and a store busy with backups is collected at the next run.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Q

from protection import datasource_types
from protection.backups.leftovers import FAILED_BEFORE_WRITING, remove_attempt_leftovers
from protection.deletion.point_data import Deferred, delete_inventory_snapshot, delete_snapshots, reclaim
from protection.jobs import runner as jobs
from protection.models import RETENTION_STATES, BackupInstance, Job, JobCategory, JobOperation, JobStatus, RecoveryPoint
from security import clock
from security.audit import guarded
from security.guards import GuardDenied
from security.operations import RECOVERY_POINT_DELETE

logger = logging.getLogger(__name__)


# Retention runs while protection is configured or suspended (protection.models.RETENTION_STATES).
ESAN_POINT_LIMIT = datasource_types.get(datasource_types.ELASTIC_SAN).max_recovery_points  # 450
# Types whose snapshots are capped (Elastic SAN, Azure Disk: 450 each): the oldest above the cap go.
POINT_LIMITS = {t.api_name: t.max_recovery_points for t in datasource_types.TYPES.values() if t.max_recovery_points}


def _due(now):
    """Points to expire: past their expiry now, or already recorded as expired (``expired_at``) by an
    earlier run — a recorded expiry stands even if the lab clock has since moved back."""
    return RecoveryPoint.objects.filter(Q(expiry_time__lte=now) | Q(expired_at__isnull=False),
                                        instance__protection_state__in=RETENTION_STATES)


def record_expiries(now) -> int:
    """Record ``expired_at`` on every point past its expiry at ``now`` (idempotent). Also the lab
    clock's settler: run before the clock moves back."""
    return RecoveryPoint.objects.filter(expiry_time__lte=now, expired_at__isnull=True,
                                        instance__protection_state__in=RETENTION_STATES).update(expired_at=now)


def _over_limit_instances(vault_id=None):
    over = Q()
    for kind, limit in POINT_LIMITS.items():
        over |= Q(datasource_type=kind, points__gt=limit)
    qs = BackupInstance.objects.filter(datasource_type__in=list(POINT_LIMITS), protection_state__in=RETENTION_STATES)
    if vault_id is not None:
        qs = qs.filter(vault_id=vault_id)
    return qs.annotate(points=Count("recovery_points")).filter(over)


LEFTOVER_BATCH = 50  # failed backup jobs cleaned up per run


def _failed_backups(vault_id=None, *, now=None, also=None):
    """Failed backup jobs whose leftovers were not removed yet, and backup jobs whose deferred
    leftovers' retention has ended (a failed attempt's snapshots, its packs: removed, then garbage-collected). ``also``: the
    id of a backup job that is failing right now (its row is marked Failed once its handler returns)."""
    now = now or clock.now()
    failed = Job.objects.filter(operation=JobOperation.BACKUP, status=JobStatus.FAILED)
    if vault_id is not None:
        failed = failed.filter(vault_id=vault_id)
    fresh = list(failed.exclude(extended_info__has_key="leftoversRemoved").exclude(error_code__in=sorted(FAILED_BEFORE_WRITING))
                 .order_by("end_time")[:LEFTOVER_BATCH])
    if also and not any(str(j.pk) == also for j in fresh):
        fresh += list(Job.objects.filter(pk=also, vault_id=vault_id, operation=JobOperation.BACKUP,
                                         status__in=[JobStatus.FAILED, JobStatus.IN_PROGRESS, JobStatus.CANCELLING]))
    # deferred leftovers are recorded on whichever job met them (a re-run that completed, too)
    ended = Job.objects.filter(operation=JobOperation.BACKUP, status__in=[
        JobStatus.FAILED, JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_WARNINGS, JobStatus.CANCELLED])
    if vault_id is not None:
        ended = ended.filter(vault_id=vault_id)
    due = [j for j in ended.filter(extended_info__has_key="leftoversDeferred").order_by("end_time")
           if _deferred_due(j.extended_info.get("leftoversDeferred") or [], now)]
    picked = {j.pk for j in fresh}
    return fresh + [j for j in due if j.pk not in picked][:LEFTOVER_BATCH]


def _deferred_due(deferred, now) -> bool:
    import datetime as dt

    for item in deferred:
        until = item.get("retainUntil")
        if until is None or dt.datetime.fromisoformat(until) <= now:
            return True
    return False


def start_retention_runs(*, now=None) -> list[Job]:
    """Create (and enqueue) a Retention job for each vault with work, unless one is already running."""
    now = now or clock.now()
    record_expiries(now)
    vault_ids = set(_due(now).values_list("instance__vault_id", flat=True).distinct())
    vault_ids |= set(_over_limit_instances().values_list("vault_id", flat=True))
    vault_ids |= {j.vault_id for j in _failed_backups(now=now)}
    return _start_runs(vault_ids, now)


def start_retention_run(vault, *, failed_job=None, now=None) -> list[Job]:
    """A Retention job for one vault now; after a failed backup it removes that job's leftovers (even
    before the job row shows Failed) and garbage-collects the vault's stores."""
    extra = {"failedBackupJobId": str(failed_job.pk)} if failed_job is not None else {}
    return _start_runs({vault.pk}, now or clock.now(), extra)


def _start_runs(vault_ids, now, extra=None) -> list[Job]:
    from protection.system_access import ensure_system_access

    if not vault_ids:
        return []
    system = ensure_system_access()
    busy = set(Job.objects.filter(vault_id__in=vault_ids, operation=JobOperation.RETENTION,
                                  status__in=[JobStatus.IN_PROGRESS, JobStatus.CANCELLING])
               .values_list("vault_id", flat=True))
    created = []
    from vaults.models import BackupVault

    for vault in BackupVault.objects.filter(pk__in=vault_ids - busy):
        with transaction.atomic():
            job = Job.objects.create(
                vault=vault, operation=JobOperation.RETENTION, category=JobCategory.MANAGEMENT,
                initiated_by=system, initiated_by_name="Retention schedule", start_time=clock.now(),
                parameters={"until": now.isoformat(), **(extra or {})},
            )
            jobs.enqueue(job)
        created.append(job)
    return created


def expire_recovery_point(principal, rp: RecoveryPoint, *, reason: str) -> set:
    """Delete one recovery point (its snapshots, then its row) as ``principal``, through the guards.

    ``reason`` is "expired" (past its expiry) or "limit" (above the 450-point limit of Elastic SAN and Azure Disk).
    Returns {store key: opener} of the stores a GC may now reclaim. Raises `Deferred`, `GuardDenied`.
    """
    # A recorded expiry is judged at the moment it was recorded, whatever the clock reads now.
    now = max(clock.now(), rp.expired_at) if rp.expired_at else clock.now()
    change = {"reason": reason, "expiry_time": rp.expiry_time.isoformat() if rp.expiry_time else None,
              "datastore": rp.datastore, "now": now.isoformat()}
    details = {"instance": rp.instance.name, "recoveryPointTime": rp.recovery_point_time.isoformat(),
               "retentionTag": rp.retention_tag, "reason": reason}
    with guarded(principal, RECOVERY_POINT_DELETE, rp, change=change, details=details):
        locked = RecoveryPoint.objects.select_for_update().filter(pk=rp.pk).first()
        if locked is None:
            return {}
        if reason == "expired" and locked.expired_at is None and (
                locked.expiry_time is None or locked.expiry_time > clock.now()):
            raise ValidationError("This recovery point is not due to expire (its retention changed).")
        if rp.datastore == RecoveryPoint.Datastore.OPERATIONAL:
            delete_inventory_snapshot(rp)  # as the vault identity; refused if it lost its rights
        from vaults.models import ImmutabilityState

        # Immutability disabled since the point was written: its governance lock no longer binds.
        bypass = rp.instance.vault.immutability_state == ImmutabilityState.DISABLED
        touched = delete_snapshots(rp, bypass_governance=bypass)
        Job.objects.filter(recovery_point=rp).update(recovery_point=None)
        locked.delete()
    return touched


def _remove_leftovers_of_failed_jobs(vault, now, also=None) -> tuple[int, list, list]:
    """Snapshots committed by failed backup attempts (a worker that died, a failure after an item was
    written): removed, or deferred while the store still retains them. Returns (removed, deferred,
    store openers to garbage-collect)."""
    removed, deferred, openers = 0, [], []
    for failed in _failed_backups(vault.pk, now=now, also=also):
        result = remove_attempt_leftovers(failed)
        info = dict(Job.objects.filter(pk=failed.pk).values_list("extended_info", flat=True).first() or {})
        info["leftoversRemoved"] = info.get("leftoversRemoved", 0) + result.removed
        if result.deferred:
            info["leftoversDeferred"] = result.deferred
            deferred += [{"jobId": str(failed.pk), **d} for d in result.deferred]
        else:
            info.pop("leftoversDeferred", None)
        Job.objects.filter(pk=failed.pk).update(extended_info=info)
        removed += result.removed
        openers += result.openers
    return removed, deferred, openers


def run_retention_job(job: Job, progress: jobs.Progress) -> dict:
    """The RETENTION job handler: expire what is due in ``job.vault`` (and the 450-point excess)."""
    from protection.system_access import ensure_system_access

    system = ensure_system_access()
    now = clock.now()
    due = list(_due(now).filter(instance__vault=job.vault).select_related("instance__vault__identity")
               .order_by("expiry_time"))
    excess, due_pks = [], {rp.pk for rp in due}
    for instance in _over_limit_instances(job.vault_id):
        keep = set(instance.recovery_points.order_by("-recovery_point_time")
                   .values_list("pk", flat=True)[:POINT_LIMITS[instance.datasource_type]])
        excess += [rp for rp in instance.recovery_points.select_related("instance__vault__identity")
                   .order_by("recovery_point_time") if rp.pk not in keep and rp.pk not in due_pks]
    work = [(rp, "expired") for rp in due] + [(rp, "limit") for rp in excess]
    progress(items_total=len(work), items_done=0, force=True)
    expired, deferred, refused, touched = 0, [], [], {}
    per_instance = defaultdict(int)
    for n, (rp, reason) in enumerate(work, start=1):
        progress(items_done=n - 1, current_item=f"{rp.instance.name} @ {rp.recovery_point_time:%Y-%m-%d %H:%M}")
        try:
            touched.update(expire_recovery_point(system, rp, reason=reason))
            expired += 1
            per_instance[rp.instance.name] += 1
        except Deferred as exc:
            deferred.append(f"{rp.instance.name} @ {rp.recovery_point_time.isoformat()}: {exc}")
        except (GuardDenied, ValidationError) as exc:
            refused.append(f"{rp.instance.name} @ {rp.recovery_point_time.isoformat()}: {exc}")
    leftovers, leftovers_deferred, failed_stores = _remove_leftovers_of_failed_jobs(
        job.vault, now, also=(job.parameters or {}).get("failedBackupJobId"))
    progress(items_done=len(work), current_item="Reclaiming space", phase="reclaim", force=True)
    gc_reports = reclaim(list(touched.values()) + failed_stores)
    info = {"expired": expired, "byInstance": dict(per_instance), "deferred": deferred, "refused": refused,
            "leftoverSnapshotsRemoved": leftovers, "leftoversDeferred": leftovers_deferred,
            "gc": gc_reports}
    warnings = deferred + refused + [
        f"Snapshot {d['snapshotId']} left by the failed backup job {d['jobId']} is under {d['mode']} retention until "
        f"{d['retainUntil']}; it is deleted by the first retention run after that." for d in leftovers_deferred]
    return {"warnings": warnings or None, "extended_info": info, "items_done": len(work)}


def pending_summary(vault) -> dict:
    """For pages: how many points of ``vault`` are past their expiry and waiting for the next run."""
    now = clock.now()
    return {"due": _due(now).filter(instance__vault=vault).count()}
