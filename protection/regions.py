"""Primary and secondary region of backup instances and jobs (reference §3.7): what the Backup instances and
Jobs lists filter by (**Instance Region**: Primary Region / Secondary Region) and the replication lag each
instance shows. The rules of a restore to the secondary region are `protection.restores.cross_region`'s.

A geo-redundant vault copies each vault-tier recovery point to its paired region (`backups.replication`);
``RecoveryPoint.secondary_copied_at`` says when that copy was completed and verified. While the vault's
**Cross Region Restore** setting is Enabled, its instances with such points are *secondary-region instances*.
A restore run in the secondary region is a Restore job whose parameters carry ``crossRegionRestore``.
"""

from __future__ import annotations

from protection import datasource_types
from protection.models import RecoveryPoint

PRIMARY = "Primary"
SECONDARY = "Secondary"
REGION_CHOICES = [(PRIMARY, "Primary Region"), (SECONDARY, "Secondary Region")]
JOB_FLAG = "crossRegionRestore"  # Job.parameters key of a restore run in the secondary region
# Elastic SAN and Azure Disk points are snapshots in the operational tier: never copied to the paired region
OPERATIONAL_LAG = "Not replicated: operational-tier snapshots stay in the primary region"


def parse(value: str) -> str:
    """A query's Instance Region ('' when absent or unknown)."""
    return value if value in (PRIMARY, SECONDARY) else ""


def enabled(vault) -> bool:
    from vaults.models import CrossRegionRestoreState

    return (vault.is_geo_redundant and vault.secondary_region is not None
            and vault.cross_region_restore_state == CrossRegionRestoreState.ENABLED)


def secondary_instances(instances):
    """Of ``instances``: those in vaults with Cross Region Restore enabled that have a point copied to the
    secondary region (the Backup instances list filtered to Secondary Region)."""
    from vaults.models import CrossRegionRestoreState, StorageRedundancy

    return instances.filter(
        vault__storage_redundancy=StorageRedundancy.GEO_REDUNDANT,
        vault__region__paired_region__isnull=False,
        vault__cross_region_restore_state=CrossRegionRestoreState.ENABLED,
        recovery_points__secondary_copied_at__isnull=False,
        recovery_points__datastore=RecoveryPoint.Datastore.VAULT,
    ).distinct()


def secondary_points(points):
    """Of ``points``: those whose secondary copy exists (archived points never: CRR is not from archive)."""
    return points.filter(secondary_copied_at__isnull=False, datastore=RecoveryPoint.Datastore.VAULT)


def secondary_restore_problem(instance) -> str:
    """Why **Restore to secondary region** is not offered for a secondary-region instance ('' when it is)."""
    if instance.datasource_type != datasource_types.POSTGRES_FLEX:
        label = datasource_types.get(instance.datasource_type).label
        return (f"Cross Region Restore is available only for PostgreSQL servers; {label} backups are restored in "
                "the primary region.")
    if instance.is_soft_deleted:
        return "The backup instance is soft deleted: undelete it first."
    return ""


def is_cross_region(job) -> bool:
    return bool((job.parameters or {}).get(JOB_FLAG))


def region_of_job(job) -> str:
    return SECONDARY if is_cross_region(job) else PRIMARY


def filter_jobs(jobs, region: str):
    """The Jobs list's Instance Region filter."""
    if region == SECONDARY:
        return jobs.filter(**{f"parameters__{JOB_FLAG}": True})
    if region == PRIMARY:
        return jobs.exclude(**{f"parameters__{JOB_FLAG}": True})
    return jobs


def with_lag(instances):
    """``instances`` annotated with what `lag_text` reads (one query for a page, not one per row)."""
    from django.db.models import OuterRef, Subquery

    latest = (RecoveryPoint.objects.filter(instance=OuterRef("pk"), datastore=RecoveryPoint.Datastore.VAULT)
              .order_by("-recovery_point_time"))
    copied = latest.filter(secondary_copied_at__isnull=False)
    return instances.annotate(lag_latest_time=Subquery(latest.values("recovery_point_time")[:1]),
                              lag_latest_copied_at=Subquery(latest.values("secondary_copied_at")[:1]),
                              lag_last_copied_time=Subquery(copied.values("recovery_point_time")[:1]))


def lag_text(instance, now=None) -> str:
    """The instance's replication lag: "last copy 2 h behind" (the latest vault-tier point's secondary copy
    time against its primary time), "last copy 1 d 3 h behind (the latest recovery point is not copied yet)",
    or "Not replicated yet"; for an operational-tier datasource (Elastic SAN, Azure Disk) `OPERATIONAL_LAG`;
    '' when there is no secondary copy to speak of (not geo-redundant, or no vault-tier point yet). Reads `with_lag`'s annotations when the instance has them."""
    from security import clock

    vault = instance.vault
    if not vault.is_geo_redundant or vault.region.paired_region_id is None:
        return ""
    if datasource_types.get(instance.datasource_type).datastore == RecoveryPoint.Datastore.OPERATIONAL:
        return OPERATIONAL_LAG
    if not hasattr(instance, "lag_latest_time"):
        instance = with_lag(type(instance).objects.filter(pk=instance.pk)).select_related("vault__region").get()
    if instance.lag_latest_time is None:
        return ""
    if instance.lag_latest_copied_at is not None:
        return f"last copy {_span(instance.lag_latest_copied_at - instance.lag_latest_time)} behind"
    if instance.lag_last_copied_time is None:
        return "Not replicated yet"
    behind = (now or clock.now()) - instance.lag_last_copied_time
    return f"last copy {_span(behind)} behind (the latest recovery point is not copied yet)"


def _span(delta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return "under 1 min"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h" + (f" {seconds % 3600 // 60} min" if seconds % 3600 >= 60 and seconds < 36000 else "")
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"
