"""Azure Disk through Microsoft's SDK (azure-mgmt-dataprotection) against the live server: a backup instance
with a Daily disk policy and its snapshot resource group (AzureOperationalStoreParameters), an ad hoc backup,
its recovery point, and a restore to a new disk (RestoreTargetInfo with the new disk's datasourceInfo and the
restoreLocation), checked byte for byte; an existing disk name is refused before anything is written."""

from __future__ import annotations

import os
import random

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.dataprotection import models as m

from portal.inventory import volumes
from portal.inventory.disks import services as disks
from portal.inventory.disks.models import ManagedDisk
from protection import datasource_types, readiness
from protection.instances import services as instance_services
from protection.models import JobOperation
from protection.restores import services as restore_services, targets
from security import operations as ops
from tests.api.test_sdk_fidelity import _run, done, failed, refused
from tests.protection._restore_fixtures import latest_point, make_policy, vault  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

DISK = datasource_types.AZURE_DISK


def _disk_instance(disk, policy, snapshot_group, name) -> m.BackupInstanceResource:
    return m.BackupInstanceResource(properties=m.BackupInstance(
        friendly_name=name,
        data_source_info=m.Datasource(resource_id=disk.resource_id, datasource_type=DISK, object_type="Datasource",
                                      resource_type=ops.DISK_TYPE, resource_name=disk.name, resource_location=disk.region_id),
        data_source_set_info=m.DatasourceSet(resource_id=disk.resource_id, datasource_type=DISK, object_type="DatasourceSet",
                                             resource_type=ops.DISK_TYPE, resource_name=disk.name,
                                             resource_location=disk.region_id),
        policy_info=m.PolicyInfo(policy_id=policy.resource_id, policy_parameters=m.PolicyParameters(
            data_store_parameters_list=[m.AzureOperationalStoreParameters(
                data_store_type="OperationalStore", resource_group_id=snapshot_group.resource_id)])),
        object_type="BackupInstance"))


def _restore_request(point, group, disk_name, region) -> m.AzureBackupRecoveryPointBasedRestoreRequest:
    new_id = f"{group.resource_id}/providers/{ops.DISK_TYPE}/{disk_name}"
    return m.AzureBackupRecoveryPointBasedRestoreRequest(
        recovery_point_id=str(point.pk), source_data_store_type="OperationalStore",
        restore_target_info=m.RestoreTargetInfo(
            recovery_option="FailIfExists", restore_location=region,
            datasource_info=m.Datasource(resource_id=new_id, datasource_type=DISK, object_type="Datasource",
                                         resource_type=ops.DISK_TYPE, resource_name=disk_name, resource_location=region)),
        identity_details=m.IdentityDetails(use_system_assigned_identity=True))


def test_a_disk_is_protected_backed_up_and_restored_to_a_new_disk_through_the_sdk(lab, vault, make_policy, sdk_client):
    disk = disks.create_disk(lab.trainer, resource_group=lab.lab_group, name="disk-sdk", region=lab.region, size_gib=1)
    with volumes.open_image(disk.image_path, write=True) as fd:
        os.pwrite(fd, random.Random(3).randbytes(2 * 1024**2), 5 * 1024**2)
    policy = make_policy(DISK)
    client = sdk_client(lab.trainer, lab.lab_group.subscription.subscription_id)
    at = (lab.lab_group.name, vault.name, "bi-disk-sdk")
    wanted = _disk_instance(disk, policy, lab.target_group, "bi-disk-sdk")

    # The snapshot resource group may not be the disk's own; then the vault identity lacks its roles.
    own = _disk_instance(disk, policy, lab.lab_group, "bi-disk-sdk")
    refused(lambda: client.backup_instances.begin_validate_for_backup(
        at[0], at[1], m.ValidateForBackupRequest(backup_instance=own.properties)), 400, "InvalidParameter")
    check = m.ValidateForBackupRequest(backup_instance=wanted.properties)
    failed(client.backup_instances.begin_validate_for_backup(at[0], at[1], check), "UserErrorMissingRequiredPermissions")
    ds = readiness.Datasource(DISK, disk.resource_id, disk.name, snapshot_resource_group_id=lab.target_group.resource_id)
    instance_services.assign_missing_roles(lab.trainer, vault=vault, datasources=[ds], level=readiness.SCOPE_RESOURCE)
    done(client.backup_instances.begin_validate_for_backup(at[0], at[1], check))

    poller = client.backup_instances.begin_create_or_update(*at, wanted)
    _run(at[2], JobOperation.CONFIGURE_PROTECTION)
    made = done(poller)
    assert made.properties.current_protection_state == "ProtectionConfigured"
    assert made.properties.data_source_info.resource_type == ops.DISK_TYPE
    [params] = made.properties.policy_info.policy_parameters.data_store_parameters_list
    assert isinstance(params, m.AzureOperationalStoreParameters)
    assert params.resource_group_id.lower() == lab.target_group.resource_id.lower()

    trigger = m.TriggerBackupRequest(backup_rule_options=m.AdHocBackupRuleOptions(
        rule_name=policy.parsed.backup_rule_name, trigger_option=m.AdhocBackupTriggerOption(retention_tag_override="Default")))
    poller = client.backup_instances.begin_adhoc_backup(*at, trigger)
    job = _run(at[2], JobOperation.BACKUP)
    assert done(poller).job_id == str(job.pk)
    point = latest_point(job.instance)
    [listed] = list(client.recovery_points.list(*at))
    assert listed.name == str(point.pk)
    assert listed.properties.recovery_point_data_stores_details[0].type == "OperationalStore"

    # The source disk's own name in its group: refused before anything is written.
    taken = _restore_request(point, lab.lab_group, disk.name, vault.region_id)
    refused(lambda: client.backup_instances.begin_validate_for_restore(
        *at, m.ValidateRestoreRequestObject(restore_request_object=taken)), 400, "UserErrorTargetDiskAlreadyExists")
    body = _restore_request(point, lab.target_group, "disk-sdk-restored", vault.region_id)
    with pytest.raises(HttpResponseError) as lacking:  # Disk Restore Operator is missing on the target group
        client.backup_instances.begin_validate_for_restore(
            *at, m.ValidateRestoreRequestObject(restore_request_object=body)).result()
    assert lacking.value.error.code == "UserErrorMissingRequiredPermissions"
    assert "Disk Restore Operator" in lacking.value.error.message
    restore_services.assign_restore_roles(lab.trainer, point, targets.DiskTarget(lab.target_group.resource_id,
                                                                                 "disk-sdk-restored"), readiness.SCOPE_RESOURCE)
    done(client.backup_instances.begin_validate_for_restore(*at, m.ValidateRestoreRequestObject(restore_request_object=body)))
    poller = client.backup_instances.begin_trigger_restore(*at, body)
    restore_job = _run(at[2], JobOperation.RESTORE)
    assert done(poller).job_id == str(restore_job.pk)
    new = ManagedDisk.objects.get(resource_group=lab.target_group, name="disk-sdk-restored")
    assert volumes.image_checksum(new.image_path) == volumes.image_checksum(disk.image_path)
    for d in (disk, new):
        volumes.remove_image(d.image_path)
