"""``validateRestore`` and ``restore`` on a backup instance: Azure's restore request, translated into the
restore target the wizard builds (`protection.restores.targets`) and handed to the same services
(`validate_restore`, `start_restore`): the same rules, roles and guards as the pages.

What each datasource takes, as in Azure (the inverse of `targets.as_api`):

* ADLS: ``ItemLevelRestoreTargetInfo`` to an alternate HNS account (``datasourceInfo.resourceID``),
  with ``ItemPathBasedRestoreCriteria`` per container (``itemPath``, ``subItemPathPrefix``,
  ``renameTo``); no criteria, or ``RestoreTargetInfo``, restores every container.
* Elastic SAN: ``RestoreTargetInfo`` naming a new volume (``.../volumeGroups/{g}/volumes/{new}``).
* PostgreSQL: ``RestoreFilesTargetInfo`` (``targetDetails``: the container's ``targetResourceArmId``,
  or its ``url``; ``filePrefix``), or ``RestoreTargetInfo`` naming a new database
  (``.../flexibleServers/{s}/databases/{new}``; Strongroom's ``sourceDatabaseName`` says which database of
  the point, needed when it holds more than one).

``AzureBackupRecoveryPointBasedRestoreRequest`` restores a Vault-standard point (or an archived one already
rehydrated); ``AzureBackupRestoreWithRehydrationRequest`` (``rehydrationPriority`` Standard | High,
``rehydrationRetentionDuration`` P10D–P30D) restores an archived point after its rehydration (a Rehydrate job,
then the Restore job: `protection.restores.rehydration`); the operation follows the Rehydrate job. Always with
``recoveryOption`` FailIfExists; no continuous backups (point in time), and it says so.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import ninja
from django.core.exceptions import ValidationError
from pydantic import ConfigDict

from portal.api import lro
from portal.api.errors import ArmError, from_validation_error
from protection import datasource_types
from protection.api.lookups import INSTANCE_PATH, instance
from protection.models import RecoveryPoint
from protection.restores import layout, rehydration, services, targets, validation
from security import operations as ops

router = ninja.Router(tags=["Backup instances"])

POINT_BASED = "AzureBackupRecoveryPointBasedRestoreRequest"
REHYDRATION = "AzureBackupRestoreWithRehydrationRequest"
TIME_BASED = "AzureBackupRecoveryTimeBasedRestoreRequest"
TARGET = "restoreTargetInfo"
# The wizard's fields (as the restore services name them) -> where the restore request says it.
FIELD_TARGETS = {
    "containers": f"{TARGET}.restoreCriteria",
    "prefixes": f"{TARGET}.restoreCriteria.subItemPathPrefix",
    "rename": f"{TARGET}.restoreCriteria.renameTo",
    "target_storage_account": f"{TARGET}.datasourceInfo.resourceID",
    "target_volume_group": f"{TARGET}.datasourceInfo.resourceID",
    "volume_name": f"{TARGET}.datasourceInfo.resourceID",
    "target_resource_group": f"{TARGET}.datasourceInfo.resourceID",
    "disk_name": f"{TARGET}.datasourceInfo.resourceID",
    "target_server": f"{TARGET}.datasourceInfo.resourceID",
    "database_name": f"{TARGET}.datasourceInfo.resourceID",
    "database": f"{TARGET}.sourceDatabaseName",
    "target_container": f"{TARGET}.targetDetails.targetResourceArmId",
    "file_prefix": f"{TARGET}.targetDetails.filePrefix",
    "restore_roles": "identityDetails",
    "recovery_point": "recoveryPointId",
    "restore_type": f"{TARGET}.objectType",
    "rehydration_priority": "rehydrationPriority",
    "rehydration_duration": "rehydrationRetentionDuration",
}


class RestoreRequest(ninja.Schema):
    """AzureBackupRestoreRequest (its subtypes by ``objectType``); the target is read field by field."""

    model_config = ConfigDict(extra="allow")
    objectType: str
    restoreTargetInfo: dict
    sourceDataStoreType: str
    recoveryPointId: str | None = None
    recoveryPointTime: str | None = None
    rehydrationPriority: str | None = None
    rehydrationRetentionDuration: str | None = None
    sourceResourceId: str | None = None
    identityDetails: dict | None = None


class ValidateRestoreRequestObject(ninja.Schema):
    restoreRequestObject: RestoreRequest


# =================================================================================================
# Azure's request -> (recovery point, restore target)
# =================================================================================================


def _bad(code: str, message: str, target: str, prefix: str) -> ArmError:
    return ArmError(400, code, message, target=prefix + target)


def _obj(data: dict, key: str, where: str, prefix: str) -> dict:
    value = data.get(key)
    if not isinstance(value, dict):
        raise _bad("InvalidRequestContent", f"'{where}.{key}' is required, as an object.", f"{where}.{key}", prefix)
    return value


def _text(data: dict, key: str, where: str, prefix: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise _bad("InvalidRequestContent", f"'{where}.{key}' is required.", f"{where}.{key}", prefix)
    return value.strip()


def _point(found, body: RestoreRequest, prefix: str) -> RecoveryPoint:
    if body.objectType == TIME_BASED:
        raise _bad("UserErrorPointInTimeRestoreNotSupported", "A restore to a point in time needs continuous "
                   "(operational) backup, which none of Strongroom's datasources use: choose a recovery point "
                   f"(recoveryPoints) and restore with {POINT_BASED}.", "objectType", prefix)
    if body.objectType not in (POINT_BASED, REHYDRATION):
        raise _bad("InvalidRequestContent", f"'{body.objectType}' is not a restore request type; use {POINT_BASED} "
                   f"(or {REHYDRATION} for a point in ArchiveStore).", "objectType", prefix)
    try:
        key = uuid.UUID(str(body.recoveryPointId or ""))
        point = RecoveryPoint.objects.select_related("instance__vault").get(instance=found, pk=key, expired_at__isnull=True)
    except (ValueError, RecoveryPoint.DoesNotExist):
        raise _bad("UserErrorRecoveryPointNotFound", f"The backup instance '{found.name}' has no recovery point "
                   f"'{body.recoveryPointId}'.", "recoveryPointId", prefix) from None
    if body.sourceDataStoreType != point.datastore:
        raise _bad("InvalidParameter", f"The recovery point is in the {point.datastore}; set sourceDataStoreType "
                   f"to '{point.datastore}'.", "sourceDataStoreType", prefix)
    return point


def _adls(info: dict, point, prefix: str) -> targets.AdlsTarget:
    account = _text(_obj(info, "datasourceInfo", TARGET, prefix), "resourceID", f"{TARGET}.datasourceInfo", prefix)
    if info.get("objectType") == "RestoreTargetInfo":
        return targets.AdlsTarget(account, True)
    criteria = info.get("restoreCriteria") or []
    if not isinstance(criteria, list):
        raise _bad("InvalidRequestContent", "restoreCriteria is a list.", f"{TARGET}.restoreCriteria", prefix)
    if not criteria:
        return targets.AdlsTarget(account, True)
    chosen = []
    for i, item in enumerate(criteria):
        where = f"{TARGET}.restoreCriteria[{i}]"
        if not isinstance(item, dict) or item.get("objectType") != "ItemPathBasedRestoreCriteria":
            raise _bad("InvalidRequestContent", "A vaulted ADLS restore takes ItemPathBasedRestoreCriteria (a "
                       "container, its prefixes, a new name).", f"{where}.objectType", prefix)
        prefixes = item.get("subItemPathPrefix") or []
        if not isinstance(prefixes, list) or not all(isinstance(p, str) for p in prefixes):
            raise _bad("InvalidRequestContent", "subItemPathPrefix is a list of strings.", f"{where}.subItemPathPrefix", prefix)
        rename = item.get("renameTo") or ""
        if not isinstance(rename, str):
            raise _bad("InvalidRequestContent", "renameTo is a string.", f"{where}.renameTo", prefix)
        chosen.append(targets.ContainerChoice(_text(item, "itemPath", where, prefix), tuple(prefixes), rename))
    return targets.AdlsTarget(account, False, tuple(chosen))


def _split(resource_id: str, child: str, where: str, prefix: str) -> tuple[str, str]:
    marker = f"/{child}/"
    at = resource_id.lower().rfind(marker.lower())
    if at < 0 or not resource_id[at + len(marker):] or "/" in resource_id[at + len(marker):]:
        raise _bad("InvalidRequestContent", f"'{resource_id}' does not name a new resource under '{child}'.", where, prefix)
    return resource_id[:at], resource_id[at + len(marker):]


def _volume(info: dict, prefix: str) -> targets.VolumeTarget:
    where = f"{TARGET}.datasourceInfo.resourceID"
    group, name = _split(_text(_obj(info, "datasourceInfo", TARGET, prefix), "resourceID", f"{TARGET}.datasourceInfo", prefix),
                         "volumes", where, prefix)
    return targets.VolumeTarget(group, name)


def _disk(info: dict, point, prefix: str) -> targets.DiskTarget:
    """Azure Disk: ``datasourceInfo.resourceID`` is the new disk (``<resource group>/providers/Microsoft.Compute/
    disks/<name>``), created in ``restoreLocation``, which must be the vault's region."""
    where = f"{TARGET}.datasourceInfo.resourceID"
    group, name = _split(_text(_obj(info, "datasourceInfo", TARGET, prefix), "resourceID", f"{TARGET}.datasourceInfo", prefix),
                         f"providers/{ops.DISK_TYPE}", where, prefix)
    region = point.instance.vault.region_id
    location = info.get("restoreLocation") or region
    if not isinstance(location, str) or location.lower() != region.lower():
        raise _bad("UserErrorRestoreTargetInDifferentRegion", f"A disk is restored in the vault's region ({region}); "
                   f"restoreLocation is {location!r}.", f"{TARGET}.restoreLocation", prefix)
    return targets.DiskTarget(group, name)


def _source_database(info: dict, point, prefix: str) -> str:
    named = info.get("sourceDatabaseName") or ""
    if named:
        if not isinstance(named, str):
            raise _bad("InvalidRequestContent", "sourceDatabaseName is a string.", f"{TARGET}.sourceDatabaseName", prefix)
        return named
    databases = [p.database for p in layout.databases(point)]
    if len(databases) == 1:
        return databases[0]
    raise _bad("InvalidRequestContent", "The recovery point holds several databases "
               f"({', '.join(databases)}): name the one to restore in sourceDatabaseName.",
               f"{TARGET}.sourceDatabaseName", prefix)


def _container_id(details: dict, prefix: str) -> str:
    """The container a RestoreFilesTargetInfo names: ``targetResourceArmId``, or found from its ``url``."""
    from portal.inventory.models import Container

    if isinstance(details.get("targetResourceArmId"), str) and details["targetResourceArmId"]:
        return details["targetResourceArmId"]
    url = _text(details, "url", f"{TARGET}.targetDetails", prefix)
    try:
        parts = urlsplit(url)
        account = (parts.hostname or "").split(".", 1)[0]
    except ValueError:  # "https://[x/..." (an unclosed IPv6 host), a port that is no number
        account, parts = "", urlsplit("")
    container = parts.path.strip("/").split("/", 1)[0]
    found = Container.objects.filter(account__name__iexact=account, name__iexact=container).first()
    if found is None:
        raise _bad(validation.TARGET_NOT_FOUND, f"No container is at '{url}'; name it by targetResourceArmId.",
                   f"{TARGET}.targetDetails.url", prefix)
    return found.resource_id


def _postgres(info: dict, point, prefix: str) -> targets.Target:
    if info.get("objectType") == "RestoreFilesTargetInfo":
        details = _obj(info, "targetDetails", TARGET, prefix)
        kind = details.get("restoreTargetLocationType", "AzureBlobs")
        if kind != "AzureBlobs":
            raise _bad("InvalidParameter", f"Strongroom restores files to blob containers (AzureBlobs), not {kind}.",
                       f"{TARGET}.targetDetails.restoreTargetLocationType", prefix)
        file_prefix = details.get("filePrefix")
        database = _source_database(info, point, prefix) if info.get("sourceDatabaseName") else ""
        return targets.PgFilesTarget(_container_id(details, prefix),
                                     file_prefix if isinstance(file_prefix, str) else "", database)
    where = f"{TARGET}.datasourceInfo.resourceID"
    server, name = _split(_text(_obj(info, "datasourceInfo", TARGET, prefix), "resourceID", f"{TARGET}.datasourceInfo", prefix),
                          "databases", where, prefix)
    return targets.PgDatabaseTarget(_source_database(info, point, prefix), server, name)


_TARGET_KINDS = {
    datasource_types.ADLS: ("ItemLevelRestoreTargetInfo", "RestoreTargetInfo"),
    datasource_types.ELASTIC_SAN: ("RestoreTargetInfo",),
    datasource_types.AZURE_DISK: ("RestoreTargetInfo",),
    datasource_types.POSTGRES_FLEX: ("RestoreFilesTargetInfo", "RestoreTargetInfo"),
}


def target_of(point, info: dict, prefix: str = "") -> targets.Target:
    """The restore target an Azure ``restoreTargetInfo`` asks for, for this point's datasource."""
    kind = point.instance.datasource_type
    allowed = _TARGET_KINDS[kind]
    if info.get("objectType") not in allowed:
        raise _bad("InvalidRequestContent", f"A {datasource_types.get(kind).label} restore takes "
                   f"{' or '.join(allowed)}.", f"{TARGET}.objectType", prefix)
    option = info.get("recoveryOption", "FailIfExists")
    if option != "FailIfExists":
        raise _bad("InvalidParameter", "A restore never overwrites: recoveryOption is FailIfExists.",
                   f"{TARGET}.recoveryOption", prefix)
    if kind == datasource_types.ADLS:
        return _adls(info, point, prefix)
    if kind == datasource_types.ELASTIC_SAN:
        return _volume(info, prefix)
    if kind == datasource_types.AZURE_DISK:
        return _disk(info, point, prefix)
    return _postgres(info, point, prefix)


def _identity(body: RestoreRequest, prefix: str) -> None:
    details = body.identityDetails or {}
    if details.get("useSystemAssignedIdentity") is False or details.get("userAssignedIdentityArmUrl"):
        raise _bad("InvalidParameter", "Strongroom restores with the vault's system-assigned identity; set "
                   "identityDetails.useSystemAssignedIdentity to true.", "identityDetails", prefix)


def translate(found, body: RestoreRequest, prefix: str = ""):
    point = _point(found, body, prefix)
    _identity(body, prefix)
    return point, target_of(point, body.restoreTargetInfo, prefix)


def as_arm(exc: ValidationError, prefix: str) -> ArmError:
    """A restore service's ValidationError, with the fields named as the restore request names them."""
    error = from_validation_error(exc)
    if error.target:
        error.target = prefix + FIELD_TARGETS.get(error.target, error.target)
    for detail in error.details:
        if detail.get("target"):
            detail["target"] = prefix + FIELD_TARGETS.get(detail["target"], detail["target"])
    return error


# =================================================================================================
# Routes
# =================================================================================================


@router.post(INSTANCE_PATH + "/validateRestore", url_name="backup_instances_validate_restore")
def validate_restore(request, subscriptionId: str, resourceGroupName: str, vaultName: str, backupInstanceName: str,
                     payload: ValidateRestoreRequestObject):
    found = instance(request, subscriptionId, resourceGroupName, vaultName, backupInstanceName,
                     action=ops.VALIDATE_RESTORE)
    prefix = "restoreRequestObject."
    point, target = translate(found, payload.restoreRequestObject, prefix)
    return validation_answer(request, found, point, target, prefix, location=found.vault.region_id)


def validation_answer(request, found, point, target, prefix: str, *, location: str, **options):
    """Validate ``target`` with the restore services (``options``: e.g. ``cross_region``) and answer the
    long-running operation: the wizard's Validate is immediate, so the operation is over when it answers."""
    try:
        services.validate_restore(request.auth, point, target, **options)
    except ValidationError as exc:
        raise as_arm(exc, prefix) from None
    op = lro.start(request, kind=ops.VALIDATE_RESTORE, resource_id=found.resource_id, location=location)
    lro.succeed(op, {"objectType": "OperationJobExtendedInfo"})
    return lro.accepted(request, op)


@router.post(INSTANCE_PATH + "/restore", url_name="backup_instances_restore")
def restore(request, subscriptionId: str, resourceGroupName: str, vaultName: str, backupInstanceName: str,
            payload: RestoreRequest):
    found = instance(request, subscriptionId, resourceGroupName, vaultName, backupInstanceName, action=ops.RESTORE)
    point, target = translate(found, payload)
    try:
        if payload.objectType == REHYDRATION:  # archive tier (issue 21): Rehydrate job, then the Restore job
            job = rehydration.start_rehydrated_restore(
                request.auth, point, target, priority=payload.rehydrationPriority or "",
                duration=payload.rehydrationRetentionDuration or "")
        else:
            job = services.start_restore(request.auth, point, target)
    except ValidationError as exc:
        raise as_arm(exc, "") from None
    op = lro.start(request, kind=ops.RESTORE, resource_id=found.resource_id, location=found.vault.region_id,
                   job_id=str(job.pk))
    return lro.accepted(request, op)
