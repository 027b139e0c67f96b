"""Cross Region Restore's routes (reference §1.1, §3.7), at ``locations/{location}`` of the vault's resource
group, where ``{location}`` is the secondary region (the vault's paired region):

* ``fetchSecondaryRecoveryPoints`` (``FetchSecondaryRPsRequestParameters``: ``sourceRegion``,
  ``sourceBackupInstanceId``; ``$filter`` as ``recoveryPoints``) → the instance's points that have a copy in the
  secondary region, as ``AzureBackupRecoveryPointResource``. One page: the SDK would fetch a ``nextLink`` with a
  GET that cannot carry the body.
* ``validateCrossRegionRestore`` and ``crossRegionRestore`` (``restoreRequestObject`` +
  ``crossRegionRestoreDetails``) → the restore services with ``cross_region=True`` (the same rules, roles and
  guards as **Restore to secondary region**); the latter an LRO that follows the Restore job.
* ``fetchCrossRegionRestoreJob`` / ``fetchCrossRegionRestoreJobs`` (``sourceRegion``, ``sourceBackupVaultId``
  [, ``jobId``]) → the vault's restore jobs run in the secondary region.
"""

from __future__ import annotations

import re
import uuid

import ninja
from django.core.exceptions import ValidationError
from pydantic import ConfigDict

from portal.api import lro
from portal.api.errors import ArmError, not_found
from protection import regions
from protection.api.jobs import JOB_TYPE, job_resource
from protection.api.lookups import instance
from protection.api.recovery_points import FILTER, ORDER, apply_filter, point_resource
from protection.api.restores import RestoreRequest, as_arm, translate, validation_answer
from protection.models import Job, JobOperation, RecoveryPoint
from protection.restores import services
from security import operations as ops
from vaults.api.lookups import vault

router = ninja.Router(tags=["Cross region restore"])

LOCATION_PATH = ("/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.DataProtection"
                 "/locations/{location}")
_INSTANCE_ID = re.compile(r"^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/Microsoft\.DataProtection/"
                          r"backupVaults/([^/]+)/backupInstances/([^/]+)/?$", re.IGNORECASE)
_VAULT_ID = re.compile(r"^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/Microsoft\.DataProtection/"
                       r"backupVaults/([^/]+)/?$", re.IGNORECASE)


class CrossRegionRestoreDetails(ninja.Schema):
    model_config = ConfigDict(extra="allow")
    sourceRegion: str
    sourceBackupInstanceId: str


class FetchSecondaryRPsRequestParameters(ninja.Schema):
    model_config = ConfigDict(extra="allow")
    sourceRegion: str | None = None
    sourceBackupInstanceId: str | None = None


class CrossRegionRestoreRequestObject(ninja.Schema):
    restoreRequestObject: RestoreRequest
    crossRegionRestoreDetails: CrossRegionRestoreDetails


class CrossRegionRestoreJobRequest(ninja.Schema):
    model_config = ConfigDict(extra="allow")
    sourceRegion: str
    sourceBackupVaultId: str
    jobId: str | None = None


def _at(where: str, field: str) -> str:
    """A body field's target: ``where.field``, or ``field`` when the field is at the body's top level."""
    return f"{where}.{field}" if where else field


def _bad(code: str, message: str, target: str) -> ArmError:
    return ArmError(400, code, message, target=target)


def _check_regions(found_vault, location: str, source_region: str | None, where: str, *, enabled=True) -> None:
    """``location`` is the vault's secondary region, ``sourceRegion`` its own; with ``enabled``, Cross Region
    Restore is on (a restore leaves that to the service, which asks the guards first)."""
    from protection.restores.cross_region import NOT_ENABLED, vault_problem

    secondary = found_vault.secondary_region
    if secondary is None or (enabled and not regions.enabled(found_vault)):
        raise _bad(NOT_ENABLED, vault_problem(found_vault), "location")
    if location.lower() != secondary.pk.lower():
        raise _bad("InvalidParameter", f"The Backup vault '{found_vault.name}' keeps its secondary copy in "
                   f"{secondary.pk}: call locations/{secondary.pk}, not locations/{location}.", "location")
    if source_region is not None and source_region.lower() != found_vault.region_id.lower():
        raise _bad("InvalidParameter", f"sourceRegion is the vault's own region, {found_vault.region_id}, not "
                   f"'{source_region}'.", _at(where, "sourceRegion"))


def _source_instance(request, subscriptionId, resourceGroupName, location, instance_id, source_region, where, *, action,
                     enabled=True):
    match = _INSTANCE_ID.match((instance_id or "").strip())
    if not match:
        raise _bad("InvalidParameter", "sourceBackupInstanceId is the backup instance's resource id, "
                   "/subscriptions/{id}/resourceGroups/{group}/providers/Microsoft.DataProtection/backupVaults/{vault}/"
                   "backupInstances/{name}.", _at(where, "sourceBackupInstanceId"))
    sub, group, vault_name, name = match.groups()
    if sub.lower() != subscriptionId.lower() or group.lower() != resourceGroupName.lower():
        raise _bad("InvalidParameter", "Call the vault's own subscription and resource group: the backup instance is "
                   f"in /subscriptions/{sub}/resourceGroups/{group}.", _at(where, "sourceBackupInstanceId"))
    found = instance(request, sub, group, vault_name, name, action=action)
    _check_regions(found.vault, location, source_region, where, enabled=enabled)
    return found


def _source_vault(request, subscriptionId, resourceGroupName, location, body: CrossRegionRestoreJobRequest):
    match = _VAULT_ID.match((body.sourceBackupVaultId or "").strip())
    if not match or match.group(1).lower() != subscriptionId.lower() or match.group(2).lower() != resourceGroupName.lower():
        raise _bad("InvalidParameter", "sourceBackupVaultId is the resource id of a Backup vault in this subscription "
                   "and resource group.", "sourceBackupVaultId")
    found = vault(request, match.group(1), match.group(2), match.group(3), action=ops.JOB_READ)
    _check_regions(found, location, body.sourceRegion, "")
    return found


# =================================================================================================
# Routes
# =================================================================================================


@router.post(LOCATION_PATH + "/fetchSecondaryRecoveryPoints", url_name="fetch_secondary_recovery_points")
def fetch_secondary_points(request, subscriptionId: str, resourceGroupName: str, location: str,
                           payload: FetchSecondaryRPsRequestParameters):
    found = _source_instance(request, subscriptionId, resourceGroupName, location, payload.sourceBackupInstanceId,
                             payload.sourceRegion, "", action=ops.RECOVERY_POINT_READ)
    points = regions.secondary_points(RecoveryPoint.objects.filter(instance=found, expired_at__isnull=True)
                                      .select_related("instance__vault"))
    points = apply_filter(points, request.GET.get(FILTER)).order_by(*ORDER)
    return {"value": [point_resource(p) for p in points]}


def _restore_input(request, subscriptionId, resourceGroupName, location, payload: CrossRegionRestoreRequestObject,
                   action: str):
    details = payload.crossRegionRestoreDetails
    found = _source_instance(request, subscriptionId, resourceGroupName, location, details.sourceBackupInstanceId,
                             details.sourceRegion, "crossRegionRestoreDetails", action=action, enabled=False)
    from protection.restores.cross_region import TARGET_REGION

    prefix = "restoreRequestObject."
    secondary = found.vault.secondary_region
    location = payload.restoreRequestObject.restoreTargetInfo.get("restoreLocation") or secondary.pk
    if not isinstance(location, str) or location.lower() != secondary.pk.lower():
        raise _bad(TARGET_REGION, f"A restore to the secondary region restores in {secondary.display_name} "
                   f"({secondary.pk}); restoreLocation is {location!r}.", f"{prefix}restoreTargetInfo.restoreLocation")
    point, target = translate(found, payload.restoreRequestObject, prefix)
    return found, point, target, prefix


@router.post(LOCATION_PATH + "/validateCrossRegionRestore", url_name="validate_cross_region_restore")
def validate_cross_region_restore(request, subscriptionId: str, resourceGroupName: str, location: str,
                                  payload: CrossRegionRestoreRequestObject):
    found, point, target, prefix = _restore_input(request, subscriptionId, resourceGroupName, location, payload,
                                                  ops.VALIDATE_RESTORE)
    return validation_answer(request, found, point, target, prefix, location=location, cross_region=True)


@router.post(LOCATION_PATH + "/crossRegionRestore", url_name="cross_region_restore")
def cross_region_restore(request, subscriptionId: str, resourceGroupName: str, location: str,
                         payload: CrossRegionRestoreRequestObject):
    found, point, target, prefix = _restore_input(request, subscriptionId, resourceGroupName, location, payload,
                                                  ops.RESTORE)
    try:
        job = services.start_restore(request.auth, point, target, cross_region=True)
    except ValidationError as exc:
        raise as_arm(exc, prefix) from None
    op = lro.start(request, kind=ops.RESTORE, resource_id=found.resource_id, location=location, job_id=str(job.pk))
    return lro.accepted(request, op)


def _crr_jobs(found_vault):
    jobs = Job.objects.filter(vault=found_vault, operation=JobOperation.RESTORE).select_related(
        "vault__resource_group__subscription", "instance__policy", "recovery_point")
    return regions.filter_jobs(jobs, regions.SECONDARY)


@router.post(LOCATION_PATH + "/fetchCrossRegionRestoreJob", url_name="fetch_cross_region_restore_job")
def fetch_cross_region_restore_job(request, subscriptionId: str, resourceGroupName: str, location: str,
                                   payload: CrossRegionRestoreJobRequest):
    found = _source_vault(request, subscriptionId, resourceGroupName, location, payload)
    try:
        key = uuid.UUID(str(payload.jobId or ""))
    except ValueError:
        raise not_found(JOB_TYPE, f"{found.name}/{payload.jobId}", found.resource_group.name) from None
    job = _crr_jobs(found).filter(pk=key).first()
    if job is None:
        raise not_found(JOB_TYPE, f"{found.name}/{payload.jobId}", found.resource_group.name)
    return job_resource(job)


@router.post(LOCATION_PATH + "/fetchCrossRegionRestoreJobs", url_name="fetch_cross_region_restore_jobs")
def fetch_cross_region_restore_jobs(request, subscriptionId: str, resourceGroupName: str, location: str,
                                    payload: CrossRegionRestoreJobRequest):
    found = _source_vault(request, subscriptionId, resourceGroupName, location, payload)
    return {"value": [job_resource(j) for j in _crr_jobs(found).order_by("-real_start_time", "-id")]}
