"""The ConfigureProtection job (its handler, registered in `ProtectionConfig.ready`).

`configure_protection` (`protection.instances.services`) creates the instance in
``ConfiguringProtection`` and this job; on the worker the job re-checks the datasource and the vault
identity's roles and settles the instance in ``ProtectionConfigured`` (with ``next_backup_at`` from the
policy) or ``ConfiguringProtectionFailed`` (code + reason).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError

from portal.inventory.disks.models import ManagedDisk
from portal.inventory.models import PostgresServer, StorageAccount, Volume
from portal.models import ResourceGroup
from protection import datasource_types, readiness
from protection.datasources.adls import CONTAINER_LIMIT_CODE, container_limit_error
from protection.datasources.base import MISSING_PERMISSIONS, MISSING_PERMISSIONS_MESSAGE
from protection.jobs import runner as jobs
from protection.models import BackupInstance, Job, ProtectionState
from protection.scheduling import next_backup_for
from security import services as security_services
from security.audit import guarded
from security.operations import INSTANCE_WRITE
from vaults.services import mark_protected_item_added


# The row each datasource type must still have, and how a message names it (ADLS: `_adls_problem`).
_SOURCE_ROWS = {
    datasource_types.ELASTIC_SAN: (Volume, "Elastic SAN volume"),
    datasource_types.AZURE_DISK: (ManagedDisk, "disk"),
    datasource_types.POSTGRES_FLEX: (PostgresServer, "PostgreSQL server"),
}
_SNAPSHOT_GROUP_TYPES = (datasource_types.ELASTIC_SAN, datasource_types.AZURE_DISK)


def _adls_problem(instance: BackupInstance) -> tuple[str, str] | None:
    account = StorageAccount.objects.filter(resource_id__iexact=instance.datasource_resource_id).first()
    if account is None:
        return ("UserErrorDatasourceNotFound", f"The storage account '{instance.datasource_name}' no longer exists.")
    if not account.hierarchical_namespace:
        return ("UserErrorUnsupportedStorageAccountType",
                "The storage account does not have hierarchical namespace enabled.")
    existing = set(account.containers.values_list("name", flat=True))
    chosen = existing - set(instance.excluded_containers) if instance.all_containers else set(instance.containers)
    missing = sorted(chosen - existing)
    if missing or not chosen:
        return ("UserErrorIncorrectContainersSelectedForOperation",
                f"The containers selected for protection no longer exist: {', '.join(missing) or 'none is left'}.")
    if problem := container_limit_error(len(chosen), all_containers=instance.all_containers):
        return (CONTAINER_LIMIT_CODE, problem)
    return None


def _datasource_problem(instance: BackupInstance) -> tuple[str, str] | None:
    """What stops protection now (code, message), re-checked on the worker."""
    vault = instance.vault
    if not vault.identity_enabled:
        return ("UserErrorMSIDisabled",
                f"The system-assigned identity of the vault '{vault.name}' is off. Turn it on in Identity and configure again.")
    rid, kind = instance.datasource_resource_id, instance.datasource_type
    ds = None
    if kind == datasource_types.ADLS:
        if problem := _adls_problem(instance):
            return problem
        ds = readiness.Datasource(kind, rid, instance.datasource_name)
    elif kind in _SOURCE_ROWS:
        model, noun = _SOURCE_ROWS[kind]
        if not model.objects.filter(resource_id__iexact=rid).exists():
            return ("UserErrorDatasourceNotFound", f"The {noun} '{instance.datasource_name}' no longer exists.")
        snapshot_group = instance.snapshot_resource_group_id if kind in _SNAPSHOT_GROUP_TYPES else ""
        if kind in _SNAPSHOT_GROUP_TYPES and not ResourceGroup.objects.filter(resource_id__iexact=snapshot_group).exists():
            return ("UserErrorSnapshotResourceGroupNotFound",
                    f"The snapshot resource group '{snapshot_group}' no longer exists.")
        set_id = instance.datasource_set_resource_id if kind == datasource_types.ELASTIC_SAN else ""
        ds = readiness.Datasource(kind, rid, instance.datasource_name, set_id, snapshot_group)
    missing = readiness.missing_needs(vault.identity, ds)
    if missing:
        return (MISSING_PERMISSIONS,
                f"{MISSING_PERMISSIONS_MESSAGE} The vault's identity lacks: {readiness.describe(missing)}.")
    return None


def run_configure_protection(job: Job, progress) -> dict:
    """ConfigureProtection job handler: settle the instance as configured or failed.

    The settling write acts as the person who asked for protection (the job's initiator), as the
    Azure resource provider finishes a PUT with its caller's authorization.
    """
    instance = BackupInstance.objects.select_related("vault__identity", "policy").filter(pk=job.instance_id).first()
    if instance is None:
        raise jobs.JobError("UserErrorBackupInstanceNotFound", "The backup instance was deleted before protection was configured.")
    if instance.protection_state != ProtectionState.CONFIGURING:
        return {"extended_info": {"summary": f"The instance is already {instance.get_protection_state_display()}."}}
    principal = job.initiated_by or security_services.system_principal()
    progress(current_item=f"Validating {instance.datasource_name}", items_total=1, force=True)
    problem = _datasource_problem(instance)
    if problem is not None:
        code, message = problem
        settle_configuration(principal, instance, succeeded=False, error_code=code, error_message=message)
        raise jobs.JobError(code, message)
    settle_configuration(principal, instance, succeeded=True)
    progress(items_done=1, force=True)
    return {"extended_info": {"summary": f"Protection configured for '{instance.name}'.",
                              "nextBackupAt": instance.next_backup_at.isoformat() if instance.next_backup_at else None}}


def settle_configuration(principal, instance: BackupInstance, *, succeeded: bool, error_code: str = "", error_message: str = "") -> BackupInstance:
    """ConfiguringProtection → ProtectionConfigured (next_backup_at from the policy; the vault is marked
    as having had a protected item) or → ConfiguringProtectionFailed with the code and reason."""
    to = ProtectionState.CONFIGURED if succeeded else ProtectionState.CONFIGURING_FAILED
    change = {"setting": "protectionState", "from": instance.protection_state, "to": to}
    details = {"name": instance.name, "protectionState": to}
    if not succeeded:
        details.update(errorCode=error_code, errorMessage=error_message)
    with guarded(principal, INSTANCE_WRITE, instance, change=change, details=details):
        row = BackupInstance.objects.select_for_update().select_related("policy").get(pk=instance.pk)
        if row.protection_state != ProtectionState.CONFIGURING:
            raise ValidationError(f"The backup instance '{row.name}' is {row.get_protection_state_display()}, not configuring.")
        row.protection_state = to
        row.error_code, row.error_message = error_code, error_message
        row.next_backup_at = next_backup_for(row) if succeeded else None
        row.save(update_fields=["protection_state", "error_code", "error_message", "next_backup_at", "updated_at"])
        if succeeded:
            mark_protected_item_added(instance.vault)
    for f in ("protection_state", "error_code", "error_message", "next_backup_at"):
        setattr(instance, f, getattr(row, f))
    return instance
