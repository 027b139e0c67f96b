"""backupInstances and deletedBackupInstances through the ARM API: configure protection per datasource
type with the SDK's own models (readiness validated), reads, 403/404/400, soft delete and undelete,
stop / suspend / resume (MUA keeps its code), validateForBackup, and the SDK round-trip per type."""

import json
import secrets

import pytest
from azure.mgmt.dataprotection import models as m
from azure.mgmt.dataprotection._utils.model_base import _deserialize

from portal.api import lro
from protection import datasource_types, readiness
from protection.deletion import services as deletion
from protection.instances import services as instance_services
from protection.jobs import runner as jobs
from protection.models import BackupInstance, Job, JobOperation, JobStatus, ProtectionState
from security import operations as ops
from tests.api.conftest import operation_status
from tests.protection._protection_fixtures import (  # noqa: F401  (fixtures)
    inventory, make_policy, protect, vault,
)

ADLS, ESAN, PG = datasource_types.ADLS, datasource_types.ELASTIC_SAN, datasource_types.POSTGRES_FLEX
KINDS = [ADLS, ESAN, PG]


@pytest.fixture(autouse=True)
def job_outcomes(monkeypatch):
    """The LRO's job outcome, as the jobs helper registers it in ProtectionConfig.ready (test-only here)."""
    def outcome(job_id):
        job = Job.objects.filter(pk=job_id).first()
        if job is None or job.status in (JobStatus.IN_PROGRESS, JobStatus.CANCELLING):
            return None
        ok = job.status in (JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_WARNINGS)
        return lro.JobOutcome(ok, str(job.pk), job.error_code, job.error_message)

    monkeypatch.setattr(lro, "_job_outcome", [outcome])


def instance_path(vault, name, deleted=False):
    return f"{vault.resource_id}/{'deletedBackupInstances' if deleted else 'backupInstances'}/{name}"


def datasource_of(inventory, kind):
    return {ADLS: inventory.account, ESAN: inventory.volumes[0], PG: inventory.server}[kind]


def readiness_ds(lab, inventory, kind):
    source = datasource_of(inventory, kind)
    if kind == ESAN:
        return readiness.Datasource(kind, source.resource_id, source.name, inventory.san.resource_id,
                                    lab.lab_group.resource_id)
    return readiness.Datasource(kind, source.resource_id, source.name)


def grant_roles(lab, vault, inventory, kind):
    instance_services.assign_missing_roles(lab.trainer, vault=vault, datasources=[readiness_ds(lab, inventory, kind)],
                                           level=readiness.SCOPE_RESOURCE)


def sdk_instance(lab, inventory, kind, policy, name, containers=("documents",)) -> m.BackupInstanceResource:
    """The instance as an Azure script builds it, with the SDK's own model classes."""
    source = datasource_of(inventory, kind)
    resource_type = {ADLS: "Microsoft.Storage/storageAccounts", ESAN: kind, PG: kind}[kind]
    parameters = None
    if kind == ADLS:
        parameters = m.PolicyParameters(backup_datasource_parameters_list=[
            m.AdlsBlobBackupDatasourceParameters(containers_list=list(containers))])
    elif kind == ESAN:
        parameters = m.PolicyParameters(data_store_parameters_list=[m.AzureOperationalStoreParameters(
            data_store_type="OperationalStore", resource_group_id=lab.lab_group.resource_id)])
    return m.BackupInstanceResource(properties=m.BackupInstance(
        object_type="BackupInstance", friendly_name=name,
        data_source_info=m.Datasource(object_type="Datasource", datasource_type=kind, resource_id=source.resource_id,
                                      resource_name=source.name, resource_type=resource_type,
                                      resource_location=lab.region.pk, resource_uri=source.resource_id),
        policy_info=m.PolicyInfo(policy_id=policy.resource_id, policy_parameters=parameters),
    ))


def sdk_read(model_class, body):
    """What the SDK makes of a response body (its own `_deserialize`: discriminated subtypes resolved)."""
    return _deserialize(model_class, body)


def body_of(model) -> dict:
    return json.loads(json.dumps(model.as_dict()))


def run_job(instance_name, operation):
    job = Job.objects.filter(instance_name=instance_name, operation=operation).order_by("-start_time").first()
    return jobs.run(job.pk)


# --- the SDK end to end, per datasource type -------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_the_sdk_configures_protection_of_each_datasource_type(kind, transactional_db, lab, vault, inventory,
                                                               make_policy, sdk_client):
    """GIVEN the vault identity's roles WHEN a script creates the instance with the SDK's models THEN the
    PUT's poller follows the ConfigureProtection job to ProtectionConfigured, and get/list read it back."""
    policy = make_policy(kind)
    grant_roles(lab, vault, inventory, kind)
    client = sdk_client(lab.trainer, lab.lab_group.subscription.subscription_id)
    name = f"bi-sdk-{kind.rsplit('/', 1)[-1].lower()}"
    poller = client.backup_instances.begin_create_or_update(
        lab.lab_group.name, vault.name, name, sdk_instance(lab, inventory, kind, policy, name))
    assert BackupInstance.objects.get(vault=vault, name=name).protection_state == ProtectionState.CONFIGURING
    run_job(name, JobOperation.CONFIGURE_PROTECTION)
    created = poller.result(timeout=30)
    assert created.properties.current_protection_state == "ProtectionConfigured"
    assert created.properties.provisioning_state == "Succeeded"
    assert created.properties.protection_status.status == "ProtectionConfigured"
    got = client.backup_instances.get(lab.lab_group.name, vault.name, name)
    assert got.properties.data_source_info.resource_id == datasource_of(inventory, kind).resource_id
    assert got.properties.policy_info.policy_id == policy.resource_id
    assert [i.name for i in client.backup_instances.list(lab.lab_group.name, vault.name)] == [name]


# --- what the server sends is what the SDK's models read ---------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_sdk_model_round_trip_of_an_instance_made_in_the_portal(kind, arm, lab, vault, inventory, make_policy):
    """An instance configured through the services the portal's wizard calls reads back through the API,
    and BackupInstanceResource(json).as_dict() == json, discriminated subtypes included."""
    instance = protect(lab, vault, make_policy(kind), datasource_of(inventory, kind), name="bi-portal")
    response = arm(lab.trainer).get(instance_path(vault, "bi-portal"))
    assert response.status_code == 200, response.content
    body = response.json()
    model = sdk_read(m.BackupInstanceResource, body)
    assert model.as_dict() == body
    props = model.properties
    assert props.current_protection_state == "ProtectionConfigured" and props.provisioning_state == "Succeeded"
    assert props.data_source_info.datasource_type == kind and props.friendly_name == "bi-portal"
    assert body["id"] == instance.resource_id and body["type"] == "Microsoft.DataProtection/backupVaults/backupInstances"
    if kind == ADLS:
        [params] = props.policy_info.policy_parameters.backup_datasource_parameters_list
        # The SDK resolves one level of discriminator from the list's base type; the ADLS subtype sits under
        # BlobBackupDatasourceParameters, so it reads as the base type with every field kept ...
        assert params.object_type == "AdlsBlobBackupDatasourceParameters"
        assert params.as_dict()["containersList"] == ["documents", "images"]  # all containers, resolved
        # ... and as the subtype from its parent type.
        adls = sdk_read(m.BlobBackupDatasourceParameters, params.as_dict())
        assert isinstance(adls, m.AdlsBlobBackupDatasourceParameters) and adls.containers_list == ["documents", "images"]
    if kind == ESAN:
        [store] = props.policy_info.policy_parameters.data_store_parameters_list
        assert isinstance(store, m.AzureOperationalStoreParameters)
        assert store.resource_group_id == lab.lab_group.resource_id
        assert props.data_source_set_info.resource_id == inventory.san.resource_id


def test_a_configuring_instance_reads_as_provisioning(arm, lab, vault, inventory, make_policy):
    protect(lab, vault, make_policy(ADLS), inventory.account, name="bi-wait", run=False)
    props = arm(lab.trainer).get(instance_path(vault, "bi-wait")).json()["properties"]
    assert (props["provisioningState"], props["currentProtectionState"]) == ("Provisioning", "ConfiguringProtection")


# --- readiness -----------------------------------------------------------------------------------------


def test_a_missing_role_refuses_the_put_naming_the_role(arm, lab, vault, inventory, make_policy):
    policy = make_policy(ADLS)
    body = body_of(sdk_instance(lab, inventory, ADLS, policy, "bi-noroles"))
    response = arm(lab.trainer).put(instance_path(vault, "bi-noroles"), body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "UserErrorMissingRequiredPermissions"
    assert "Storage Account Backup Contributor" in error["message"]
    assert f"storage account {inventory.account.name}" in error["message"]
    assert error["target"] == "properties.dataSourceInfo.resourceID"
    assert not BackupInstance.objects.filter(name="bi-noroles").exists()


def test_validate_for_backup_fails_with_the_readiness_error_then_succeeds(arm, lab, vault, inventory, make_policy):
    policy = make_policy(PG)
    client = arm(lab.trainer)
    request = {"backupInstance": body_of(sdk_instance(lab, inventory, PG, policy, "bi-check"))["properties"]}
    response = client.post(f"{vault.resource_id}/validateForBackup", request)
    assert response.status_code == 202
    status = operation_status(client, response)
    assert status["status"] == "Failed"
    assert status["error"]["code"] == "UserErrorMissingRequiredPermissions"
    assert "PostgreSQL Flexible Server Long Term Retention Backup Role" in status["error"]["message"]
    grant_roles(lab, vault, inventory, PG)
    response = client.post(f"{vault.resource_id}/validateForBackup", request)
    assert operation_status(client, response)["status"] == "Succeeded"
    result = client.get("/" + response["Location"].split("://", 1)[1].split("/", 1)[1])
    assert sdk_read(m.OperationJobExtendedInfo, result.json()).object_type == "OperationJobExtendedInfo"
    assert not BackupInstance.objects.exists()  # validation creates nothing


# --- 403 / 404 / 400 ---------------------------------------------------------------------------------


def test_403_for_those_without_the_role(arm, lab, vault, inventory, make_policy, reader, outsider):
    policy = make_policy(ADLS)
    grant_roles(lab, vault, inventory, ADLS)
    body = body_of(sdk_instance(lab, inventory, ADLS, policy, "bi-403"))
    refused = arm(reader).put(instance_path(vault, "bi-403"), body)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "AuthorizationFailed"
    assert not BackupInstance.objects.filter(name="bi-403").exists()
    for path in (instance_path(vault, "bi-403"), f"{vault.resource_id}/backupInstances",
                 f"{vault.resource_id}/deletedBackupInstances"):
        response = arm(outsider).get(path)
        assert response.status_code == 403, path
        assert response.json()["error"]["code"] == "AuthorizationFailed"


def test_a_put_on_an_existing_instance_tells_a_caller_without_the_write_nothing(arm, lab, vault, inventory, make_policy,
                                                                              reader, outsider):
    """A PUT that would change nothing (or its datasource) is still authorized before it answers: neither the
    instance (200 with its body) nor its datasource (the 400's words) is told to a reader or an outsider."""
    policy = make_policy(ADLS)
    protect(lab, vault, policy, inventory.account, name="bi-kept")
    same = body_of(sdk_instance(lab, inventory, ADLS, policy, "bi-kept"))
    other = body_of(sdk_instance(lab, inventory, ADLS, policy, "bi-kept"))
    other["properties"]["dataSourceInfo"]["resourceID"] = inventory.flat_account.resource_id
    for who in (reader, outsider):
        for body in (same, other):
            response = arm(who).put(instance_path(vault, "bi-kept"), body)
            assert response.status_code == 403, response.content
            assert response.json()["error"]["code"] == "AuthorizationFailed"
            assert inventory.account.resource_id not in response.content.decode()


def test_a_put_that_changes_nothing_is_judged_by_the_guards(arm, lab, vault, inventory, make_policy):
    from security.guards import Refusal
    from tests.conftest import refusing

    policy = make_policy(ADLS)
    protect(lab, vault, policy, inventory.account, name="bi-same")
    body = body_of(sdk_instance(lab, inventory, ADLS, policy, "bi-same"))
    with refusing(ops.INSTANCE_WRITE, Refusal("Test", "UserErrorLockedDown", "Locked down.")):
        response = arm(lab.trainer).put(instance_path(vault, "bi-same"), body)
    assert response.status_code == 400 and response.json()["error"]["code"] == "UserErrorLockedDown", response.content


@pytest.mark.parametrize("method,suffix,deleted", [
    ("delete", "", False), ("post", "/stopProtection", False), ("post", "/suspendBackups", False),
    ("post", "/resumeProtection", False), ("post", "/resumeBackups", False), ("post", "/undelete", True),
])
def test_a_write_tells_a_caller_without_the_right_no_name_that_exists(method, suffix, deleted, arm, lab, vault, inventory,
                                                                      make_policy, outsider):
    """403 whether the vault and the instance exist or not (a 404 for the missing ones would let anyone list
    the names in any resource group); a resume in the wrong state is 403 too, not the 400 naming the state."""
    protect(lab, vault, make_policy(ADLS), inventory.account, name="bi-there")
    BackupInstance.objects.filter(name="bi-there").update(protection_state=ProtectionState.SOFT_DELETED if deleted
                                                          else ProtectionState.CONFIGURED)
    client = arm(outsider)
    ghost_vault = vault.resource_id.replace(vault.name, vault.name + "-none")
    for path in (instance_path(vault, "bi-there", deleted), instance_path(vault, "bi-none", deleted),
                 f"{ghost_vault}/{'deletedBackupInstances' if deleted else 'backupInstances'}/bi-none"):
        response = getattr(client, method)(path + suffix)
        assert response.status_code == 403, (path, response.content)
        assert response.json()["error"]["code"] == "AuthorizationFailed"
    if suffix == "/resumeProtection":  # the wrong state for it
        BackupInstance.objects.filter(name="bi-there").update(protection_state=ProtectionState.BACKUPS_SUSPENDED)
        assert client.post(instance_path(vault, "bi-there") + suffix).status_code == 403


def test_404_for_an_unknown_instance_and_a_live_one_is_no_deleted_one(arm, lab, vault, inventory, make_policy):
    protect(lab, vault, make_policy(ADLS), inventory.account, name="bi-live")
    client = arm(lab.trainer)
    for path in (instance_path(vault, "bi-nope"), instance_path(vault, "bi-live", deleted=True)):
        response = client.get(path)
        assert response.status_code == 404 and response.json()["error"]["code"] == "ResourceNotFound", path
    assert client.delete(instance_path(vault, "bi-nope")).status_code == 404
    assert client.post(instance_path(vault, "bi-live", deleted=True) + "/undelete").status_code == 404


@pytest.mark.parametrize("change,target", [
    (lambda p: p.pop("dataSourceInfo"), "properties.dataSourceInfo"),
    (lambda p: p["policyInfo"].update(policyId="/subscriptions/x/nope"), "properties.policyInfo.policyId"),
    (lambda p: p["policyInfo"]["policyParameters"]["backupDatasourceParametersList"][0].update(containersList=["nope"]),
     "properties.policyInfo.policyParameters.backupDatasourceParametersList"),
    (lambda p: p["policyInfo"]["policyParameters"]["backupDatasourceParametersList"][0].update(objectType="BlobBackupDatasourceParameters"),
     "properties.policyInfo.policyParameters.backupDatasourceParametersList[0].objectType"),
    (lambda p: p.update(friendlyName="another-name"), "properties.friendlyName"),
    (lambda p: p.update(datasourceAuthCredentials={"objectType": "SecretStoreBasedAuthCredentials"}),
     "properties.datasourceAuthCredentials"),
    (lambda p: p["dataSourceInfo"].update(resourceID=""), "properties.dataSourceInfo.resourceID"),
])
def test_400_names_the_field(change, target, arm, lab, vault, inventory, make_policy):
    grant_roles(lab, vault, inventory, ADLS)
    body = body_of(sdk_instance(lab, inventory, ADLS, make_policy(ADLS), "bi-bad"))
    change(body["properties"])
    response = arm(lab.trainer).put(instance_path(vault, "bi-bad"), body)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["target"] == target
    assert not BackupInstance.objects.filter(name="bi-bad").exists()


def test_400_for_a_body_that_is_not_json(arm, lab, vault):
    response = arm(lab.trainer).put(instance_path(vault, "bi-x"), "{not json", content_type="application/json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "InvalidRequestContent"


def test_put_on_an_existing_instance_changes_its_policy_not_its_datasource(arm, lab, vault, inventory, make_policy):
    from protection.policies.services import Retention
    from tests.protection._redating_fixtures import DAY, points

    first, second = make_policy(ADLS, default=Retention(30, "Days")), make_policy(ADLS, default=Retention(7, "Days"))
    moved = protect(lab, vault, first, inventory.account, name="bi-move")
    recent, old = points(moved, [(2, "Default", 30), (12, "Default", 30)])
    client = arm(lab.trainer)
    body = body_of(sdk_instance(lab, inventory, ADLS, second, "bi-move"))
    response = client.put(instance_path(vault, "bi-move"), body)
    assert response.status_code == 200
    assert response.json()["properties"]["policyInfo"]["policyId"] == second.resource_id
    # The new policy's retention applies to the existing points (issue 21): the 12-day-old one it expired
    # is being soft deleted, the other expires 7 days after it was taken.
    old.refresh_from_db(), recent.refresh_from_db()
    assert old.is_soft_deleted and not recent.is_soft_deleted
    assert recent.expiry_time == recent.recovery_point_time + DAY * 7
    body["properties"]["dataSourceInfo"]["resourceID"] = inventory.flat_account.resource_id
    response = client.put(instance_path(vault, "bi-move"), body)
    assert response.status_code == 400 and response.json()["error"]["code"] == "UserErrorDatasourceCannotBeChanged"


# --- soft delete, deletedBackupInstances, undelete ------------------------------------------------------


def test_delete_soft_deletes_then_deleted_instances_list_and_undelete(arm, lab, vault, inventory, make_policy):
    protect(lab, vault, make_policy(PG), inventory.server, name="bi-gone")
    client = arm(lab.trainer)
    response = client.delete(instance_path(vault, "bi-gone"))
    assert response.status_code == 202 and "api-version=" in response["Location"]
    assert operation_status(client, response)["status"] == "InProgress"  # the UnConfigure job runs
    run_job("bi-gone", JobOperation.UNCONFIGURE)
    assert operation_status(client, response)["status"] == "Succeeded"
    assert client.get(instance_path(vault, "bi-gone")).status_code == 404
    assert client.get(f"{vault.resource_id}/backupInstances").json()["value"] == []
    listed = client.get(f"{vault.resource_id}/deletedBackupInstances").json()["value"]
    assert [d["name"] for d in listed] == ["bi-gone"]
    body = client.get(instance_path(vault, "bi-gone", deleted=True)).json()
    model = sdk_read(m.DeletedBackupInstanceResource, body)
    assert model.as_dict() == body
    assert model.properties.current_protection_state == "SoftDeleted"
    assert model.properties.deletion_info.scheduled_purge_time is not None
    assert body["type"] == "Microsoft.DataProtection/backupVaults/deletedBackupInstances"
    undone = client.post(instance_path(vault, "bi-gone", deleted=True) + "/undelete")
    assert undone.status_code == 202 and operation_status(client, undone)["status"] == "Succeeded"
    assert client.get(instance_path(vault, "bi-gone")).json()["properties"]["currentProtectionState"] == "ProtectionStopped"


def test_a_hard_delete_in_progress_is_no_deleted_instance(arm, lab, vault, inventory, make_policy):
    from vaults import services as vault_services
    from vaults.models import SoftDeleteState

    vault_services.update_soft_delete(lab.trainer, vault, state=SoftDeleteState.OFF)
    protect(lab, vault, make_policy(ADLS), inventory.account, name="bi-hard")
    client = arm(lab.trainer)
    response = client.delete(instance_path(vault, "bi-hard"))
    assert response.status_code == 202
    assert client.get(instance_path(vault, "bi-hard")).json()["properties"]["provisioningState"] == "Updating"
    assert client.get(instance_path(vault, "bi-hard", deleted=True)).status_code == 404
    run_job("bi-hard", JobOperation.UNCONFIGURE)
    assert operation_status(client, response)["status"] == "Succeeded"
    assert client.get(instance_path(vault, "bi-hard")).status_code == 404


def test_undelete_after_the_purge_time_keeps_the_soft_delete_guards_code(arm, lab, vault, inventory, make_policy):
    import datetime as dt

    from security import services as security_services

    instance = protect(lab, vault, make_policy(PG), inventory.server, name="bi-late")
    jobs.run(deletion.delete_backup_data(lab.trainer, instance, confirm_name="bi-late").pk)
    security_services.move_lab_clock(lab.trainer, forward=dt.timedelta(days=20))
    response = arm(lab.trainer).post(instance_path(vault, "bi-late", deleted=True) + "/undelete")
    assert response.status_code == 409, response.content
    error = response.json()["error"]
    assert error["code"] not in ("InvalidParameter", "OperationNotAllowed") and "purge" in error["message"].lower()


# --- stop, suspend, resume ------------------------------------------------------------------------------


def test_stop_suspend_and_resume(arm, lab, vault, inventory, make_policy):
    protect(lab, vault, make_policy(ADLS), inventory.account, name="bi-stop")
    client = arm(lab.trainer)
    path = instance_path(vault, "bi-stop")

    def state():
        return client.get(path).json()["properties"]["currentProtectionState"]

    def post(action):
        response = client.post(f"{path}/{action}")
        assert response.status_code == 202, response.content
        assert operation_status(client, response)["status"] == "Succeeded"

    post("stopProtection")
    assert state() == "ProtectionStopped"
    wrong = client.post(f"{path}/resumeBackups")
    assert wrong.status_code == 400 and "resumeProtection" in wrong.json()["error"]["message"]
    post("resumeProtection")
    assert state() == "ProtectionConfigured"
    post("suspendBackups")
    assert state() == "BackupSchedulesSuspended"
    assert client.get(path).json()["properties"]["protectionStatus"]["status"] == "ProtectionStopped"
    post("resumeBackups")
    assert state() == "ProtectionConfigured"
    again = client.post(f"{path}/resumeBackups")
    assert again.status_code == 400  # nothing to resume: the service's words


def test_stop_protection_under_a_resource_guard_keeps_the_mua_code(arm, lab, vault, inventory, make_policy, security_admin,
                                                                   backup_admin):
    """The backup admin (no rights on the guard, unlike the trainer, an Owner at /) is refused by MUA."""
    from security import mua
    from security import roles
    from security import services as security_services
    from security.models import RoleDefinition

    protect(lab, vault, make_policy(ADLS), inventory.account, name="bi-mua")
    guard = mua.create_resource_guard(security_admin, resource_group_id=lab.security_group.resource_id,
                                      name="rg-guard-api", region=lab.region.pk, description="Ask Sam.",
                                      approvers=[security_admin], exclusions=[])  # every operation protected
    security_services.assign_role(security_admin, assignee=backup_admin, role=RoleDefinition.objects.get(name=roles.READER),
                                  scope=guard.resource_id)
    mua.link_resource_guard(backup_admin, vault, guard_id=guard.resource_id, region=vault.region_id)
    response = arm(backup_admin).post(instance_path(vault, "bi-mua") + "/stopProtection")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "LinkedAuthorizationFailed"
    assert BackupInstance.objects.get(name="bi-mua").protection_state == ProtectionState.CONFIGURED


def test_list_pages_with_next_link(arm, lab, vault, inventory, make_policy, settings):
    settings.STRONGROOM_API_PAGE_SIZE = 1
    protect(lab, vault, make_policy(ADLS), inventory.account, name="bi-p1")
    protect(lab, vault, make_policy(PG), inventory.server, name="bi-p2")
    client = arm(lab.trainer)
    first = client.get(f"{vault.resource_id}/backupInstances").json()
    second = client.get("/" + first["nextLink"].split("://", 1)[1].split("/", 1)[1]).json()
    assert "nextLink" not in second
    assert sorted(i["name"] for i in first["value"] + second["value"]) == ["bi-p1", "bi-p2"]


def test_a_page_of_instances_costs_no_query_per_instance(arm, lab, vault, inventory, make_policy, steady_clock):
    """No query per instance (the containers of "all containers" accounts are loaded for the page at once)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from portal.inventory import services as inv

    policy = make_policy(ADLS)
    protect(lab, vault, policy, inventory.account, name="bi-q0", all_containers=True)
    client = arm(lab.trainer)

    def cost():
        counts = {}
        for kind in ("backupInstances", "deletedBackupInstances"):
            with CaptureQueriesContext(connection) as queries:
                assert client.get(f"{vault.resource_id}/{kind}").status_code == 200
            counts[kind] = len(queries.captured_queries)
        return counts

    first = BackupInstance.objects.get(name="bi-q0")

    def add(count):  # each on an account of its own, half of them soft-deleted
        for _ in range(count):
            i = BackupInstance.objects.filter(vault=vault).count()
            account = inv.create_storage_account(lab.trainer, resource_group=lab.lab_group,
                                                 name=f"saq{i}{secrets.token_hex(4)}", region=lab.region)
            inv.create_container(lab.trainer, account, name="docs")
            first.pk, first.name, first.datasource_resource_id = None, f"bi-q{i}", account.resource_id
            first.protection_state = ProtectionState.SOFT_DELETED if i % 2 else ProtectionState.CONFIGURED
            first.save()

    add(4)
    few = cost()
    add(26)
    listed = client.get(f"{vault.resource_id}/backupInstances").json()["value"]
    assert len(listed) == 16 and all(
        i["properties"]["policyInfo"]["policyParameters"]["backupDatasourceParametersList"][0]["containersList"]
        for i in listed)
    many = cost()  # 15 more rows each (steady_clock: the lab clock's cached offset never expires mid-test)
    assert all(abs(many[kind] - few[kind]) <= 1 for kind in few), (few, many)
    # and a fixed budget (issue 22): the caller, the subscription, role assignments, the group, the vault, the
    # visible vaults, the page, the containers of its "all containers" accounts
    assert many["backupInstances"] <= INSTANCES_PAGE_QUERIES, many


INSTANCES_PAGE_QUERIES = 7
