"""Cross Region Restore through Microsoft's SDK (azure-mgmt-dataprotection) against the live server:
fetchSecondaryRecoveryPoints, validateCrossRegionRestore, crossRegionRestore (an LRO that follows the Restore
job, run inline as a worker would while the poller waits), fetchCrossRegionRestoreJob(s); and the refusals in
ARM's words."""

from __future__ import annotations

import pytest

from portal.inventory import services as inv
from protection.jobs import runner as jobs
from protection.models import Job, JobOperation, JobStatus
from protection import regions
from protection.restores import cross_region as crr
from protection.restores import readiness, services as restore_services, targets
from tests.protection._backups_fixtures import run_job
from tests.protection._restore_fixtures import (  # noqa: F401  (fixtures)
    PG, backup, inventory, make_policy, new_account, pg_database, protect, tree_of, vault,
)
from vaults import services as vault_services

pytestmark = pytest.mark.django_db


def _body(point, container, *, region):
    return {
        "objectType": "AzureBackupRecoveryPointBasedRestoreRequest",
        "recoveryPointId": str(point.pk),
        "sourceDataStoreType": "VaultStore",
        "restoreTargetInfo": {
            "objectType": "RestoreFilesTargetInfo", "recoveryOption": "FailIfExists", "restoreLocation": region,
            "targetDetails": {"filePrefix": "crr-api/", "restoreTargetLocationType": "AzureBlobs",
                              "url": f"https://{container.account.name}.blob.core.windows.net/{container.name}",
                              "targetResourceArmId": container.resource_id},
        },
        "identityDetails": {"useSystemAssignedIdentity": True},
    }


@pytest.fixture
def replicated(lab, vault, make_policy, inventory, pg_database):
    pg_database("sr_crrapi")
    inv.refresh_postgres_server(lab.trainer, inventory.server)
    instance = protect(lab, vault, make_policy(PG), inventory.server)
    point = backup(lab, instance)
    done = run_job(Job.objects.get(operation="Replication", parameters__recoveryPointId=str(point.pk)))
    assert done.status == JobStatus.COMPLETED, done.error_message
    point.refresh_from_db()
    return point


@pytest.mark.django_db(transaction=True)
def test_cross_region_restore_through_the_sdk(lab, vault, replicated, sdk_client):
    from azure.core.exceptions import HttpResponseError
    from azure.mgmt.dataprotection import models

    point = replicated
    instance = point.instance
    group = vault.resource_group
    secondary = vault.secondary_region.pk
    client = sdk_client(lab.trainer, group.subscription.subscription_id)
    ask = models.FetchSecondaryRPsRequestParameters(source_region=vault.region_id,
                                                    source_backup_instance_id=instance.resource_id)
    # Cross Region Restore disabled: said so, in ARM's words.
    with pytest.raises(HttpResponseError) as refused:
        list(client.fetch_secondary_recovery_points.list(group.name, secondary, ask))
    assert refused.value.error.code == crr.NOT_ENABLED
    vault_services.update_cross_region_restore(lab.trainer, vault, state="Enabled")
    # The wrong location (the primary region) is named.
    with pytest.raises(HttpResponseError) as refused:
        list(client.fetch_secondary_recovery_points.list(group.name, vault.region_id, ask))
    assert refused.value.error.code == "InvalidParameter" and secondary in refused.value.error.message

    points = list(client.fetch_secondary_recovery_points.list(group.name, secondary, ask))
    assert [p.name for p in points] == [str(point.pk)]
    assert isinstance(points[0].properties, models.AzureBackupDiscreteRecoveryPoint)

    account = new_account(lab, "sacrrapi", region=vault.secondary_region)
    container = inv.create_container(lab.trainer, account, name="crrapi")
    restore_services.assign_restore_roles(lab.trainer, point, targets.PgFilesTarget(container.resource_id, "crr-api/", ""),
                                          readiness.SCOPE_RESOURCE)
    details = models.CrossRegionRestoreDetails(source_region=vault.region_id, source_backup_instance_id=instance.resource_id)
    restore = models.AzureBackupRecoveryPointBasedRestoreRequest(_body(point, container, region=secondary))
    validated = client.backup_instances.begin_validate_cross_region_restore(
        group.name, secondary, models.ValidateCrossRegionRestoreRequestObject(
            restore_request_object=restore, cross_region_restore_details=details)).result()
    assert validated.object_type == "OperationJobExtendedInfo"

    poller = client.backup_instances.begin_trigger_cross_region_restore(
        group.name, secondary, models.CrossRegionRestoreRequestObject(restore_request_object=restore,
                                                                      cross_region_restore_details=details))
    job = Job.objects.get(instance=instance, operation=JobOperation.RESTORE)
    assert job.parameters[regions.JOB_FLAG] is True
    jobs.run(job.pk)
    assert poller.result(timeout=60).job_id == str(job.pk)
    assert sorted(tree_of(container.path)) == sorted(f"crr-api/{p['item']}" for p in point.manifests)

    jobs_request = models.CrossRegionRestoreJobsRequest(source_region=vault.region_id, source_backup_vault_id=vault.resource_id)
    listed = list(client.fetch_cross_region_restore_jobs.list(group.name, secondary, jobs_request))
    assert [j.name for j in listed] == [str(job.pk)] and listed[0].properties.status == "Completed"
    one = client.fetch_cross_region_restore_job.get(group.name, secondary, models.CrossRegionRestoreJobRequest(
        source_region=vault.region_id, source_backup_vault_id=vault.resource_id, job_id=str(job.pk)))
    assert one.properties.operation_category == "Restore"


def test_a_primary_region_container_is_a_400_naming_the_field(lab, arm, vault, replicated):
    point = replicated
    vault_services.update_cross_region_restore(lab.trainer, vault, state="Enabled")
    container = inv.create_container(lab.trainer, new_account(lab, "saprimapi"), name="crrapi")
    path = (f"/subscriptions/{vault.resource_group.subscription.subscription_id}/resourceGroups/"
            f"{vault.resource_group.name}/providers/Microsoft.DataProtection/locations/{vault.secondary_region.pk}"
            "/crossRegionRestore")
    body = {"restoreRequestObject": _body(point, container, region=vault.secondary_region.pk),
            "crossRegionRestoreDetails": {"sourceRegion": vault.region_id,
                                          "sourceBackupInstanceId": point.instance.resource_id}}
    response = arm(lab.trainer).post(path, data=body)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == crr.TARGET_REGION
    assert error["target"] == "restoreRequestObject.restoreTargetInfo.targetDetails.targetResourceArmId"
    bad = arm(lab.trainer).post(path, data={**body, "crossRegionRestoreDetails": {
        "sourceRegion": vault.region_id, "sourceBackupInstanceId": "not-an-id"}})
    assert bad.status_code == 400 and bad.json()["error"]["target"] == "crossRegionRestoreDetails.sourceBackupInstanceId"
    assert not Job.objects.filter(operation=JobOperation.RESTORE).exists()
    # restoreLocation is the secondary region (the primary's, or any other, was accepted and ignored)
    in_secondary = inv.create_container(lab.trainer, new_account(lab, "sasecapi", region=vault.secondary_region),
                                        name="crrloc")
    for location in (vault.region_id, "nowhere1"):
        elsewhere = _body(point, in_secondary, region=location)
        wrong = arm(lab.trainer).post(path, data={**body, "restoreRequestObject": elsewhere})
        assert wrong.status_code == 400, wrong.content
        assert wrong.json()["error"]["target"] == "restoreRequestObject.restoreTargetInfo.restoreLocation"
        assert wrong.json()["error"]["code"] == crr.TARGET_REGION
    # fetchSecondaryRecoveryPoints' fields are at the body's top level (the target had a leading dot)
    fetch = path.replace("/crossRegionRestore", "/fetchSecondaryRecoveryPoints")
    for fields, target in (({"sourceRegion": "nowhere1"}, "sourceRegion"), ({"sourceBackupInstanceId": "x"},
                                                                          "sourceBackupInstanceId")):
        sent = {"sourceRegion": vault.region_id, "sourceBackupInstanceId": point.instance.resource_id, **fields}
        wrong = arm(lab.trainer).post(fetch, data=sent)
        assert wrong.status_code == 400 and wrong.json()["error"]["target"] == target, wrong.content
