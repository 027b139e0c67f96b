"""``recoveryPoints``: list with the CLI's time filters, get, and what the SDK's models make of them."""

from __future__ import annotations

import datetime as dt

import pytest

from protection.models import RecoveryPoint
from tests.protection._restore_fixtures import (  # noqa: F401  (fixtures)
    ADLS, backup, filled, inventory, make_policy, protect, vault,
)

pytestmark = pytest.mark.django_db


def _at(*args):
    return dt.datetime(*args, tzinfo=dt.timezone.utc)


@pytest.fixture
def points(lab, vault, make_policy, filled):
    """An ADLS instance backed up once (its point moved to 2026-03-15 07:00), and two more points of it
    at fixed times (copies of the real one)."""
    instance = protect(lab, vault, make_policy(ADLS), filled.account)
    real = backup(lab, instance)
    RecoveryPoint.objects.filter(pk=real.pk).update(recovery_point_time=_at(2026, 3, 15, 7), expiry_time=None)
    real.refresh_from_db()
    fields = {f.attname: getattr(real, f.attname) for f in RecoveryPoint._meta.concrete_fields if f.name != "id"}
    made = [real]
    for when, tag in ((_at(2026, 3, 1, 7), "Weekly"), (_at(2026, 3, 8, 7), "Default")):
        made.append(RecoveryPoint.objects.create(**fields | {"recovery_point_time": when, "retention_tag": tag,
                                                            "expiry_time": when + dt.timedelta(days=30)}))
    return instance, made


def _list(arm_client, instance, **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return arm_client.get(f"{instance.resource_id}/recoveryPoints" + (f"?{query}" if query else ""))


def test_list_get_and_the_sdk_models_round_trip(lab, arm, points):
    from azure.mgmt.dataprotection import models

    instance, made = points
    client = arm(lab.trainer)
    body = _list(client, instance).json()
    assert [p["name"] for p in body["value"]] == [str(p.pk) for p in sorted(made, key=lambda p: p.recovery_point_time, reverse=True)]
    for sent in body["value"]:
        resource = models.AzureBackupRecoveryPointResource(sent)
        assert isinstance(resource.properties, models.AzureBackupDiscreteRecoveryPoint)
        assert resource.as_dict() == sent
    weekly = next(p for p in body["value"] if p["properties"]["retentionTagName"] == "Weekly")
    props = weekly["properties"]
    assert props["recoveryPointTime"] == "2026-03-01T07:00:00Z" and props["expiryTime"] == "2026-03-31T07:00:00Z"
    assert props["recoveryPointType"] == "Full" and props["recoveryPointState"] == "Completed"
    assert props["recoveryPointDataStoresDetails"][0]["type"] == "VaultStore"
    one = client.get(weekly["id"])
    assert one.status_code == 200 and one.json() == weekly
    assert weekly["type"] == "Microsoft.DataProtection/backupVaults/backupInstances/recoveryPoints"


@pytest.mark.parametrize("flt, expected", [
    ("startDate eq '2026-03-01T00:00:00Z' and endDate eq '2026-03-02T00:00:00Z'", ["Weekly"]),
    ("startDate eq '2026-02-01T00:00:00' and endDate eq '2026-03-10T00:00:00'", ["Default", "Weekly"]),
    ("endDate eq '2026-03-01T07:00:00.000Z'", ["Weekly"]),
    ("startDate eq '2026-03-08'", ["Default", "Default"]),
    ("restorePointState eq 'Partial'", []),
    ("isVisible eq 'true' AND endDate eq '2026-03-02T00:00:00+00:00'", ["Weekly"]),
    ("endDate eq '2026-03-02T01:00:00+01:00'", ["Weekly"]),
])
def test_time_filters_as_the_cli_sends_them(lab, arm, points, flt, expected):
    instance, _ = points
    from urllib.parse import quote

    response = _list(arm(lab.trainer), instance, **{"$filter": quote(flt)})
    assert response.status_code == 200, response.content
    if "+01:00" in flt:  # a client that leaves the offset's "+" unescaped: it arrives as a space
        unescaped = _list(arm(lab.trainer), instance, **{"$filter": quote(flt, safe="+")})
        assert unescaped.json() == response.json()
    tags = [p["properties"]["retentionTagName"] for p in response.json()["value"]]
    assert tags == expected


@pytest.mark.parametrize("flt", [
    "startDate eq 'yesterday'", "startDate gt '2026-01-01T00:00:00Z'", "policyName eq 'x'",
    "startDate eq '2026-01-01' and startDate eq '2026-01-02'", "restorePointState eq 'Gone'", "isVisible eq 'maybe'",
    "startDate eq '2026-13-45T99:00:00Z'",
])
def test_bad_filters_are_400_naming_filter(lab, arm, points, flt):
    from urllib.parse import quote

    instance, _ = points
    response = _list(arm(lab.trainer), instance, **{"$filter": quote(flt)})
    assert response.status_code == 400, response.content
    assert response.json()["error"]["target"] == "$filter"


def test_paging_403_and_404(lab, arm, points, outsider, settings):
    instance, made = points
    settings.STRONGROOM_API_PAGE_SIZE = 2
    client = arm(lab.trainer)
    first = _list(client, instance).json()
    assert len(first["value"]) == 2 and first["nextLink"].startswith("http")
    rest = client.get("/" + first["nextLink"].split("://", 1)[1].split("/", 1)[1]).json()
    assert len(rest["value"]) == 1 and "nextLink" not in rest
    assert {p["name"] for p in first["value"] + rest["value"]} == {str(p.pk) for p in made}

    refused = _list(arm(outsider), instance)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "AuthorizationFailed"
    assert arm(outsider).get(f"{instance.resource_id}/recoveryPoints/{made[0].pk}").status_code == 403
    for missing in (f"{instance.resource_id}/recoveryPoints/not-a-guid",
                    f"{instance.resource_id}/recoveryPoints/00000000-0000-0000-0000-000000000000",
                    f"{instance.resource_id}x/recoveryPoints"):
        response = client.get(missing)
        assert response.status_code == 404 and response.json()["error"]["code"] == "ResourceNotFound"
