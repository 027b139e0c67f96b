"""``backupVaults`` and ``checkNameAvailability`` over the ARM API: the vault pages' services and guards,
in the SDK's shapes."""

from __future__ import annotations

import uuid

import pytest
from azure.mgmt.dataprotection import models as sdk

from tests.api.conftest import operation_status
from vaults.guards import register_contents_check, unregister_contents_check
from vaults.models import BackupVault

pytestmark = pytest.mark.django_db

BV = "Microsoft.DataProtection/backupVaults"


def _rg_path(lab, group=None) -> str:
    group = group or lab.lab_group
    return f"/subscriptions/{group.subscription.subscription_id}/resourceGroups/{group.name}/providers/Microsoft.DataProtection"


def _vault_path(lab, name: str) -> str:
    return f"{_rg_path(lab)}/backupVaults/{name}"


def _name(prefix="bv-api") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _body(redundancy="LocallyRedundant", **properties) -> dict:
    return {
        "location": "eastus",
        "tags": {"env": "test"},
        "identity": {"type": "SystemAssigned"},
        "properties": {"storageSettings": [{"datastoreType": "VaultStore", "type": redundancy}], **properties},
    }


def _create(client, lab, name=None, **kw):
    name = name or _name()
    response = client.put(_vault_path(lab, name), _body(**kw))
    assert response.status_code == 201, response.content
    return name, response


def test_put_creates_a_vault_whose_operation_succeeds_and_get_shows_it(arm, lab, backup_admin):
    client = arm(backup_admin)
    name, response = _create(client, lab, securitySettings={
        "softDeleteSettings": {"state": "On", "retentionDurationInDays": 30}})
    assert "api-version=" in response["Azure-AsyncOperation"] and response["Retry-After"]
    assert operation_status(client, response)["status"] == "Succeeded"
    body = client.get(_vault_path(lab, name)).json()
    vault = BackupVault.objects.get(name=name)
    assert body["id"] == vault.resource_id and body["type"] == BV and body["location"] == "eastus"
    assert body["tags"] == {"env": "test"}
    props = body["properties"]
    assert props["provisioningState"] == "Succeeded"
    assert props["storageSettings"] == [{"datastoreType": "VaultStore", "type": "LocallyRedundant"}]
    assert props["securitySettings"]["softDeleteSettings"] == {"state": "On", "retentionDurationInDays": 30.0}
    assert props["securitySettings"]["immutabilitySettings"] == {"state": "Disabled"}
    assert props["featureSettings"]["crossSubscriptionRestoreSettings"] == {"state": "Enabled"}
    assert props["isVaultProtectedByResourceGuard"] is False and props["secureScore"] == "Adequate"
    assert body["identity"]["type"] == "SystemAssigned" and body["identity"]["principalId"] == str(vault.identity_id)


def test_the_vault_json_round_trips_through_the_sdk_model(arm, lab, backup_admin):
    client = arm(backup_admin)
    name, created = _create(client, lab)
    for body in (created.json(), client.get(_vault_path(lab, name)).json()):
        model = sdk.BackupVaultResource(body)
        assert model.as_dict() == body  # Strongroom's one extension too: the SDK keeps what it does not know
        assert body["properties"]["strongroomStorageLocation"] == {"type": "Local"}
        assert model.properties.storage_settings[0].type == sdk.StorageSettingTypes.LOCALLY_REDUNDANT
        assert model.properties.security_settings.soft_delete_settings.state == sdk.SoftDeleteState.ON
    listed = client.get(f"{_rg_path(lab)}/backupVaults").json()["value"]
    assert all(sdk.BackupVaultResource(v).as_dict() == v for v in listed)


def test_get_is_404_for_a_missing_vault_and_403_for_an_outsider(arm, lab, backup_admin, outsider):
    name, _ = _create(arm(backup_admin), lab)
    missing = arm(backup_admin).get(_vault_path(lab, "bv-nope"))
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "ResourceNotFound"
    for path in (_vault_path(lab, name), _vault_path(lab, "bv-nope")):
        denied = arm(outsider).get(path)
        assert denied.status_code == 403 and denied.json()["error"]["code"] == "AuthorizationFailed"
        assert "backupVaults/read" in denied.json()["error"]["message"]


def test_a_reader_may_read_but_not_write(arm, lab, backup_admin, reader):
    name, _ = _create(arm(backup_admin), lab)
    client = arm(reader)
    assert client.get(_vault_path(lab, name)).status_code == 200
    for response in (client.put(_vault_path(lab, name), _body()), client.put(_vault_path(lab, _name()), _body()),
                     client.patch(_vault_path(lab, name), {"tags": {"x": "y"}}), client.patch(_vault_path(lab, name), {}),
                     client.delete(_vault_path(lab, name))):
        assert response.status_code == 403, response.content
        assert response.json()["error"]["code"] == "AuthorizationFailed"
    assert BackupVault.objects.get(name=name).tags == {"env": "test"}


@pytest.mark.parametrize("change, target", [
    (lambda b: b["properties"]["storageSettings"][0].update(type="Cheap"), "properties.storageSettings.0.type"),
    (lambda b: b["properties"].update(securitySettings={"softDeleteSettings": {"state": "On", "retentionDurationInDays": 5}}),
     "properties.securitySettings.softDeleteSettings.retentionDurationInDays"),
    (lambda b: b["properties"].update(securitySettings={"softDeleteSettings": {"state": "On", "retentionDurationInDays": 20.5}}),
     "properties.securitySettings.softDeleteSettings.retentionDurationInDays"),
    (lambda b: b.update(location="atlantis"), "location"),
    (lambda b: b.update(identity={"type": "UserAssigned"}), "identity.type"),
    (lambda b: b["properties"].pop("storageSettings"), "properties.storageSettings"),
    (lambda b: b["properties"].update(featureSettings={"crossRegionRestoreSettings": {"state": "Enabled"}}),
     "properties.featureSettings.crossRegionRestoreSettings.state"),
])
def test_bad_input_is_400_naming_the_field(arm, lab, backup_admin, change, target):
    body = _body()
    change(body)
    response = arm(backup_admin).put(_vault_path(lab, _name()), body)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["target"] == target
    assert not BackupVault.objects.filter(name__startswith="bv-api").exists()


def test_a_bad_vault_name_is_400_naming_it(arm, lab, backup_admin):
    response = arm(backup_admin).put(_vault_path(lab, "9-starts-with-a-digit"), _body())
    assert response.status_code == 400 and response.json()["error"]["target"] == "name"


def test_put_on_an_existing_vault_updates_it_and_keeps_its_location(arm, lab, backup_admin):
    client = arm(backup_admin)
    name, _ = _create(client, lab, redundancy="GeoRedundant")
    body = _body(redundancy="GeoRedundant", featureSettings={"crossRegionRestoreSettings": {"state": "Enabled"}})
    body["tags"] = {"owner": "ops"}
    response = client.put(_vault_path(lab, name), body)
    assert response.status_code == 200, response.content
    assert operation_status(client, response)["status"] == "Succeeded"
    vault = BackupVault.objects.get(name=name)
    assert vault.tags == {"owner": "ops"} and vault.cross_region_restore_state == "Enabled"
    moved = client.put(_vault_path(lab, name), {**body, "location": "westus"})
    assert moved.status_code == 400 and moved.json()["error"]["code"] == "InvalidResourceLocation"


def test_patch_changes_settings_through_their_services(arm, lab, backup_admin):
    client = arm(backup_admin)
    name, _ = _create(client, lab)
    response = client.patch(_vault_path(lab, name), {
        "tags": {"a": "b"},
        "properties": {"securitySettings": {"softDeleteSettings": {"state": "On", "retentionDurationInDays": 60},
                                            "immutabilitySettings": {"state": "Unlocked"}},
                       "featureSettings": {"crossSubscriptionRestoreSettings": {"state": "Disabled"}}},
    })
    assert response.status_code == 200, response.content
    props = response.json()["properties"]
    assert props["securitySettings"]["softDeleteSettings"]["retentionDurationInDays"] == 60.0
    assert props["securitySettings"]["immutabilitySettings"]["state"] == "Unlocked"
    assert props["featureSettings"]["crossSubscriptionRestoreSettings"]["state"] == "Disabled"
    assert response.json()["tags"] == {"a": "b"}
    off = client.patch(_vault_path(lab, name), {"identity": {"type": "None"}})
    assert off.json()["identity"] == {"type": "None"}
    alerts = client.patch(_vault_path(lab, name), {"properties": {"monitoringSettings": {
        "azureMonitorAlertSettings": {"alertsForAllJobFailures": "Disabled"}}}})
    assert alerts.status_code == 400
    assert alerts.json()["error"]["target"] == "properties.monitoringSettings.azureMonitorAlertSettings.alertsForAllJobFailures"


def test_guard_refusals_keep_their_codes(arm, lab, backup_admin):
    client = arm(backup_admin)
    name, _ = _create(client, lab)
    path = _vault_path(lab, name)

    def security(**settings):
        return {"properties": {"securitySettings": settings}}

    assert client.patch(path, security(softDeleteSettings={"state": "AlwaysOn"})).status_code == 200
    leave = client.patch(path, security(softDeleteSettings={"state": "On"}))
    assert leave.status_code == 409 and leave.json()["error"]["code"].startswith("UserError")
    assert client.patch(path, security(immutabilitySettings={"state": "Unlocked"})).status_code == 200
    assert client.patch(path, security(immutabilitySettings={"state": "Locked"})).status_code == 200
    unlock = client.patch(path, security(immutabilitySettings={"state": "Disabled"}))
    assert unlock.status_code == 409 and unlock.json()["error"]["code"] == "UserErrorImmutabilityLocked"
    vault = BackupVault.objects.get(name=name)
    assert (vault.soft_delete_state, vault.immutability_state) == ("AlwaysOn", "Locked")


def test_delete_answers_202_and_the_vault_is_gone_unless_it_holds_contents(arm, lab, backup_admin):
    """(Backup Contributor may not delete a vault, as in Azure: the Owner does.)"""
    denied = arm(backup_admin).delete(_vault_path(lab, _create(arm(backup_admin), lab)[0]))
    assert denied.status_code == 403 and "backupVaults/delete" in denied.json()["error"]["message"]
    client = arm(lab.trainer)
    name, _ = _create(client, lab)
    vault = BackupVault.objects.get(name=name)

    def holds(v):
        return v.pk == vault.pk

    register_contents_check(holds)
    try:
        refused = client.delete(_vault_path(lab, name))
    finally:
        unregister_contents_check(holds)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "UserErrorVaultNotEmpty"
    response = client.delete(_vault_path(lab, name))
    assert response.status_code == 202 and response["Location"] and response["Retry-After"]
    assert operation_status(client, response)["status"] == "Succeeded"
    assert client.get(_vault_path(lab, name)).status_code == 404
    assert client.delete(_vault_path(lab, name)).status_code == 404


def test_lists_page_through_the_vaults_the_caller_may_read(arm, lab, backup_admin, reader, outsider, settings):
    client = arm(backup_admin)
    names = sorted(_create(client, lab)[0] for _ in range(3))
    settings.STRONGROOM_API_PAGE_SIZE = 2
    sub = lab.lab_subscription.subscription_id
    for path in (f"{_rg_path(lab)}/backupVaults", f"/subscriptions/{sub}/providers/{BV}"):
        seen, url = [], path
        while url:
            page = arm(reader).get(url).json()
            seen += [v["name"] for v in page["value"]]
            next_link = page.get("nextLink")
            url = "/" + next_link.split("://", 1)[1].split("/", 1)[1] if next_link else None
        assert set(names) <= set(seen) and len(seen) == len(set(seen))
        denied = arm(outsider).get(path)
        assert denied.status_code == 403 and denied.json()["error"]["code"] == "AuthorizationFailed"
    missing = arm(reader).get(f"/subscriptions/{sub}/resourceGroups/rg-nope/providers/{BV}")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "ResourceGroupNotFound"


def test_check_name_availability(arm, lab, backup_admin, outsider):
    client = arm(backup_admin)
    name, _ = _create(client, lab)
    path = f"{_rg_path(lab)}/locations/eastus/checkNameAvailability"

    def check(n, kind=BV, who=client):
        return who.post(path, {"name": n, "type": kind})

    taken = check(name.upper()).json()
    assert taken["nameAvailable"] is False and taken["reason"] == "AlreadyExists" and name.upper() in taken["message"]
    assert check("-bad").json()["reason"] == "Invalid"
    free = check(_name()).json()
    assert free == {"nameAvailable": True}
    assert sdk.CheckNameAvailabilityResult(taken).as_dict() == taken
    wrong = check("x", kind="Microsoft.Storage/storageAccounts")
    assert wrong.status_code == 400 and wrong.json()["error"]["target"] == "type"
    assert check(_name(), who=arm(outsider)).status_code == 403


@pytest.mark.django_db(transaction=True)
def test_the_sdk_creates_reads_lists_updates_and_deletes_a_vault(lab, sdk_client):
    client = sdk_client(lab.trainer, lab.lab_subscription.subscription_id)
    group, name = lab.lab_group.name, _name("bv-sdk")
    resource = sdk.BackupVaultResource(
        location="eastus",
        identity=sdk.DppIdentityDetails(type="SystemAssigned"),
        tags={"made-by": "sdk"},
        properties=sdk.BackupVault(storage_settings=[sdk.StorageSetting(
            datastore_type=sdk.StorageSettingStoreTypes.VAULT_STORE, type=sdk.StorageSettingTypes.GEO_REDUNDANT)]),
    )
    created = client.backup_vaults.begin_create_or_update(group, name, resource).result()
    assert created.name == name and created.properties.provisioning_state == "Succeeded"
    assert created.identity.principal_id
    got = client.backup_vaults.get(group, name)
    assert got.properties.storage_settings[0].type == "GeoRedundant"
    assert name in [v.name for v in client.backup_vaults.get_in_resource_group(group)]
    assert name in [v.name for v in client.backup_vaults.get_in_subscription()]
    taken = client.backup_vaults.check_name_availability(
        group, "eastus", sdk.CheckNameAvailabilityRequest(name=name, type=BV))
    assert taken.name_available is False and taken.reason == "AlreadyExists"
    patch = sdk.PatchResourceRequestInput(tags={"made-by": "sdk", "patched": "yes"}, properties=sdk.PatchBackupVaultInput(
        feature_settings=sdk.FeatureSettings(cross_region_restore_settings=sdk.CrossRegionRestoreSettings(state="Enabled"))))
    updated = client.backup_vaults.begin_update(group, name, patch).result()
    assert updated.tags["patched"] == "yes"
    assert updated.properties.feature_settings.cross_region_restore_settings.state == "Enabled"
    client.backup_vaults.begin_delete(group, name).result()
    assert not BackupVault.objects.filter(name=name).exists()


def test_the_vault_lists_cost_no_query_per_vault(arm, lab, backup_admin):
    """Both lists read each vault's Resource Guard link (security level, isVaultProtectedByResourceGuard)
    for the whole page in the page's query: 20 vaults cost what 2 do, and the linked one still says so."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from portal.mua.lab import seed_mua
    from security import mua
    from vaults import services as vault_services

    guard = seed_mua(lab)
    client = arm(backup_admin)
    paths = (f"{_rg_path(lab)}/backupVaults",
             f"/subscriptions/{lab.lab_group.subscription.subscription_id}/providers/{BV}")

    def add(count):
        for _ in range(count):
            vault_services.create_vault(backup_admin, name=_name("bv-cost"), region=lab.region,
                                        resource_group=lab.lab_group, soft_delete_state="AlwaysOn",
                                        acknowledge_irreversible=True)

    def cost():
        counts = []
        for path in paths:
            with CaptureQueriesContext(connection) as queries:
                response = client.get(path)
            assert response.status_code == 200, response.content
            # (the lab clock's offset is cached for a second: read in one request or the other)
            counts.append(len([q for q in queries.captured_queries if "security_labclock" not in q["sql"]]))
        return counts, response.json()["value"]

    add(2)
    linked = BackupVault.objects.filter(name__startswith="bv-cost").first()
    mua.link_resource_guard(backup_admin, linked, guard_id=guard.resource_id, region=linked.region_id)
    few, _ = cost()
    add(18)
    many, listed = cost()
    assert many == few, (few, many)
    scores = {v["name"]: (v["properties"]["isVaultProtectedByResourceGuard"], v["properties"]["secureScore"])
              for v in listed if v["name"].startswith("bv-cost")}
    assert len(scores) == 20
    assert scores.pop(linked.name) == (True, "Maximum")
    assert set(scores.values()) == {(False, "Adequate")}
