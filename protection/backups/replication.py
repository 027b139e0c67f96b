"""Geo-redundant vaults: after each backup, a Replication job copies the recovery point to the
paired region's store (the engine's replication: resumable, idempotent, every copied object read
back, the replica's copy verified in full), and the recovery point then lists both copies.

Only vault-tier points are replicated; Elastic SAN snapshots (operational tier) stay in their
snapshot resource group, as in Azure. A failed or cancelled replication leaves the point with its
primary copy only; running the job again resumes where it stopped.
"""

from __future__ import annotations

from django.db import transaction

from protection.jobs import runner as jobs
from protection.models import Job, JobCategory, JobOperation, RecoveryPoint
from protection.tiering import services as tiering
from security import clock


def wants_replica(vault, point: RecoveryPoint) -> bool:
    return (vault.is_geo_redundant and vault.secondary_region is not None
            and point.datastore == RecoveryPoint.Datastore.VAULT)


def start_replication(backup_job: Job, point: RecoveryPoint) -> Job:
    """Create and enqueue (on commit) the Replication job of ``point`` (inside the backup's transaction)."""
    vault = backup_job.vault
    job = Job.objects.create(
        vault=vault, instance=backup_job.instance, instance_name=backup_job.instance_name,
        datasource_type=backup_job.datasource_type, datasource_name=backup_job.datasource_name,
        operation=JobOperation.REPLICATION, category=JobCategory.BACKUP, is_user_triggered=False,
        initiated_by_name="Geo-replication (after backup)", start_time=clock.now(),
        parameters={"recoveryPointId": str(point.pk), "backupJobId": str(backup_job.pk),
                    "targetRegion": vault.secondary_region.pk},
    )
    jobs.enqueue(job)
    return job


def _refuse_shared_disk() -> None:
    """Production refuses to copy the secondary region into the primary's own tree (lab mode warns only)."""
    from django.conf import settings

    from vaults.storage import SECONDARY_INSIDE, secondary_root_problem

    kind, problem = secondary_root_problem()
    if kind == SECONDARY_INSIDE and not settings.STRONGROOM_LAB_MODE:
        raise jobs.JobError("UserErrorSecondaryStorageNotSeparate",
                            f"{problem} Set STRONGROOM_SECONDARY_ROOT to storage on another disk or host, restart, "
                            "and run the replication again.")


def run_replication_job(job: Job, progress: jobs.Progress) -> dict:
    """The REPLICATION job handler."""
    from vaults.storage import open_secondary_store, open_store

    point = RecoveryPoint.objects.select_related("instance__vault__region").filter(
        pk=job.parameters.get("recoveryPointId")).first()
    if point is None:
        raise jobs.JobError("UserErrorRecoveryPointNotFound", "The recovery point was deleted before it was replicated.")
    vault = point.instance.vault
    region = vault.secondary_region
    if region is None:
        raise jobs.JobError("UserErrorNoPairedRegion", f"The vault's region {vault.region.display_name} has no paired region.")
    _refuse_shared_disk()
    region_name = region.display_name

    def unverified(item: str, errors: str) -> jobs.JobError:
        return jobs.JobError("UserErrorReplicaVerificationFailed", f"The copy of {item} in {region_name} did not verify: {errors}")

    with open_store(vault) as primary, open_secondary_store(vault, create=True) as replica:
        reports = tiering.copy_point(point, primary, replica, progress, label=f"copying to {region_name}",
                                     manifests=point.manifests, unverified=unverified, count_bytes=True)
    with transaction.atomic():
        locked = RecoveryPoint.objects.select_for_update().filter(pk=point.pk).first()
        if locked is None:  # expired meanwhile: the copy is garbage for the replica's next GC
            raise jobs.JobError("UserErrorRecoveryPointNotFound", "The recovery point was deleted while it was replicated.")
        copies = [c for c in locked.copies if c.get("role") != "secondary"]
        copied_at = clock.now()
        copies.append({"region": region.pk, "role": "secondary", "store": "vault", "verified": True,
                       "replicatedAt": copied_at.isoformat()})
        locked.copies = copies
        locked.secondary_copied_at = copied_at
        locked.save(update_fields=["copies", "secondary_copied_at"])
    return {"extended_info": {"targetRegion": region.pk, "items": reports,
                              "bytesCopied": sum(r["bytes"] for r in reports)},
            "bytes_done": sum(r["bytes"] for r in reports)}
