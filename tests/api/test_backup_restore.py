"""Ad hoc backup, validateRestore and restore through the ARM API: Microsoft's SDK end to end against the
live server (the jobs run inline while its pollers wait), and the refusals in ARM's words."""

from __future__ import annotations

import datetime as dt
import io

import pytest

from portal.inventory.models import StorageAccount
from protection.jobs import runner as jobs
from protection.models import Job, JobOperation
from protection.restores import readiness, services as restore_services
from security import clock
from tests.api.conftest import operation_status
from tests.protection._restore_fixtures import (  # noqa: F401  (fixtures)
    ADLS, ESAN, PG, adls_target, backup, filled, inventory, latest_point, make_policy, new_account,
    pg_database, protect, tree_of, vault,
)
from vaults.models import PublicNetworkAccess
from vaults.networking import services as net

pytestmark = pytest.mark.django_db

RULE = {"backupRuleOptions": {"ruleName": "BackupDaily", "triggerOption": {"retentionTagOverride": "Default"}}}


def _instance_path(instance) -> str:
    return f"{instance.resource_id}"


def _restore_body(point, account, *containers) -> dict:
    criteria = [{"objectType": "ItemPathBasedRestoreCriteria", "itemPath": c, "isPathRelativeToBackupItem": True,
                 "subItemPathPrefix": []} for c in containers]
    return {
        "objectType": "AzureBackupRecoveryPointBasedRestoreRequest",
        "recoveryPointId": str(point.pk),
        "sourceDataStoreType": "VaultStore",
        "restoreTargetInfo": {
            "objectType": "ItemLevelRestoreTargetInfo", "recoveryOption": "FailIfExists",
            "restoreLocation": point.instance.vault.region_id,
            "datasourceInfo": {"objectType": "Datasource", "datasourceType": ADLS, "resourceID": account.resource_id,
                               "resourceName": account.name, "resourceLocation": account.region_id},
            "restoreCriteria": criteria,
        },
        "identityDetails": {"useSystemAssignedIdentity": True},
    }


@pytest.fixture
def adls_instance(lab, vault, make_policy, filled):
    return protect(lab, vault, make_policy(ADLS), filled.account)


def _rule_name(instance) -> str:
    return instance.policy.parsed.backup_rule_name


# =================================================================================================
# The SDK, end to end
# =================================================================================================


@pytest.mark.django_db(transaction=True)
def test_adhoc_backup_recovery_points_validate_and_restore_through_the_sdk(lab, adls_instance, filled, sdk_client):
    from azure.core.exceptions import HttpResponseError
    from azure.mgmt.dataprotection import models

    instance = adls_instance
    vault = instance.vault
    group = vault.resource_group
    client = sdk_client(lab.trainer, group.subscription.subscription_id)
    before = clock.now() - dt.timedelta(minutes=1)

    request = models.TriggerBackupRequest(backup_rule_options=models.AdHocBackupRuleOptions(
        rule_name=_rule_name(instance), trigger_option=models.AdhocBackupTriggerOption(retention_tag_override="Default")))
    poller = client.backup_instances.begin_adhoc_backup(group.name, vault.name, instance.name, request)
    job = Job.objects.get(instance=instance, operation=JobOperation.BACKUP, is_user_triggered=True)
    assert not poller.done()
    jobs.run(job.pk)  # as a worker would, while the SDK polls
    result = poller.result(timeout=60)
    assert isinstance(result, models.OperationJobExtendedInfo) and result.job_id == str(job.pk)
    # The job id resolves through backupJobs.
    fetched = client.jobs.get(group.name, vault.name, result.job_id)
    assert fetched.properties.status == "Completed" and fetched.properties.operation == "Backup"

    # The new recovery point, by a time filter as the CLI writes it.
    window = (f"startDate eq '{before:%Y-%m-%dT%H:%M:%S}Z' and "
              f"endDate eq '{clock.now() + dt.timedelta(minutes=1):%Y-%m-%dT%H:%M:%S}Z'")
    points = list(client.recovery_points.list(group.name, vault.name, instance.name, filter=window))
    assert [p.name for p in points] == [str(latest_point(instance).pk)]
    point = latest_point(instance)
    assert isinstance(points[0].properties, models.AzureBackupDiscreteRecoveryPoint)

    target_account = new_account(lab)
    body = models.AzureBackupRecoveryPointBasedRestoreRequest(_restore_body(point, target_account, "documents", "images"))
    # The vault identity lacks its restore roles on the target: validation says so, with the code.
    with pytest.raises(HttpResponseError) as refused:
        client.backup_instances.begin_validate_for_restore(
            group.name, vault.name, instance.name, models.ValidateRestoreRequestObject(restore_request_object=body)).result()
    assert refused.value.error.code == "UserErrorMissingRequiredPermissions"
    restore_services.assign_restore_roles(lab.trainer, point, adls_target(target_account), readiness.SCOPE_RESOURCE)
    validated = client.backup_instances.begin_validate_for_restore(
        group.name, vault.name, instance.name, models.ValidateRestoreRequestObject(restore_request_object=body)).result()
    assert validated.object_type == "OperationJobExtendedInfo"

    poller = client.backup_instances.begin_trigger_restore(group.name, vault.name, instance.name, body)
    restore_job = Job.objects.get(instance=instance, operation=JobOperation.RESTORE)
    jobs.run(restore_job.pk)
    result = poller.result(timeout=60)
    assert result.job_id == str(restore_job.pk)
    source = StorageAccount.objects.get(resource_id=instance.datasource_resource_id)
    for name in ("documents", "images"):
        assert tree_of(target_account.data_path / name) == tree_of(source.data_path / name)
        assert tree_of(source.data_path / name)


@pytest.mark.django_db(transaction=True)
def test_a_failed_job_fails_the_operation_with_the_jobs_code(lab, adls_instance, sdk_client):
    from azure.core.exceptions import HttpResponseError
    from azure.mgmt.dataprotection import models

    vault = adls_instance.vault
    client = sdk_client(lab.trainer, vault.resource_group.subscription.subscription_id)
    request = models.TriggerBackupRequest({"backupRuleOptions": {"ruleName": _rule_name(adls_instance),
                                                                  "triggerOption": {"retentionTagOverride": "Default"}}})
    poller = client.backup_instances.begin_adhoc_backup(vault.resource_group.name, vault.name, adls_instance.name, request)
    job = Job.objects.get(instance=adls_instance, operation=JobOperation.BACKUP)
    jobs.finish(job, "Failed", error_code="UserErrorBackupStorageFull", error_message="The vault's store is full.")
    with pytest.raises(HttpResponseError) as failed:
        poller.result(timeout=60)
    assert failed.value.error.code == "UserErrorBackupStorageFull"


# =================================================================================================
# ARM's answers (the test client)
# =================================================================================================


def test_adhoc_backup_answers_202_and_follows_the_job(lab, arm, adls_instance):
    client = arm(lab.trainer)
    body = {"backupRuleOptions": {"ruleName": _rule_name(adls_instance), "triggerOption": {}}}
    response = client.post(f"{adls_instance.resource_id}/backup", body)
    assert response.status_code == 202, response.content
    assert response["Location"].startswith("http") and "api-version=" in response["Location"]
    job = Job.objects.get(instance=adls_instance, operation=JobOperation.BACKUP)
    assert job.retention_tag == "Default" and job.is_user_triggered
    assert operation_status(client, response)["status"] == "InProgress"
    jobs.run(job.pk)
    status = operation_status(client, response)
    assert status["status"] == "Succeeded"
    assert status["properties"] == {"objectType": "OperationJobExtendedInfo", "jobId": str(job.pk)}
    result = client.get("/" + response["Location"].split("://", 1)[1].split("/", 1)[1])
    assert result.status_code == 200 and result.json()["jobId"] == str(job.pk)


@pytest.mark.parametrize("body, target", [
    ({"backupRuleOptions": {"ruleName": "NoSuchRule", "triggerOption": {}}}, "backupRuleOptions.ruleName"),
    ({"backupRuleOptions": {"ruleName": "RULE", "triggerOption": {"retentionTagOverride": "Yearly"}}},
     "backupRuleOptions.triggerOption.retentionTagOverride"),
    ({"backupRuleOptions": {"triggerOption": {}}}, "backupRuleOptions.ruleName"),
])
def test_bad_backup_requests_name_the_field(lab, arm, adls_instance, body, target):
    if body["backupRuleOptions"].get("ruleName") == "RULE":
        body["backupRuleOptions"]["ruleName"] = _rule_name(adls_instance)
    response = arm(lab.trainer).post(f"{adls_instance.resource_id}/backup", body)
    assert response.status_code == 400
    assert response.json()["error"]["target"] == target
    assert not Job.objects.filter(operation=JobOperation.BACKUP).exists()


def test_backup_403_404_and_the_network_guard_keeps_its_code(lab, arm, adls_instance, reader, outsider):
    body = {"backupRuleOptions": {"ruleName": _rule_name(adls_instance), "triggerOption": {}}}
    refused = arm(reader).post(f"{adls_instance.resource_id}/backup", body)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "AuthorizationFailed"
    assert "backup/action" in refused.json()["error"]["message"]
    assert arm(outsider).post(f"{adls_instance.resource_id}/backup", body).status_code == 403
    missing = arm(lab.trainer).post(adls_instance.resource_id.replace(adls_instance.name, "nope") + "/backup", body)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "ResourceNotFound"
    net.set_public_network_access(lab.trainer, adls_instance.vault, PublicNetworkAccess.DISABLED)
    guarded = arm(lab.trainer).post(f"{adls_instance.resource_id}/backup", body)
    assert guarded.status_code == 400, guarded.content
    assert guarded.json()["error"]["code"] == "PublicNetworkAccessDenied"
    assert not Job.objects.filter(operation=JobOperation.BACKUP).exists()


@pytest.fixture
def backed_up(lab, adls_instance):
    return adls_instance, backup(lab, adls_instance)


def test_restore_requests_azure_cannot_map_get_an_honest_400(lab, arm, backed_up):
    instance, point = backed_up
    account = new_account(lab)
    client = arm(lab.trainer)
    path = f"{instance.resource_id}/restore"
    body = _restore_body(point, account, "documents")
    cases = [
        ({**body, "objectType": "AzureBackupRestoreWithRehydrationRequest", "rehydrationPriority": "High",
          "rehydrationRetentionDuration": "P10D"}, "UserErrorRehydrationNotNeeded", "recoveryPointId"),
        ({**body, "objectType": "AzureBackupRecoveryTimeBasedRestoreRequest", "recoveryPointTime": "2026-01-01T00:00:00Z"},
         "UserErrorPointInTimeRestoreNotSupported", "objectType"),
        ({**body, "recoveryPointId": "not-a-point"}, "UserErrorRecoveryPointNotFound", "recoveryPointId"),
        ({**body, "sourceDataStoreType": "OperationalStore"}, "InvalidParameter", "sourceDataStoreType"),
        ({**body, "restoreTargetInfo": {**body["restoreTargetInfo"], "objectType": "RestoreFilesTargetInfo"}},
         "InvalidRequestContent", "restoreTargetInfo.objectType"),
        ({**body, "restoreTargetInfo": {**body["restoreTargetInfo"], "recoveryOption": "Overwrite"}},
         "InvalidParameter", "restoreTargetInfo.recoveryOption"),
        ({**body, "restoreTargetInfo": {**body["restoreTargetInfo"], "restoreCriteria": [
            {"objectType": "RangeBasedItemLevelRestoreCriteria", "minMatchingValue": "a", "maxMatchingValue": "b"}]}},
         "InvalidRequestContent", "restoreTargetInfo.restoreCriteria[0].objectType"),
        ({**body, "restoreTargetInfo": {**body["restoreTargetInfo"], "datasourceInfo": {
            **body["restoreTargetInfo"]["datasourceInfo"], "resourceID": account.resource_id + "x"}}},
         "UserErrorRestoreTargetNotFound", "restoreTargetInfo.datasourceInfo.resourceID"),
    ]
    for case, code, target in cases:
        response = client.post(path, case)
        assert response.status_code == 400, (code, response.content)
        assert (response.json()["error"]["code"], response.json()["error"]["target"]) == (code, target)
    missing = {k: v for k, v in body.items() if k != "sourceDataStoreType"}
    response = client.post(path, missing)
    assert response.status_code == 400 and response.json()["error"]["target"] == "sourceDataStoreType"
    assert not Job.objects.filter(operation=JobOperation.RESTORE).exists()


def test_validate_restore_names_fields_under_restore_request_object(lab, arm, backed_up, reader):
    instance, point = backed_up
    account = new_account(lab)
    body = _restore_body(point, account, "nosuchcontainer")
    response = arm(lab.trainer).post(f"{instance.resource_id}/validateRestore", {"restoreRequestObject": body})
    assert response.status_code == 400
    assert response.json()["error"]["target"] == "restoreRequestObject.restoreTargetInfo.restoreCriteria"
    refused = arm(reader).post(f"{instance.resource_id}/validateRestore", {"restoreRequestObject": body})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "AuthorizationFailed"
    refused = arm(reader).post(f"{instance.resource_id}/restore", body)
    assert refused.status_code == 403


def test_restore_with_prefix_and_rename_through_the_api(lab, arm, backed_up, filled):
    instance, point = backed_up
    account = new_account(lab)
    body = _restore_body(point, account, "documents")
    body["restoreTargetInfo"]["restoreCriteria"][0].update(subItemPathPrefix=["dir0/"], renameTo="docs-restored")
    restore_services.assign_restore_roles(lab.trainer, point, adls_target(account), readiness.SCOPE_RESOURCE)
    client = arm(lab.trainer)
    assert client.post(f"{instance.resource_id}/validateRestore", {"restoreRequestObject": body}).status_code == 202
    response = client.post(f"{instance.resource_id}/restore", body)
    assert response.status_code == 202, response.content
    job = Job.objects.get(operation=JobOperation.RESTORE)
    jobs.run(job.pk)
    assert operation_status(client, response)["status"] == "Succeeded"
    source = tree_of(filled.account.data_path / "documents")
    assert tree_of(account.data_path / "docs-restored") == {k: v for k, v in source.items() if k.startswith("dir0/")}


# =================================================================================================
# Elastic SAN (a new volume) and PostgreSQL (files into a container), through the API
# =================================================================================================


def _restore(client, instance, body):
    response = client.post(f"{instance.resource_id}/restore", body)
    assert response.status_code == 202, response.content
    job = Job.objects.get(operation=JobOperation.RESTORE, instance=instance)
    jobs.run(job.pk)
    status = operation_status(client, response)
    assert status["status"] == "Succeeded", status
    return job


def test_elastic_san_restores_as_a_new_volume(lab, arm, vault, make_policy, filled):
    from portal.inventory import volumes as volume_files
    from portal.inventory.models import Volume
    from protection.restores import targets

    volume = filled.volumes[0]
    instance = protect(lab, vault, make_policy(ESAN), volume)
    point = backup(lab, instance)
    group = volume.volume_group
    restore_services.assign_restore_roles(lab.trainer, point, targets.VolumeTarget(group.resource_id, "vol-api"),
                                          readiness.SCOPE_RESOURCE)
    body = {
        "objectType": "AzureBackupRecoveryPointBasedRestoreRequest", "recoveryPointId": str(point.pk),
        "sourceDataStoreType": "OperationalStore",
        "restoreTargetInfo": {"objectType": "RestoreTargetInfo", "recoveryOption": "FailIfExists",
                              "restoreLocation": vault.region_id,
                              "datasourceInfo": {"objectType": "Datasource", "datasourceType": ESAN,
                                                 "resourceID": f"{group.resource_id}/volumes/vol-api"}},
    }
    client = arm(lab.trainer)
    assert client.post(f"{instance.resource_id}/validateRestore", {"restoreRequestObject": body}).status_code == 202
    _restore(client, instance, body)
    restored = Volume.objects.get(volume_group=group, name="vol-api")
    assert volume_files.image_checksum(restored.image_path) == volume_files.image_checksum(volume.image_path)
    again = client.post(f"{instance.resource_id}/restore", body)  # never overwrites
    assert again.status_code == 400
    assert again.json()["error"]["target"] == "restoreTargetInfo.datasourceInfo.resourceID"


def test_postgres_restores_as_files_named_by_the_containers_url(lab, arm, vault, make_policy, inventory, pg_database):
    from portal.inventory import services as inv
    from protection.restores import layout, targets

    source = pg_database("sr_api")
    inv.refresh_postgres_server(lab.trainer, inventory.server)
    instance = protect(lab, vault, make_policy(PG), inventory.server)
    point = backup(lab, instance)
    account = new_account(lab)
    container = inv.create_container(lab.trainer, account, name="pgdumps")
    restore_services.assign_restore_roles(lab.trainer, point, targets.PgFilesTarget(container.resource_id, "", ""),
                                          readiness.SCOPE_RESOURCE)
    body = {
        "objectType": "AzureBackupRecoveryPointBasedRestoreRequest", "recoveryPointId": str(point.pk),
        "sourceDataStoreType": "VaultStore",
        "restoreTargetInfo": {"objectType": "RestoreFilesTargetInfo", "recoveryOption": "FailIfExists",
                              "restoreLocation": vault.region_id, "sourceDatabaseName": source,
                              "targetDetails": {"url": f"https://{account.name}.blob.core.windows.net/pgdumps",
                                                "filePrefix": "api/", "restoreTargetLocationType": "AzureBlobs"}},
    }
    _restore(arm(lab.trainer), instance, body)
    files = tree_of(container.path)
    assert set(files) == {"api/globals.sql", f"api/{source}.dump"}
    with layout.open_point_store(point) as store:
        part = next(p for p in layout.databases(point) if p.database == source)
        out = io.BytesIO()
        store.restore_stream(part.snapshot_id, out)
    assert files[f"api/{source}.dump"] == out.getvalue()


HOSTILE = [
    lambda b: b | {"restoreTargetInfo": {**b["restoreTargetInfo"], "datasourceInfo": "x"}},
    lambda b: b | {"restoreTargetInfo": {**b["restoreTargetInfo"], "datasourceInfo": {"resourceID": 7}}},
    lambda b: b | {"restoreTargetInfo": {**b["restoreTargetInfo"], "restoreCriteria": "documents"}},
    lambda b: b | {"restoreTargetInfo": {**b["restoreTargetInfo"], "restoreCriteria": [
        {"objectType": "ItemPathBasedRestoreCriteria", "itemPath": "documents", "subItemPathPrefix": "a"}]}},
    lambda b: b | {"restoreTargetInfo": {**b["restoreTargetInfo"], "restoreCriteria": [
        {"objectType": "ItemPathBasedRestoreCriteria", "itemPath": "documents", "renameTo": 5}]}},
    lambda b: b | {"restoreTargetInfo": {**b["restoreTargetInfo"], "restoreCriteria": [
        {"objectType": "ItemPathBasedRestoreCriteria", "itemPath": ""}]}},
    lambda b: b | {"restoreTargetInfo": "x"},
    lambda b: b | {"identityDetails": {"useSystemAssignedIdentity": False}},
    lambda b: b | {"objectType": "Nonsense"},
    lambda b: {},
]


def test_hostile_restore_bodies_are_400_never_500(lab, arm, backed_up):
    instance, point = backed_up
    account = new_account(lab)
    client = arm(lab.trainer)
    for i, mangle in enumerate(HOSTILE):
        body = mangle(_restore_body(point, account, "documents"))
        for path, data in ((f"{instance.resource_id}/restore", body),
                           (f"{instance.resource_id}/validateRestore", {"restoreRequestObject": body})):
            response = client.post(path, data)
            assert response.status_code == 400, (i, path, response.content)
            assert response.json()["error"]["code"]


@pytest.mark.parametrize("url", ["https://[x/pgdumps", "https://a.blob.core.windows.net:port/pgdumps", ""])
def test_a_restore_files_url_that_does_not_parse_is_a_400(url):
    from portal.api.errors import ArmError
    from protection.api import restores

    with pytest.raises(ArmError) as raised:
        restores._container_id({"url": url}, "restoreRequestObject.")
    assert raised.value.status == 400
    assert raised.value.target.startswith("restoreRequestObject.restoreTargetInfo.targetDetails")
