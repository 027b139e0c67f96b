"""``backupJobs`` (list, paged with ``nextLink``, and get) as ``AzureBackupJobResource``, and the outcome
of a protection Job for the long-running operations that follow one (``job_outcome``, registered with
``portal.api.lro`` in ``ProtectionConfig.ready``).

A job's name is its GUID (``Job.pk``): what ``OperationJobExtendedInfo.jobId`` carries, as in Azure, and
what ``backupJobs/{jobId}`` resolves.
"""

from __future__ import annotations

import datetime as dt
import uuid

import ninja

from portal.api import lro
from portal.api.envelope import page, proxy, timestamp
from portal.api.errors import not_found
from protection import datasource_types
from protection.models import Job, JobCategory, JobOperation, JobStatus
from security import clock
from security import operations as ops
from vaults.api.lookups import vault

router = ninja.Router(tags=["Jobs"])

VAULT_PATH = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.DataProtection/backupVaults/{vaultName}"
JOB_TYPE = f"{ops.VAULT_TYPE}/backupJobs"
# Newest first, by the same order the jobs pages use; (real_start_time, id) is unique and indexed per vault.
ORDER = ("-real_start_time", "-id")
_SUCCEEDED = (JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_WARNINGS)


# =================================================================================================
# The outcome a job-following operation takes
# =================================================================================================


def job_outcome(job_id: str) -> lro.JobOutcome | None:
    """The finished job's outcome (None while it is queued, running or cancelling)."""
    try:
        job = Job.objects.only("id", "status", "error_code", "error_message").get(pk=uuid.UUID(str(job_id)))
    except (ValueError, Job.DoesNotExist):
        return lro.JobOutcome(False, str(job_id), "JobNotFound", "The job this operation followed no longer exists.")
    if not job.is_finished:
        return None
    if job.status in _SUCCEEDED:
        return lro.JobOutcome(True, str(job.pk))
    if job.status == JobStatus.CANCELLED:
        return lro.JobOutcome(False, str(job.pk), job.error_code or "UserCancelled",
                              job.error_message or "The job was cancelled.")
    return lro.JobOutcome(False, str(job.pk), job.error_code or "UserErrorJobFailed",
                          job.error_message or "The job failed.")


# =================================================================================================
# AzureBackupJob
# =================================================================================================


def iso_duration(delta: dt.timedelta | None) -> str:
    """ISO 8601 ``PT…`` (``PT0S`` for nothing)."""
    seconds = max(0.0, delta.total_seconds()) if delta is not None else 0.0
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = "PT"
    if hours:
        text += f"{int(hours)}H"
    if minutes:
        text += f"{int(minutes)}M"
    if secs or text == "PT":
        text += f"{secs:.3f}".rstrip("0").rstrip(".") + "S"
    return text


def _arm_parts(resource_id: str) -> tuple[str, str]:
    """(subscription, resource group) of an ARM id ("" where it names none)."""
    parts = resource_id.strip("/").split("/")
    lowered = [p.lower() for p in parts]
    sub = parts[lowered.index("subscriptions") + 1] if "subscriptions" in lowered[:-1] else ""
    group = parts[lowered.index("resourcegroups") + 1] if "resourcegroups" in lowered[:-1] else ""
    return sub, group


def _data_stores(job: Job) -> tuple[str, str]:
    """(sourceDataStoreName, destinationDataStoreName)."""
    params = job.parameters or {}
    if params.get("sourceDataStoreName") and params.get("destinationDataStoreName"):  # archive tier: a move
        return params["sourceDataStoreName"], params["destinationDataStoreName"]
    kind = datasource_types.TYPES.get(job.datasource_type)
    store = job.recovery_point.datastore if job.recovery_point_id else (kind.datastore if kind else "")
    if job.category == JobCategory.BACKUP:
        return "", store
    if job.category == JobCategory.RESTORE:
        return store, ""
    return "", ""


def _errors(job: Job) -> list[dict] | None:
    if not job.error_code and not job.error_message:
        return None
    return [{"code": job.error_code or "UserErrorJobFailed", "message": job.error_message,
             "isRetryable": False, "isUserError": job.error_code.startswith("UserError")}]


def _extended_info(job: Job) -> dict:
    details = {"PolicyRuleName": job.rule_name, "RetentionTag": job.retention_tag}
    info = {"additionalDetails": {k: v for k, v in details.items() if v},
            "dataTransferredInBytes": job.bytes_done}
    if job.instance_id:
        info["backupInstanceState"] = job.instance.protection_state
    point = job.recovery_point
    if point is not None:
        key = "sourceRecoverPoint" if job.category == JobCategory.RESTORE else "targetRecoverPoint"
        info[key] = {"recoveryPointID": str(point.pk), "recoveryPointTime": timestamp(point.recovery_point_time)}
    warnings = (job.extended_info or {}).get("warnings") or []
    if warnings:
        info["warningDetails"] = [{"resourceName": job.datasource_name, "warning": [
            {"code": str(w.get("code", "")), "message": str(w.get("message", w))} if isinstance(w, dict)
            else {"message": str(w)} for w in warnings]}]
    return info


def job_properties(job: Job) -> dict:
    found_vault, instance = job.vault, job.instance
    source_id = instance.datasource_resource_id if instance else ""
    source_sub, source_group = _arm_parts(source_id)
    source_store, destination_store = _data_stores(job)
    end = job.end_time
    props = {
        "activityID": str(job.pk),
        "backupInstanceFriendlyName": job.instance_name,
        "backupInstanceId": f"{found_vault.resource_id}/backupInstances/{job.instance_name}" if job.instance_name else None,
        "dataSourceId": source_id,
        "dataSourceLocation": instance.datasource_location if instance else found_vault.region_id,
        "dataSourceName": job.datasource_name,
        "dataSourceSetName": instance.datasource_set_resource_id.rsplit("/", 1)[-1] if instance and instance.datasource_set_resource_id else None,
        "dataSourceType": job.datasource_type,
        "duration": iso_duration((end or clock.now()) - job.start_time),
        "endTime": timestamp(end),
        "errorDetails": _errors(job),
        "extendedInfo": _extended_info(job),
        "isUserTriggered": job.is_user_triggered,
        "operation": job.operation,
        "operationCategory": job.category,
        "policyId": instance.policy.resource_id if instance else None,
        "policyName": (job.parameters or {}).get("policyName") or (instance.policy.name if instance else None),
        "progressEnabled": job.operation in (JobOperation.BACKUP, JobOperation.RESTORE),
        "restoreType": (job.parameters or {}).get("restoreType") if job.category == JobCategory.RESTORE else None,
        "rehydrationPriority": (job.parameters or {}).get("rehydrationPriority"),  # archive tier (issue 21)
        "sourceResourceGroup": source_group,
        "sourceSubscriptionID": source_sub,
        "startTime": timestamp(job.start_time),
        "status": job.status,
        "subscriptionId": str(found_vault.resource_group.subscription.subscription_id),
        "supportedActions": ["Cancellable"] if job.status == JobStatus.IN_PROGRESS else [],
        "vaultName": found_vault.name,
        "sourceDataStoreName": source_store or None,
        "destinationDataStoreName": destination_store or None,
    }
    return {k: v for k, v in props.items() if v is not None}


def job_resource(job: Job) -> dict:
    return proxy(job.resource_id, str(job.pk), JOB_TYPE, job_properties(job))


# The columns job_resource reads, and no more: a page is 200 rows, and each row's vault (known), its
# instance's JSON columns and its policy's rules were most of a page's time when read whole (issue 22).
_COLUMNS = (
    "id", "vault", "instance", "instance_name", "datasource_type", "datasource_name", "operation", "category",
    "status", "is_user_triggered", "rule_name", "retention_tag", "parameters", "start_time", "real_start_time",
    "end_time", "bytes_done", "error_code", "error_message", "recovery_point", "extended_info",
    "instance__datasource_resource_id", "instance__datasource_location", "instance__datasource_set_resource_id",
    "instance__protection_state", "instance__policy", "instance__policy__name", "instance__policy__resource_id",
    "recovery_point__datastore", "recovery_point__recovery_point_time",
)


def _jobs_of(found_vault):
    return Job.objects.filter(vault=found_vault).select_related("instance__policy", "recovery_point").only(*_COLUMNS)


def _in_vault(found_vault):
    """Give each job of a page its vault (every one is ``found_vault``'s) instead of a join per row."""
    def prepare(rows):
        for job in rows:
            job.vault = found_vault
    return prepare


# =================================================================================================
# Routes
# =================================================================================================


@router.get(VAULT_PATH + "/backupJobs", url_name="backup_jobs_list")
def list_jobs(request, subscriptionId: str, resourceGroupName: str, vaultName: str):
    found = vault(request, subscriptionId, resourceGroupName, vaultName, action=ops.JOB_READ)
    return page(request, _jobs_of(found), job_resource, order=ORDER, prepare=_in_vault(found))


@router.get(VAULT_PATH + "/backupJobs/{jobId}", url_name="backup_jobs_get")
def get_job(request, subscriptionId: str, resourceGroupName: str, vaultName: str, jobId: str):
    found = vault(request, subscriptionId, resourceGroupName, vaultName, action=ops.JOB_READ)
    try:
        key = uuid.UUID(jobId)
    except ValueError:
        raise not_found(JOB_TYPE, f"{vaultName}/{jobId}", found.resource_group.name) from None
    job = _jobs_of(found).filter(pk=key).first()
    if job is None:
        raise not_found(JOB_TYPE, f"{vaultName}/{jobId}", found.resource_group.name)
    _in_vault(found)([job])
    return job_resource(job)
