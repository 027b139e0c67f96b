"""Re-dating through the API (issue 21): a PUT of a policy with shorter retention soft deletes the
points it expired, the recovery point list keeps them (their data store SOFT_DELETED, not visible,
``expiryTime`` their purge), ``isVisible`` filters them, and restoring one is a 400 saying why."""

from __future__ import annotations

import datetime as dt
import secrets

import pytest

from portal.api.envelope import timestamp
from protection.models import Job, JobOperation, RecoveryPoint
from security import clock
from tests.api.test_policies import body, path
from tests.protection._protection_fixtures import (  # noqa: F401  (fixtures)
    make_policy, spec, vault,
)
from tests.protection._redating_fixtures import bare_instance, points
from protection.policies.services import Retention

pytestmark = pytest.mark.django_db
ADLS = "Microsoft.Storage/storageAccounts/adlsBlobServices"


def _restore_body(point, account) -> dict:
    return {
        "objectType": "AzureBackupRecoveryPointBasedRestoreRequest", "recoveryPointId": str(point.pk),
        "sourceDataStoreType": "VaultStore",
        "restoreTargetInfo": {
            "objectType": "ItemLevelRestoreTargetInfo", "recoveryOption": "FailIfExists",
            "restoreLocation": point.instance.vault.region_id,
            "datasourceInfo": {"objectType": "Datasource", "datasourceType": ADLS, "resourceID": account.resource_id,
                               "resourceName": account.name, "resourceLocation": account.region_id},
            "restoreCriteria": [{"objectType": "ItemPathBasedRestoreCriteria", "itemPath": "documents",
                                 "isPathRelativeToBackupItem": True, "subItemPathPrefix": []}],
        },
        "identityDetails": {"useSystemAssignedIdentity": True},
    }


def test_a_policy_put_with_shorter_retention_soft_deletes_and_the_list_says_so(lab, arm, vault, make_policy):
    from portal.inventory import services as inv

    client = arm(lab.trainer)
    assert client.put(path(vault, "rd-api"), body(ADLS, default="P30D")).status_code == 200
    policy = vault.backup_policies.get(name="rd-api")
    instance = bare_instance(vault, policy)
    recent, old = points(instance, [(2, "Default", 30), (12, "Default", 30)])

    assert client.put(path(vault, "rd-api"), body(ADLS, default="P7D")).status_code == 200
    old.refresh_from_db()
    assert old.is_soft_deleted and old.expiry_time > clock.now() + dt.timedelta(days=13)

    listed = {p["name"]: p["properties"] for p in client.get(f"{instance.resource_id}/recoveryPoints").json()["value"]}
    gone = listed[str(old.pk)]
    assert gone["recoveryPointDataStoresDetails"][0]["state"] == "SOFT_DELETED"
    assert gone["recoveryPointDataStoresDetails"][0]["visible"] is False
    assert gone["recoveryPointState"] == "Completed"  # the API's enum: still a complete point
    assert listed[str(recent.pk)]["recoveryPointDataStoresDetails"][0]["visible"] is True
    assert listed[str(recent.pk)]["expiryTime"] == timestamp(recent.recovery_point_time + dt.timedelta(days=7))
    visible = client.get(f"{instance.resource_id}/recoveryPoints?$filter=isVisible eq 'true'").json()["value"]
    hidden = client.get(f"{instance.resource_id}/recoveryPoints?$filter=isVisible eq 'false'").json()["value"]
    assert [p["name"] for p in visible] == [str(recent.pk)] and [p["name"] for p in hidden] == [str(old.pk)]

    account = inv.create_storage_account(lab.trainer, resource_group=lab.lab_group, name=f"sard{secrets.token_hex(3)}",
                                         region=lab.region)
    inv.create_container(lab.trainer, account, name="documents")
    refused = client.post(f"{instance.resource_id}/restore", _restore_body(old, account))
    assert refused.status_code == 400, refused.content
    error = refused.json()["error"]
    assert error["target"] == "recoveryPointId" and "being soft deleted" in error["message"]
    assert not Job.objects.filter(operation=JobOperation.RESTORE).exists()

    assert client.put(path(vault, "rd-api"), body(ADLS, default="P30D")).status_code == 200  # back
    assert not RecoveryPoint.objects.get(pk=old.pk).is_soft_deleted
