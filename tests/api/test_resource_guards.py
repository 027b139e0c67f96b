"""``resourceGuards`` and ``backupResourceGuardProxies`` over the ARM API: `security.mua`'s services,
the MUA guard's refusals with the pages' code and words, and an approved grant letting the unlink through."""

from __future__ import annotations

import uuid

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.dataprotection import models as sdk

from portal.mua.lab import seed_mua
from security import mua
from security import services as security_services
from security.models import ResourceGuard, RoleDefinition
from vaults import services as vault_services

pytestmark = pytest.mark.django_db

RG_TYPE = "Microsoft.DataProtection/resourceGuards"
SOFT_DELETE_OP = "Microsoft.DataProtection/backupVaults/write#reduceSoftDeleteSecurity"
INSTANCE_DELETE_OP = "Microsoft.DataProtection/backupVaults/backupInstances/delete"


def _base(group) -> str:
    return f"/subscriptions/{group.subscription.subscription_id}/resourceGroups/{group.name}/providers/Microsoft.DataProtection"


def _guard_path(lab, name) -> str:
    return f"{_base(lab.security_group)}/resourceGuards/{name}"


def _proxy_path(lab, vault_name, proxy="DppResourceGuardProxy") -> str:
    return f"{_base(lab.lab_group)}/backupVaults/{vault_name}/backupResourceGuardProxies/{proxy}"


def _name(prefix="rg-guard-api") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_put_creates_a_guard_and_get_list_and_the_sdk_model_read_it(arm, lab, security_admin):
    client = arm(security_admin)
    name = _name()
    response = client.put(_guard_path(lab, name), {"location": "eastus", "tags": {"team": "sec"}, "properties": {
        "vaultCriticalOperationExclusionList": [INSTANCE_DELETE_OP]}})
    assert response.status_code == 201, response.content
    body = client.get(_guard_path(lab, name)).json()
    assert body == response.json()
    guard = ResourceGuard.objects.get(name=name)
    assert body["id"] == guard.resource_id and body["type"] == RG_TYPE and body["location"] == "eastus"
    props = body["properties"]
    assert props["vaultCriticalOperationExclusionList"] == [INSTANCE_DELETE_OP]
    assert props["allowAutoApprovals"] is True and props["provisioningState"] == "Succeeded"
    assert {op["vaultCriticalOperation"] for op in props["resourceGuardOperations"]} >= {SOFT_DELETE_OP, INSTANCE_DELETE_OP}
    assert sdk.ResourceGuardResource(body).as_dict() == body
    for path in (f"{_base(lab.security_group)}/resourceGuards",
                 f"/subscriptions/{lab.security_subscription.subscription_id}/providers/{RG_TYPE}"):
        listed = client.get(path).json()["value"]
        assert name in [g["name"] for g in listed]
        assert all(sdk.ResourceGuardResource(g).as_dict() == g for g in listed)


def test_put_again_updates_exclusions_and_tags_patch_updates_tags_delete_removes(arm, lab, security_admin):
    client = arm(security_admin)
    name = _name()
    assert client.put(_guard_path(lab, name), {"location": "eastus"}).status_code == 201
    updated = client.put(_guard_path(lab, name), {"location": "eastus", "tags": {"a": "1"},
                                                  "properties": {"vaultCriticalOperationExclusionList": []}})
    assert updated.status_code == 200
    assert updated.json()["properties"]["vaultCriticalOperationExclusionList"] == []
    assert client.patch(_guard_path(lab, name), {"tags": {"b": "2"}}).json()["tags"] == {"b": "2"}
    assert client.delete(_guard_path(lab, name)).status_code == 200
    assert client.get(_guard_path(lab, name)).status_code == 404


def test_guard_errors_404_403_400(arm, lab, security_admin, outsider, backup_admin):
    client = arm(security_admin)
    name = _name()
    client.put(_guard_path(lab, name), {"location": "eastus"})
    missing = client.get(_guard_path(lab, "rg-guard-nope"))
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "ResourceNotFound"
    for response in (arm(outsider).get(_guard_path(lab, name)), arm(outsider).put(_guard_path(lab, _name()), {"location": "eastus"}),
                     arm(outsider).delete(_guard_path(lab, name)), arm(backup_admin).put(_guard_path(lab, name), {"location": "eastus"})):
        assert response.status_code == 403, response.content
        assert response.json()["error"]["code"] == "AuthorizationFailed"
    mandatory = client.put(_guard_path(lab, _name()), {"location": "eastus", "properties": {
        "vaultCriticalOperationExclusionList": [SOFT_DELETE_OP]}})
    assert mandatory.status_code == 400
    assert mandatory.json()["error"]["target"] == "properties.vaultCriticalOperationExclusionList"
    assert "mandatory" in mandatory.json()["error"]["message"]
    bad_name = client.put(_guard_path(lab, "-x"), {"location": "eastus"})
    assert bad_name.status_code == 400 and bad_name.json()["error"]["target"] == "resourceGuardsName"
    nowhere = client.put(_guard_path(lab, _name()), {"location": "atlantis"})
    assert nowhere.status_code == 400 and nowhere.json()["error"]["target"] == "location"
    no_location = client.put(_guard_path(lab, _name()), {})
    assert no_location.status_code == 400 and no_location.json()["error"]["target"] == "location"


@pytest.fixture
def linked(lab, backup_admin):
    """The lab's Resource Guard (approver: the security admin; the backup admin has Reader on it) and a
    fresh vault of the backup admin's."""
    guard = seed_mua(lab)
    vault = vault_services.create_vault(backup_admin, name=_name("bv-mua-api"), region=lab.region,
                                        resource_group=lab.lab_group)
    return guard, vault


def test_link_read_and_list_the_proxy_and_the_vault_says_it_is_protected(arm, lab, backup_admin, reader, outsider, linked):
    guard, vault = linked
    client = arm(backup_admin)
    body = {"properties": {"resourceGuardResourceId": guard.resource_id}}
    response = client.put(_proxy_path(lab, vault.name), body)
    assert response.status_code == 200, response.content
    proxy = response.json()
    assert proxy["properties"]["resourceGuardResourceId"] == guard.resource_id
    assert proxy["id"] == f"{vault.resource_id}/backupResourceGuardProxies/DppResourceGuardProxy"
    details = {d["vaultCriticalOperation"]: d["defaultResourceRequest"] for d in proxy["properties"]["resourceGuardOperationDetails"]}
    assert details[SOFT_DELETE_OP] == f"{guard.resource_id}/disableSoftDeleteRequests/default"
    assert sdk.ResourceGuardProxyBaseResource(proxy).as_dict() == proxy
    assert client.put(_proxy_path(lab, vault.name), body).status_code == 200  # the same link again
    assert arm(reader).get(_proxy_path(lab, vault.name)).json() == proxy
    assert client.get(_proxy_path(lab, vault.name).rsplit("/", 1)[0]).json() == {"value": [proxy]}
    vault_json = client.get(f"{_base(lab.lab_group)}/backupVaults/{vault.name}").json()
    assert vault_json["properties"]["isVaultProtectedByResourceGuard"] is True
    assert arm(outsider).get(_proxy_path(lab, vault.name)).status_code == 403
    assert client.get(_proxy_path(lab, vault.name, "OtherProxy")).status_code == 404
    wrong = client.put(_proxy_path(lab, vault.name, "OtherProxy"), body)
    assert wrong.status_code == 400 and wrong.json()["error"]["target"] == "resourceGuardProxyName"


def test_linking_needs_reader_on_the_guard_and_a_real_guard(arm, lab, backup_admin, security_admin, linked):
    guard, vault = linked
    other = mua.create_resource_guard(security_admin, resource_group_id=lab.security_group.resource_id,
                                      name=_name(), region=lab.region.pk)  # the backup admin cannot read it
    refused = arm(backup_admin).put(_proxy_path(lab, vault.name),
                                    {"properties": {"resourceGuardResourceId": other.resource_id}})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "LinkedAuthorizationFailed"
    missing = arm(lab.trainer).put(_proxy_path(lab, vault.name),
                                   {"properties": {"resourceGuardResourceId": guard.resource_id + "-gone"}})
    assert missing.status_code == 400 and missing.json()["error"]["target"] == "properties.resourceGuardResourceId"
    assert not mua.is_linked(vault.resource_id)


def test_unlinking_is_refused_with_the_mua_code_until_a_grant_is_approved(arm, lab, backup_admin, security_admin, linked):
    guard, vault = linked
    client = arm(backup_admin)
    client.put(_proxy_path(lab, vault.name), {"properties": {"resourceGuardResourceId": guard.resource_id}})
    off = client.patch(f"{_base(lab.lab_group)}/backupVaults/{vault.name}",
                       {"properties": {"securitySettings": {"softDeleteSettings": {"state": "Off"}}}})
    assert off.status_code == 400 and off.json()["error"]["code"] == "LinkedAuthorizationFailed"
    unlock = client.post(_proxy_path(lab, vault.name) + "/unlockDelete", {
        "resourceGuardOperationRequests": [f"{guard.resource_id}/deleteResourceGuardProxyRequests/default"]})
    refused = client.delete(_proxy_path(lab, vault.name))
    for response in (unlock, refused):
        assert response.status_code == 400, response.content
        error = response.json()["error"]
        assert error["code"] == "LinkedAuthorizationFailed"
        assert f"protected by the Resource Guard '{guard.name}'" in error["message"] and "Request access" in error["message"]
    assert mua.is_linked(vault.resource_id)
    request = mua.request_access(backup_admin, guard, justification="remove MUA from a test vault", hours=1)
    mua.approve_request(security_admin, request, comment="ok")
    request.refresh_from_db()
    unlocked = client.post(_proxy_path(lab, vault.name) + "/unlockDelete", {})
    assert unlocked.status_code == 200
    assert sdk.UnlockDeleteResponse(unlocked.json()).as_dict() == unlocked.json()
    assert unlocked.json()["unlockDeleteExpiryTime"].startswith(request.expires_at.strftime("%Y-%m-%dT%H:%M"))
    assert client.delete(_proxy_path(lab, vault.name)).status_code == 204
    assert not mua.is_linked(vault.resource_id)
    assert client.get(_proxy_path(lab, vault.name)).status_code == 404


def test_a_guard_with_linked_vaults_is_not_deleted(arm, lab, backup_admin, security_admin, linked):
    guard, vault = linked
    arm(backup_admin).put(_proxy_path(lab, vault.name), {"properties": {"resourceGuardResourceId": guard.resource_id}})
    response = arm(security_admin).delete(_guard_path(lab, guard.name))
    assert response.status_code == 409 and response.json()["error"]["code"] == "Conflict"
    assert vault.name in response.json()["error"]["message"]
    assert ResourceGuard.objects.filter(pk=guard.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_the_sdk_creates_a_guard_links_it_and_is_refused_the_unlink(lab, sdk_client):
    security_admin = lab.personas["security-admin"].principal
    backup_admin = lab.personas["backup-admin"].principal
    guard_name = _name()
    security = sdk_client(security_admin, lab.security_subscription.subscription_id)
    made = security.resource_guards.put(lab.security_group.name, guard_name, sdk.ResourceGuardResource(
        location="eastus", properties=sdk.ResourceGuard(vault_critical_operation_exclusion_list=[])))
    assert made.name == guard_name and made.properties.allow_auto_approvals is True
    assert security.resource_guards.get(lab.security_group.name, guard_name).id == made.id
    guard = ResourceGuard.objects.get(name=guard_name)
    mua.set_approvers(security_admin, guard, [security_admin])
    security_services.assign_role(security_admin, assignee=backup_admin, role=RoleDefinition.objects.get(name="Reader"),
                                  scope=guard.resource_id)
    admin = sdk_client(backup_admin, lab.lab_subscription.subscription_id)
    vault_name = _name("bv-sdk-mua")
    admin.backup_vaults.begin_create_or_update(lab.lab_group.name, vault_name, sdk.BackupVaultResource(
        location="eastus", properties=sdk.BackupVault(storage_settings=[sdk.StorageSetting(
            datastore_type="VaultStore", type="LocallyRedundant")]))).result()
    proxy = admin.dpp_resource_guard_proxy.create_or_update(
        lab.lab_group.name, vault_name, "DppResourceGuardProxy",
        sdk.ResourceGuardProxyBaseResource(properties=sdk.ResourceGuardProxyBase(resource_guard_resource_id=made.id)))
    assert proxy.properties.resource_guard_resource_id == made.id
    assert [p.name for p in admin.dpp_resource_guard_proxy.list(lab.lab_group.name, vault_name)] == ["DppResourceGuardProxy"]
    with pytest.raises(HttpResponseError) as refused:
        admin.dpp_resource_guard_proxy.delete(lab.lab_group.name, vault_name, "DppResourceGuardProxy")
    assert refused.value.error.code == "LinkedAuthorizationFailed"
    assert f"protected by the Resource Guard '{guard_name}'" in refused.value.error.message
    with pytest.raises(HttpResponseError) as locked:
        admin.dpp_resource_guard_proxy.unlock_delete(lab.lab_group.name, vault_name, "DppResourceGuardProxy",
                                                     sdk.UnlockDeleteRequest(resource_guard_operation_requests=[]))
    assert locked.value.error.code == "LinkedAuthorizationFailed"
