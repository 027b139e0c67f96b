"""``backupInstances`` and ``deletedBackupInstances``: configure protection (with the readiness
validation), read, list, delete (soft delete rules), ``validateForBackup``, stop / suspend / resume, and
undelete — each calling the services the pages call (shapes: `protection.api.instance_shapes`).

A PUT that creates an instance answers 201 and follows its ConfigureProtection job; a DELETE answers 202
and follows its UnConfigure job. Stop, suspend, resume and undelete change the instance at once, so their
operation has succeeded by the time the 202 is sent.
"""

from __future__ import annotations

import contextlib

from django.core.exceptions import ValidationError
from ninja import Router

from portal.api import lookups as arm_lookups
from portal.api import lro
from portal.api.envelope import page
from portal.api.errors import ArmError, from_validation_error
from protection.api import instance_shapes as shapes
from protection.api import lookups
from protection.backups import services as backups
from protection.deletion import services as deletion
from protection.instances import services as instance_services
from protection.models import BackupInstance, Job, JobOperation, ProtectionState
from security import operations as ops
from security.guards import GuardDenied, evaluate
from vaults.api.lookups import vault as find_vault
from vaults.api.lookups import VAULT_PATH, vault_scope

router = Router(tags=["BackupInstances"])

VAULT = VAULT_PATH
INSTANCES = VAULT + "/backupInstances"
INSTANCE = INSTANCES + "/{backupInstanceName}"
DELETED = VAULT + "/deletedBackupInstances"


@contextlib.contextmanager
def _service_errors(prefix: str):
    """Run a service call with its ValidationErrors named by the body's property paths."""
    try:
        yield
    except ValidationError as exc:
        raise shapes.retarget(from_validation_error(exc), prefix) from None


def _instance(request, subscriptionId, resourceGroupName, vaultName, backupInstanceName, **kwargs) -> BackupInstance:
    return lookups.instance(request, subscriptionId, resourceGroupName, vaultName, backupInstanceName, **kwargs)


# --- reads ---------------------------------------------------------------------------------------


@router.get(INSTANCES, url_name="backup_instances_list")
def list_instances(request, subscriptionId: str, resourceGroupName: str, vaultName: str):
    vault = find_vault(request, subscriptionId, resourceGroupName, vaultName, action=ops.INSTANCE_READ)
    rows = (instance_services.instances_for(request.auth).filter(vault=vault)
            .exclude(protection_state__in=lookups.SOFT_DELETED_STATES)
            .select_related(None).select_related("policy").only(*shapes.RESOURCE_COLUMNS))
    return page(request, rows, shapes.resource, order="pk", prepare=shapes.load_containers)


@router.get(INSTANCE, url_name="backup_instance")
def get_instance(request, subscriptionId: str, resourceGroupName: str, vaultName: str, backupInstanceName: str):
    return shapes.resource(_instance(request, subscriptionId, resourceGroupName, vaultName, backupInstanceName))


@router.get(DELETED, url_name="deleted_backup_instances_list")
def list_deleted(request, subscriptionId: str, resourceGroupName: str, vaultName: str):
    vault = find_vault(request, subscriptionId, resourceGroupName, vaultName, action=ops.DELETED_INSTANCE_READ)
    rows = BackupInstance.objects.filter(vault=vault, protection_state__in=lookups.SOFT_DELETED_STATES).select_related(
        "vault", "policy")
    return page(request, rows, shapes.deleted_resource, order="pk", prepare=shapes.load_containers)


@router.get(DELETED + "/{backupInstanceName}", url_name="deleted_backup_instance")
def get_deleted(request, subscriptionId: str, resourceGroupName: str, vaultName: str, backupInstanceName: str):
    found = _instance(request, subscriptionId, resourceGroupName, vaultName, backupInstanceName,
                      action=ops.DELETED_INSTANCE_READ, deleted=True)
    return shapes.deleted_resource(found)


# --- configure protection ------------------------------------------------------------------------


@router.put(INSTANCE, url_name="backup_instance_put")
def put_instance(request, subscriptionId: str, resourceGroupName: str, vaultName: str, backupInstanceName: str):
    # RBAC first: nothing about the vault, its policies or an existing instance is said to a caller who
    # may not write the instance (the services' guards then judge the change itself).
    arm_lookups.require(request.auth, ops.INSTANCE_WRITE, lookups.child_scope(
        subscriptionId, resourceGroupName, vaultName, "backupInstances", backupInstanceName))
    body = shapes.json_body(request)
    vault = find_vault(request, subscriptionId, resourceGroupName, vaultName, action=None)
    with _service_errors("properties"):
        wanted = shapes.parse_instance(vault, body.get("properties"), backupInstanceName)
    existing = (BackupInstance.objects.filter(vault=vault, name__iexact=backupInstanceName)
                .exclude(protection_state__in=lookups.SOFT_DELETED_STATES).select_related("vault", "policy").first())
    if existing is not None:
        return _update(request, existing, wanted)
    with _service_errors("properties"):
        [created] = instance_services.configure_protection(request.auth, vault=vault, policy=wanted.policy,
                                                           selections=[wanted.selection])
    job = (Job.objects.filter(instance=created, operation=JobOperation.CONFIGURE_PROTECTION)
           .order_by("-start_time").first())
    op = lro.start(request, kind=ops.INSTANCE_WRITE, resource_id=created.resource_id, location=vault.region_id,
                   job_id=str(job.pk) if job else "")
    if job is None:  # pragma: no cover - configure_protection always makes its job
        lro.succeed(op)
    return lro.created(request, op, shapes.resource(created))


def _update(request, existing: BackupInstance, wanted: shapes.Requested):
    """A PUT on an instance that exists: its policy may change (Change policy); its datasource may not."""
    if wanted.selection.resource_id.lower() != existing.datasource_resource_id.lower():
        raise ArmError(400, "UserErrorDatasourceCannotBeChanged",
                       f"The backup instance '{existing.name}' protects {existing.datasource_resource_id}; its datasource "
                       "cannot be changed. Protect the other datasource in a backup instance of its own.",
                       target="properties.dataSourceInfo.resourceID")
    if wanted.policy.pk != existing.policy_id:
        with _service_errors("properties"):
            instance_services.change_policy(request.auth, existing, wanted.policy)
    else:  # nothing to change: still the write it is, judged by the guards (as a vault PUT is)
        decision = evaluate(request.auth, ops.INSTANCE_WRITE, existing)
        if not decision.allowed:
            raise GuardDenied(decision)
    return shapes.resource(existing)


# --- validate for backup -------------------------------------------------------------------------


@router.post(VAULT + "/validateForBackup", url_name="validate_for_backup")
def validate_for_backup(request, subscriptionId: str, resourceGroupName: str, vaultName: str):
    arm_lookups.require(request.auth, ops.VALIDATE_FOR_BACKUP, vault_scope(subscriptionId, resourceGroupName, vaultName))
    body = shapes.json_body(request)
    vault = find_vault(request, subscriptionId, resourceGroupName, vaultName, action=None)
    props = body.get("backupInstance")
    name = (props or {}).get("friendlyName") if isinstance(props, dict) else None
    name = name if isinstance(name, str) and name else "validate-for-backup"
    with _service_errors("backupInstance"):
        wanted = shapes.parse_instance(vault, props, name, target="backupInstance")
        outcome = instance_services.validate_for_backup(request.auth, vault=vault, policy=wanted.policy,
                                                        selection=wanted.selection)
    op = lro.start(request, kind=ops.VALIDATE_FOR_BACKUP, resource_id=vault.resource_id, location=vault.region_id)
    if outcome.ok:
        lro.succeed(op, {"objectType": "OperationJobExtendedInfo"})
    else:
        name = wanted.selection.resource_id.rstrip("/").rsplit("/", 1)[-1]
        error = instance_services.readiness_error(name, outcome)
        lro.fail(op, error.code, error.message)
    return lro.accepted(request, op)


# --- delete, stop, suspend, resume, undelete -----------------------------------------------------


@router.delete(INSTANCE, url_name="backup_instance_delete")
def delete_instance(request, subscriptionId: str, resourceGroupName: str, vaultName: str, backupInstanceName: str):
    found = _instance(request, subscriptionId, resourceGroupName, vaultName, backupInstanceName, action=None,
                      write=ops.INSTANCE_DELETE)
    with _service_errors("properties"):
        job = deletion.delete_backup_data(request.auth, found, confirm_name=found.name)
    op = lro.start(request, kind=ops.INSTANCE_DELETE, resource_id=found.resource_id, location=found.vault.region_id,
                   job_id=str(job.pk))
    return lro.accepted(request, op)


def _done(request, instance: BackupInstance, kind: str):
    """A change the service made at once: its operation has already succeeded."""
    op = lro.start(request, kind=kind, resource_id=instance.resource_id, location=instance.vault.region_id)
    lro.succeed(op)
    return lro.accepted(request, op)


def _stop(request, path: dict, retain: str, kind: str):
    shapes.json_body(request)  # StopProtectionRequest / SuspendBackupsRequest: MUA request ids only
    found = _instance(request, **path, action=None, write=kind)
    with _service_errors("properties"):
        backups.stop_backup(request.auth, found, retain=retain)
    return _done(request, found, kind)


@router.post(INSTANCE + "/stopProtection", url_name="backup_instance_stop_protection")
def stop_protection(request, subscriptionId: str, resourceGroupName: str, vaultName: str, backupInstanceName: str):
    path = dict(subscriptionId=subscriptionId, resourceGroupName=resourceGroupName, vaultName=vaultName,
                backupInstanceName=backupInstanceName)
    return _stop(request, path, backups.RETAIN_FOREVER, ops.STOP_PROTECTION)


@router.post(INSTANCE + "/suspendBackups", url_name="backup_instance_suspend_backups")
def suspend_backups(request, subscriptionId: str, resourceGroupName: str, vaultName: str, backupInstanceName: str):
    path = dict(subscriptionId=subscriptionId, resourceGroupName=resourceGroupName, vaultName=vaultName,
                backupInstanceName=backupInstanceName)
    return _stop(request, path, backups.RETAIN_AS_PER_POLICY, ops.SUSPEND_BACKUPS)


# resumeProtection restarts a stopped instance (ProtectionStopped), resumeBackups a suspended one.
_RESUMES = {
    "resumeProtection": (ProtectionState.BACKUPS_SUSPENDED, "resumeBackups", ops.RESUME_PROTECTION),
    "resumeBackups": (ProtectionState.STOPPED, "resumeProtection", ops.RESUME_BACKUPS),
}


def _resume(request, path: dict, action: str):
    wrong_state, other, kind = _RESUMES[action]
    found = _instance(request, **path, action=None, write=kind)
    if found.protection_state == wrong_state:  # said only to a caller who may resume it
        arm_lookups.require(request.auth, kind, found.resource_id)
        raise ArmError(400, "UserErrorInvalidOperationForCurrentState",
                       f"The backup instance '{found.name}' is {found.protection_state}: use {other}, not {action}.")
    with _service_errors("properties"):
        backups.resume_backup(request.auth, found)
    return _done(request, found, kind)


@router.post(INSTANCE + "/resumeProtection", url_name="backup_instance_resume_protection")
def resume_protection(request, subscriptionId: str, resourceGroupName: str, vaultName: str, backupInstanceName: str):
    path = dict(subscriptionId=subscriptionId, resourceGroupName=resourceGroupName, vaultName=vaultName,
                backupInstanceName=backupInstanceName)
    return _resume(request, path, "resumeProtection")


@router.post(INSTANCE + "/resumeBackups", url_name="backup_instance_resume_backups")
def resume_backups(request, subscriptionId: str, resourceGroupName: str, vaultName: str, backupInstanceName: str):
    path = dict(subscriptionId=subscriptionId, resourceGroupName=resourceGroupName, vaultName=vaultName,
                backupInstanceName=backupInstanceName)
    return _resume(request, path, "resumeBackups")


@router.post(DELETED + "/{backupInstanceName}/undelete", url_name="deleted_backup_instance_undelete")
def undelete(request, subscriptionId: str, resourceGroupName: str, vaultName: str, backupInstanceName: str):
    found = _instance(request, subscriptionId, resourceGroupName, vaultName, backupInstanceName, action=None,
                      deleted=True, write=ops.UNDELETE)
    with _service_errors("properties"):
        deletion.undelete(request.auth, found)
    return _done(request, found, ops.UNDELETE)
