"""Which recovery points may move to the vault-archive tier, and the reason a point may not.

Azure lists no Backup-vault workload as eligible (reference §3.6), so Strongroom follows the Recovery
Services rule for full backups: a **PostgreSQL** point in **Vault-standard**, at least **3 months** old, with
at least **6 months** of retention left. Azure Data Lake Storage has no archive tier; Elastic SAN and Azure Disk points are
operational-tier snapshots, which never reach the vault. Each refusal is said in words on the page.
"""

from __future__ import annotations

from protection import datasource_types
from protection.models import JobOperation, JobStatus, RecoveryPoint
from protection.policy_rules import TIERING_MIN_AGE, TIERING_MIN_LEFT
from security import clock

ADLS_REASON = "Archive isn't supported for Azure Data Lake Storage"
OPERATIONAL_REASON = "Archive isn't supported for operational-tier snapshots ({label}): they never reach the vault"
LOCKED_REASON = ("This vault's immutability is locked: its Vault-standard copies can't be removed before they "
                 "expire, so points can't move to archive")


def _days(delta) -> str:
    days = int(delta.total_seconds() // 86400)
    return f"{days} day{'s' if days != 1 else ''}"


def ineligible_reason(point: RecoveryPoint, now=None, *, running: set | None = None) -> str:
    """'' when ``point`` may move to archive now, else why not (a sentence without a final stop).

    ``running``: ids of points with a Tiering job in progress (a list page asks once for all of them)."""
    from vaults.models import ImmutabilityState

    now = now or clock.now()
    kind = point.instance.datasource_type
    if point.datastore == RecoveryPoint.Datastore.ARCHIVE:
        return "Already in the archive tier (Vault-archive)"
    if kind == datasource_types.ADLS:
        return ADLS_REASON
    if kind != datasource_types.POSTGRES_FLEX or point.datastore != RecoveryPoint.Datastore.VAULT:
        label = datasource_types.get(kind).label
        return OPERATIONAL_REASON.format(label=label) if point.datastore == RecoveryPoint.Datastore.OPERATIONAL else (
            f"Archive isn't supported for {label}")
    if point.state != RecoveryPoint.State.COMPLETED:
        return "Only completed recovery points can move to archive"
    if point.expired_at is not None or (point.expiry_time is not None and point.expiry_time <= now):
        return "This recovery point has expired: retention deletes it"
    if point.instance.is_soft_deleted:
        return "The backup instance is soft deleted"
    if point.is_soft_deleted:  # a shorter retention expired it (protection.redating): purged, not moved
        return (f"This recovery point is being soft deleted (purged on {point.expiry_time:%Y-%m-%d %H:%M} UTC); "
                "raise the policy's retention to bring it back first")
    if TIERING_MIN_AGE.add_to(point.recovery_point_time) > now:
        return (f"Only points at least 3 months old can move to archive (this one is "
                f"{_days(now - point.recovery_point_time)} old)")
    if point.expiry_time is not None and point.expiry_time < TIERING_MIN_LEFT.add_to(now):
        return (f"Only points with at least 6 months of retention left can move to archive (this one expires in "
                f"{_days(point.expiry_time - now)})")
    if point.instance.vault.immutability_state == ImmutabilityState.LOCKED:
        return LOCKED_REASON
    busy = running if running is not None else tiering_in_progress([point.pk])
    if point.pk in busy:
        return "A Move to archive job is already running for this point"
    return ""


def tiering_in_progress(point_ids) -> set:
    """Ids among ``point_ids`` with a Tiering or Rehydrate job in progress."""
    from protection.models import Job

    return set(Job.objects.filter(operation__in=[JobOperation.TIERING, JobOperation.REHYDRATE],
                                  status__in=[JobStatus.IN_PROGRESS, JobStatus.CANCELLING],
                                  recovery_point_id__in=list(point_ids)).values_list("recovery_point_id", flat=True))
