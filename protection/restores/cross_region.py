"""Cross Region Restore (reference §3.7): restoring a geo-redundant vault's PostgreSQL points from the
copy in its paired ("secondary") region.

**Cross Region Restore** is a vault setting (Properties; a geo-redundant vault only). While it is Enabled
the vault's backup instances that have recovery points copied to the secondary region are *secondary-region
instances*: Backup instances filtered by **Instance Region = Secondary Region** lists them, with **Restore
to secondary region**. That restore:

* offers only points whose secondary copy exists (``RecoveryPoint.secondary_copied_at``), never an
  archived one ("Cross Region Restore isn't supported from the archive tier");
* is for PostgreSQL servers only (the datasource the reference says it covers) and restores as files into a
  storage container of an account **in the secondary region**;
* reads the secondary store only (`layout.open_point_store` on a point marked by `read_from_secondary`):
  the primary store is never opened, so it works with the primary gone;
* runs as a Restore job marked ``crossRegionRestore`` (the Jobs list's Instance Region = Secondary Region),
  and is judged by the network guard against the vault's *secondary* private endpoints
  (``AzureBackup_Secondary``) when the vault denies public network access.

The rules here are input rules of the request (ValidationError with a code, as `validation` raises); who may
restore and the network stay the guards' (`restore/action` through `guarded`).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError

from protection import datasource_types
from protection.models import RecoveryPoint
from protection.regions import enabled, secondary_points, secondary_restore_problem
from protection.restores import targets
from protection.restores.access import state_refusal

NOT_ENABLED = "UserErrorCrossRegionRestoreNotEnabled"
NOT_SUPPORTED = "UserErrorCrossRegionRestoreNotSupportedForDatasource"
FROM_ARCHIVE = "UserErrorCrossRegionRestoreNotSupportedFromArchive"
NOT_REPLICATED = "UserErrorRecoveryPointNotReplicated"
TARGET_REGION = "UserErrorCrossRegionRestoreTargetNotInSecondaryRegion"
TARGET_KIND = "UserErrorCrossRegionRestoreTargetNotSupported"
ARCHIVE_TEXT = "Cross Region Restore isn't supported from the archive tier."


def vault_problem(vault) -> str:
    """Why the vault offers no restore to the secondary region ('' when it does)."""
    if not vault.is_geo_redundant or vault.secondary_region is None:
        return (f"The Backup vault '{vault.name}' is {vault.get_storage_redundancy_display().lower()}: only a "
                "geo-redundant vault keeps a copy in a secondary region.")
    if not enabled(vault):
        return (f"Cross Region Restore is disabled on the Backup vault '{vault.name}': enable it in the vault's "
                "Properties (Cross Region Restore > Enable).")
    return ""


def instance_problem(instance) -> str:
    """Why the instance's page offers no **Restore to secondary region** ('' when it does): the vault's setting,
    the datasource, the instance's state, and a recovery point copied to the secondary region (what the wizard's
    secondary-region instance list asks too). Who may restore is the guards' (`restore/action`)."""
    if instance.datasource_type != datasource_types.POSTGRES_FLEX:
        return secondary_restore_problem(instance)
    if problem := vault_problem(instance.vault):
        return problem
    if (refusal := state_refusal(instance)) is not None:
        return refusal.reason
    if not secondary_points(instance.recovery_points.all()).exists():
        return (f"No recovery point of '{instance.name}' has a copy in {instance.vault.secondary_region.display_name} "
                "yet (replication takes up to 12 hours after a backup).")
    return ""


def point_problem(point) -> tuple[str, str]:
    """(code, text) of why ``point`` cannot be restored from the secondary region (("", "") when it can)."""
    if point.datastore == RecoveryPoint.Datastore.ARCHIVE:
        return FROM_ARCHIVE, ARCHIVE_TEXT
    if point.datastore != RecoveryPoint.Datastore.VAULT or point.secondary_copied_at is None:
        return NOT_REPLICATED, (
            f"The recovery point of {point.recovery_point_time:%Y-%m-%d %H:%M} UTC has no copy in the secondary "
            "region yet (replication takes up to 12 hours): choose a point listed for the secondary region.")
    return "", ""


def check(point, target) -> None:
    """The rules of a restore to the secondary region (raises ValidationError with coded messages)."""
    instance = point.instance
    vault = instance.vault
    if problem := vault_problem(vault):
        raise ValidationError({"instance": [ValidationError(f"{NOT_ENABLED}: {problem}", code=NOT_ENABLED)]})
    if instance.datasource_type != datasource_types.POSTGRES_FLEX:
        problem = secondary_restore_problem(instance)
        raise ValidationError({"instance": [ValidationError(f"{NOT_SUPPORTED}: {problem}", code=NOT_SUPPORTED)]})
    code, problem = point_problem(point)
    if code:
        raise ValidationError({"recovery_point": [ValidationError(f"{code}: {problem}", code=code)]})
    if not isinstance(target, targets.PgFilesTarget):
        raise ValidationError({"restore_type": [ValidationError(
            f"{TARGET_KIND}: A restore to the secondary region writes the dumps as files into a storage container "
            "(Restore as files); restore as a new database in the primary region.", code=TARGET_KIND)]})
    _check_target_region(vault, target)


def _check_target_region(vault, target) -> None:
    from portal.inventory.models import Container

    container = Container.objects.select_related("account").filter(resource_id__iexact=target.container_id).first()
    if container is None:
        return  # validation.resolve says it is not found
    secondary = vault.secondary_region
    if container.account.region_id != secondary.pk:
        raise ValidationError({"target_container": [ValidationError(
            f"{TARGET_REGION}: The storage account '{container.account.name}' is in {container.account.region_id}; a "
            f"restore to the secondary region writes into a storage account in {secondary.display_name} "
            f"({secondary.pk}).", code=TARGET_REGION)]})


def read_from_secondary(point) -> RecoveryPoint:
    """Mark ``point`` so that `layout.open_point_store` opens the vault's secondary store (never the primary)."""
    point.read_from_secondary = True
    return point
