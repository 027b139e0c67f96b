"""``backupPolicies`` through the ARM API: a policy per datasource type built from the SDK's own model
classes and sent by the SDK itself, read back into the SDK's models without loss; the wizard's limits
answered as 400s naming the body's field; what Strongroom cannot keep refused, not dropped; 404, 403,
paging, update, delete (204 when absent, 409 when in use); the portal's pages and the API agreeing."""

from __future__ import annotations

import copy
import datetime as dt

import pytest
from django.urls import reverse

from protection import datasource_types
from protection.models import BackupPolicy
from protection.policies import services as svc
from protection.policies.services import Retention
from tests.protection._protection_fixtures import (  # noqa: F401  (fixtures)
    inventory, make_policy, principal_with, protect, vault,
)

ADLS, ESAN, PG = datasource_types.ADLS, datasource_types.ELASTIC_SAN, datasource_types.POSTGRES_FLEX


def path(vault, name=None) -> str:
    base = f"{vault.resource_id}/backupPolicies"
    return f"{base}/{name}" if name else base


def sdk_policy(datasource_type: str, *, frequency="Daily", starts=("2026-01-05T02:30:00+00:00",), default="P30D",
               extra=None):
    """A BaseBackupPolicyResource made from azure-mgmt-dataprotection's own model classes."""
    from azure.mgmt.dataprotection import models as m

    kind = datasource_types.get(datasource_type)
    store = lambda: m.DataStoreInfoBase(data_store_type=kind.datastore, object_type="DataStoreInfoBase")  # noqa: E731
    period = "P1D" if frequency == "Daily" else "P1W"
    priorities = {"Yearly": 10, "Monthly": 15, "Weekly": 20}
    marks = {"Yearly": "FirstOfYear", "Monthly": "FirstOfMonth", "Weekly": "FirstOfWeek"}
    extra = extra or {}
    tagging = [m.TaggingCriteria(tag_info=m.RetentionTag(tag_name="Default"), tagging_priority=99, is_default=True)]
    tagging += [
        m.TaggingCriteria(tag_info=m.RetentionTag(tag_name=tag), tagging_priority=priorities[tag], is_default=False,
                          criteria=[m.ScheduleBasedBackupCriteria(absolute_criteria=[marks[tag]])])
        for tag in extra
    ]
    backup_rule = m.AzureBackupRule(
        name=f"Backup{frequency}",
        backup_parameters=m.AzureBackupParams(backup_type=kind.backup_type),
        data_store=store(),
        trigger=m.ScheduleBasedTriggerContext(
            schedule=m.BackupSchedule(repeating_time_intervals=[f"R/{s}/{period}" for s in starts], time_zone="UTC"),
            tagging_criteria=tagging,
        ),
    )
    retention = [
        m.AzureRetentionRule(
            name=tag, is_default=tag == "Default",
            lifecycles=[m.SourceLifeCycle(delete_after=m.AbsoluteDeleteOption(duration=duration),
                                          source_data_store=store(), target_data_store_copy_settings=[])],
        )
        for tag, duration in {"Default": default, **extra}.items()
    ]
    return m.BaseBackupPolicyResource(
        properties=m.BackupPolicy(datasource_types=[datasource_type], policy_rules=[backup_rule, *retention])
    )


def body(datasource_type: str = ADLS, **kwargs) -> dict:
    return sdk_policy(datasource_type, **kwargs).as_dict()


def round_trips(json_body: dict) -> None:
    """What the server sent deserializes with the SDK's model, discriminated subtypes included, without loss."""
    from azure.mgmt.dataprotection import models as m

    model = m.BaseBackupPolicyResource(json_body)
    assert model.as_dict() == json_body
    assert isinstance(model.properties, m.BackupPolicy)
    kinds = {type(r) for r in model.properties.policy_rules}
    assert kinds == {m.AzureBackupRule, m.AzureRetentionRule}
    backup = next(r for r in model.properties.policy_rules if isinstance(r, m.AzureBackupRule))
    assert isinstance(backup.trigger, m.ScheduleBasedTriggerContext)
    assert isinstance(backup.backup_parameters, m.AzureBackupParams)
    for tagging in backup.trigger.tagging_criteria:
        assert all(isinstance(c, m.ScheduleBasedBackupCriteria) for c in tagging.criteria or [])
    for rule in model.properties.policy_rules:
        if isinstance(rule, m.AzureRetentionRule):
            assert isinstance(rule.lifecycles[0].delete_after, m.AbsoluteDeleteOption)


# --- the SDK, per datasource type, against the live server -----------------------------------------

CASES = {
    ADLS: dict(frequency="Daily", default="P30D", extra={"Weekly": "P12W", "Monthly": "P12M", "Yearly": "P10Y"}),
    ESAN: dict(frequency="Daily", default="P7D", extra={"Weekly": "P4W"}),
    PG: dict(frequency="Weekly", starts=("2026-01-05T03:00:00+00:00", "2026-01-08T03:00:00+00:00"), default="P3M",
             extra={"Monthly": "P12M"}),
}


@pytest.mark.parametrize("datasource_type", list(CASES), ids=lambda t: datasource_types.get(t).short)
def test_the_sdk_creates_and_reads_back_a_policy_of_each_type(datasource_type, lab, vault, sdk_client, arm):
    case = CASES[datasource_type]
    client = sdk_client(lab.trainer, lab.lab_group.subscription.subscription_id)
    name = f"api-{datasource_types.get(datasource_type).short}"
    created = client.backup_policies.create_or_update(lab.lab_group.name, vault.name, name,
                                                      sdk_policy(datasource_type, **case))
    policy = BackupPolicy.objects.get(vault=vault, name=name)
    assert policy.datasource_type == datasource_type
    assert created.id == policy.resource_id and created.name == name
    assert created.type == "Microsoft.DataProtection/backupVaults/backupPolicies"
    # Stored as the wizard would store it: the same services built it.
    spec = svc.spec_of(policy)
    assert spec.frequency == case["frequency"]
    assert spec.default == Retention.from_iso(case["default"])
    assert {tag: r.iso() for tag, r in spec.extra.items()} == case["extra"]
    kind = datasource_types.get(datasource_type)
    rules = policy.parsed
    assert rules.backup_rule["dataStore"]["dataStoreType"] == kind.datastore
    assert rules.backup_rule["backupParameters"]["backupType"] == kind.backup_type
    if datasource_type == PG:
        assert rules.summary()[0] == "Backup: weekly on Monday, Thursday at 03:00 (UTC)"
    else:
        assert rules.summary()[0] == "Backup: daily at 02:30 (UTC)"

    fetched = client.backup_policies.get(lab.lab_group.name, vault.name, name)
    assert fetched.as_dict() == created.as_dict()
    sent = arm(lab.trainer).get(path(vault, name)).json()
    round_trips(sent)
    assert sent["properties"]["policyRules"] == policy.policy_rules
    assert [p.name for p in client.backup_policies.list(lab.lab_group.name, vault.name)] == [name]


def test_the_sdk_updates_retention_and_deletes(lab, vault, sdk_client):
    client = sdk_client(lab.trainer, lab.lab_group.subscription.subscription_id)
    rg = lab.lab_group.name
    client.backup_policies.create_or_update(rg, vault.name, "adls-edit", sdk_policy(ADLS, default="P30D"))
    longer = sdk_policy(ADLS, default="P60D", extra={"Weekly": "P8W"})
    updated = client.backup_policies.create_or_update(rg, vault.name, "ADLS-EDIT", longer)
    assert updated.name == "adls-edit"
    policy = BackupPolicy.objects.get(vault=vault)
    assert svc.retention_map(policy.policy_rules) == {"Default": "P60D", "Weekly": "P8W"}
    client.backup_policies.delete(rg, vault.name, "adls-edit")
    assert not BackupPolicy.objects.filter(vault=vault).exists()
    client.backup_policies.delete(rg, vault.name, "adls-edit")  # nothing there: 204, not an error


# --- the ARM client: statuses, errors, paging ------------------------------------------------------


def test_put_is_synchronous_200_for_create_and_update(arm, lab, vault):
    client = arm(lab.trainer)
    first = client.put(path(vault, "adls-sync"), body(ADLS))
    assert first.status_code == 200, first.content
    assert "Azure-AsyncOperation" not in first
    round_trips(first.json())
    again = client.put(path(vault, "adls-sync"), body(ADLS, default="P45D"))
    assert again.status_code == 200
    assert again.json()["properties"]["policyRules"] == BackupPolicy.objects.get(name="adls-sync").policy_rules


@pytest.mark.date_sensitive
def test_schedule_starts_never_in_the_past_and_a_later_start_is_kept(arm, lab, vault):
    from security import clock

    client = arm(lab.trainer)
    client.put(path(vault, "adls-past"), body(ADLS, starts=("2001-01-01T04:00:00+00:00",)))
    [interval] = BackupPolicy.objects.get(name="adls-past").parsed.intervals
    assert interval.start > clock.now() and interval.start.hour == 4
    later = (clock.now() + dt.timedelta(days=40)).date()
    client.put(path(vault, "pg-later"),
               body(PG, frequency="Weekly", default="P3M", starts=(f"{later}T05:00:00+00:00",)))
    [interval] = BackupPolicy.objects.get(name="pg-later").parsed.intervals
    assert interval.start.date() == later and interval.start.weekday() == later.weekday()


def test_get_of_an_unknown_policy_or_vault_is_404(arm, lab, vault):
    client = arm(lab.trainer)
    response = client.get(path(vault, "nope"))
    assert response.status_code == 404 and response.json()["error"]["code"] == "ResourceNotFound"
    other = client.get(path(vault).replace(vault.name, "no-such-vault"))
    assert other.status_code == 404


def test_reads_and_writes_need_the_role(arm, lab, vault, make_policy, outsider, reader):
    policy = make_policy(ADLS, "adls-guarded")
    for principal in (outsider,):
        for response in (arm(principal).get(path(vault, policy.name)), arm(principal).get(path(vault)),
                         arm(principal).get(path(vault, "nope"))):
            assert response.status_code == 403, response.content
            error = response.json()["error"]
            assert error["code"] == "AuthorizationFailed" and "backupPolicies/read" in error["message"]
    assert arm(reader).get(path(vault, policy.name)).status_code == 200
    put = arm(reader).put(path(vault, "adls-new"), body(ADLS))
    assert put.status_code == 403 and "backupPolicies/write" in put.json()["error"]["message"]
    delete = arm(reader).delete(path(vault, policy.name))
    assert delete.status_code == 403 and "backupPolicies/delete" in delete.json()["error"]["message"]
    assert BackupPolicy.objects.filter(pk=policy.pk).exists()
    assert not BackupPolicy.objects.filter(name="adls-new").exists()


def test_list_pages_with_next_link(arm, lab, vault, make_policy, settings):
    settings.STRONGROOM_API_PAGE_SIZE = 2
    names = {make_policy(ADLS, f"adls-page-{i}").name for i in range(5)}
    client = arm(lab.trainer)
    seen, url, pages = [], path(vault), 0
    while url:
        page = client.get(url).json()
        pages += 1
        for item in page["value"]:
            round_trips(item)
        seen += [p["name"] for p in page["value"]]
        url = page.get("nextLink")
        if url:
            url = "/" + url.split("://", 1)[1].split("/", 1)[1]
    assert pages == 3 and len(seen) == 5 and set(seen) == names


# --- 400: the wizard's limits, and what Strongroom cannot keep -------------------------------------

RULES = "properties.policyRules"


def _mutate(change) -> dict:
    data = body(ADLS, extra={"Weekly": "P12W"})
    change(data)
    return data


def _retention(data, tag):
    return next(r for r in data["properties"]["policyRules"] if r["name"] == tag)


BAD = {
    "unsupported datasource type": (
        lambda d: d["properties"].update(datasourceTypes=["Microsoft.ContainerService/managedClusters"]), "properties.datasourceTypes[0]",
        "does not protect the datasource type"),
    "hourly schedule": (
        lambda d: d["properties"]["policyRules"][0]["trigger"]["schedule"].update(
            repeatingTimeIntervals=["R/2026-01-05T02:00:00+00:00/PT4H"]),
        f"{RULES}[0].trigger.schedule.repeatingTimeIntervals[0]", "daily (P1D) or weekly (P1W)"),
    "another time zone": (
        lambda d: d["properties"]["policyRules"][0]["trigger"]["schedule"].update(timeZone="Pacific Standard Time"),
        f"{RULES}[0].trigger.schedule.timeZone", "UTC"),
    "ad hoc trigger": (
        lambda d: d["properties"]["policyRules"][0].update(
            trigger={"objectType": "AdhocBasedTriggerContext", "taggingCriteria": {"tagInfo": {"tagName": "Default"}}}),
        f"{RULES}[0].trigger.objectType", "scheduled"),
    "retention above ten years": (
        lambda d: _retention(d, "Default")["lifecycles"][0]["deleteAfter"].update(duration="P3651D"),
        f"{RULES}[1].lifecycles[0].deleteAfter.duration", "at most 3,650 days"),
    "retention below the minimum": (
        lambda d: _retention(d, "Weekly")["lifecycles"][0]["deleteAfter"].update(duration="P3D"),
        f"{RULES}[2].lifecycles[0].deleteAfter.duration", "at least 7 days"),
    "mixed-unit duration": (
        lambda d: _retention(d, "Default")["lifecycles"][0]["deleteAfter"].update(duration="P1Y6M"),
        f"{RULES}[1].lifecycles[0].deleteAfter.duration", "one unit"),
    "operational store for a vaulted type": (
        lambda d: _retention(d, "Default")["lifecycles"][0]["sourceDataStore"].update(dataStoreType="OperationalStore"),
        f"{RULES}[1].lifecycles[0].sourceDataStore.dataStoreType", "VaultStore"),
    "archive copy": (
        lambda d: _retention(d, "Default")["lifecycles"][0].update(targetDataStoreCopySettings=[
            {"dataStore": {"dataStoreType": "ArchiveStore", "objectType": "DataStoreInfoBase"},
             "copyAfter": {"objectType": "CopyOnExpiryOption"}}]),
        f"{RULES}[1].lifecycles[0].targetDataStoreCopySettings", "Archive isn't supported for Azure Data Lake Storage"),
    "custom criteria": (
        lambda d: d["properties"]["policyRules"][0]["trigger"]["taggingCriteria"][1]["criteria"][0].update(
            daysOfTheWeek=["Sunday"]),
        f"{RULES}[0].trigger.taggingCriteria[1].criteria[0].daysOfTheWeek", "absoluteCriteria"),
    "a tag without retention rule": (
        lambda d: d["properties"]["policyRules"].pop(2), f"{RULES}[0].trigger.taggingCriteria[1]",
        "no AzureRetentionRule"),
    "a backup rule named otherwise": (
        lambda d: d["properties"]["policyRules"][0].update(name="BackupIntervals"), f"{RULES}[0].name", "BackupDaily"),
    "wrong backup type": (
        lambda d: d["properties"]["policyRules"][0]["backupParameters"].update(backupType="Incremental"),
        f"{RULES}[0].backupParameters.backupType", "Discrete"),
    "a start past the calendar": (
        lambda d: d["properties"]["policyRules"][0]["trigger"]["schedule"].update(
            repeatingTimeIntervals=["R/9999-12-31T02:00:00+00:00/P1W"]),
        f"{RULES}[0].trigger.schedule.repeatingTimeIntervals[0]", "at the latest"),
    "not a policy": (lambda d: d["properties"].update(objectType="Nope"), "properties.objectType", "BackupPolicy"),
    "no rules": (lambda d: d["properties"].update(policyRules="x"), RULES, "array"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_policies_are_400_naming_the_field(arm, lab, vault, case):
    change, target, words = BAD[case]
    response = arm(lab.trainer).put(path(vault, "adls-bad"), _mutate(change))
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["target"] == target, error
    assert words in error["message"], error
    assert not BackupPolicy.objects.filter(name="adls-bad").exists()


def test_type_limits_come_from_the_services(arm, lab, vault):
    client = arm(lab.trainer)
    daily_pg = client.put(path(vault, "pg-daily"), body(PG, default="P3M"))
    assert daily_pg.status_code == 400
    assert daily_pg.json()["error"]["target"] == f"{RULES}[0].trigger.schedule.repeatingTimeIntervals"
    assert "Weekly only" in daily_pg.json()["error"]["message"]
    # Elastic SAN: 450 recovery points at most, a form-wide limit in the wizard.
    too_many = client.put(path(vault, "esan-many"), body(ESAN, default="P500D"))
    assert too_many.status_code == 400
    assert too_many.json()["error"]["target"] == RULES and "at most 450" in too_many.json()["error"]["message"]
    bad_name = client.put(path(vault, "9-starts-with-a-digit"), body(ADLS))
    assert bad_name.status_code == 400 and bad_name.json()["error"]["target"] == "backupPolicyName"


def test_the_datasource_type_of_a_policy_cannot_change(arm, lab, vault, make_policy):
    make_policy(ADLS, "adls-fixed")
    response = arm(lab.trainer).put(path(vault, "adls-fixed"), body(ESAN, default="P7D"))
    assert response.status_code == 400
    assert response.json()["error"]["target"] == "properties.datasourceTypes[0]"
    assert BackupPolicy.objects.get(name="adls-fixed").datasource_type == ADLS


def test_malformed_json_is_400_not_500(arm, lab, vault):
    response = arm(lab.trainer).put(path(vault, "adls-x"), "{not json", content_type="application/json")
    assert response.status_code == 400
    assert arm(lab.trainer).put(path(vault, "adls-x"), [1, 2]).status_code == 400


# --- delete ---------------------------------------------------------------------------------------


def test_a_policy_in_use_is_a_409_with_the_services_words(arm, lab, vault, inventory, make_policy):
    policy = make_policy(ADLS, "adls-used")
    protect(lab, vault, policy, inventory.account, name="bi-adls-used", run=False)
    response = arm(lab.trainer).delete(path(vault, "adls-used"))
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == svc.POLICY_IN_USE
    assert "is used by 1 backup instance: 'bi-adls-used'" in error["message"]
    assert BackupPolicy.objects.filter(pk=policy.pk).exists()


def test_delete_answers_200_then_204(arm, lab, vault, make_policy):
    make_policy(ADLS, "adls-gone")
    client = arm(lab.trainer)
    assert client.delete(path(vault, "adls-gone")).status_code == 200
    assert client.delete(path(vault, "adls-gone")).status_code == 204


# --- the portal and the API agree -----------------------------------------------------------------


def test_a_policy_made_by_the_api_shows_on_the_portals_pages(arm, lab, vault, signed_in_client, backup_admin):
    response = arm(backup_admin).put(path(vault, "pg-from-api"), body(
        PG, frequency="Weekly", starts=("2026-01-06T01:15:00+00:00",), default="P4W", extra={"Yearly": "P3Y"}))
    assert response.status_code == 200, response.content
    policy = BackupPolicy.objects.get(name="pg-from-api")
    client = signed_in_client(backup_admin)
    detail = client.get(reverse("protection:policy_detail", args=[policy.pk])).content.decode()
    assert "weekly on Tuesday at 01:15 (UTC)" in detail
    assert "Retention Yearly (first successful backup of each year): 3 years" in detail
    assert "Retention Default (every other backup): 4 weeks" in detail
    listing = client.get(reverse("protection:vault_policies", args=[vault.pk])).content.decode()
    assert "pg-from-api" in listing


def test_a_policy_made_by_the_wizard_reads_back_through_the_api(arm, lab, vault, client, backup_admin):
    from tests.protection.test_policies_views import past_basics, schedule

    wizard = past_basics(client, backup_admin, "adls-wizard", ADLS, vault)
    wizard.post(schedule(weekly_enabled="on", weekly_count="12"), goto="review")
    wizard.post()
    policy = BackupPolicy.objects.get(name="adls-wizard")
    sent = arm(backup_admin).get(path(vault, "adls-wizard")).json()
    round_trips(sent)
    assert sent["properties"] == {"objectType": "BackupPolicy", "datasourceTypes": [ADLS],
                                  "policyRules": policy.policy_rules}
    # The wizard's policy, PUT back unchanged, is accepted as it is (an update that changes nothing).
    again = arm(backup_admin).put(path(vault, "adls-wizard"), copy.deepcopy(sent))
    assert again.status_code == 200, again.content
    after = BackupPolicy.objects.get(pk=policy.pk).policy_rules
    assert svc.retention_map(after) == svc.retention_map(policy.policy_rules)


# --- no 500, whatever the body holds --------------------------------------------------------------


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*prefix, index))


def _replaced(data, where, value):
    data = copy.deepcopy(data)
    if not where:
        return value
    parent = data
    for step in where[:-1]:
        parent = parent[step]
    if value is _DROP:
        del parent[where[-1]]
    else:
        parent[where[-1]] = value
    return data


_DROP = object()


def test_every_field_replaced_by_junk_is_answered_without_a_500(arm, lab, vault):
    """GIVEN a valid policy body WHEN each of its fields in turn is dropped or replaced by null, a number,
    a string, a list or an object THEN every answer is 200 or a 400 in ARM's envelope."""
    valid = body(ADLS, extra={"Weekly": "P12W"})
    client = arm(lab.trainer)
    problems = []
    for where in list(_paths(valid)):
        for junk in (_DROP, None, 7, "x", [], {}):
            if junk is _DROP and not where:
                continue
            response = client.put(path(vault, "adls-junk"), _replaced(valid, where, junk))
            enveloped = response.status_code == 200 or "error" in response.json()
            if response.status_code not in (200, 400) or not enveloped:
                problems.append(f"{where} = {junk!r}: {response.status_code} {response.content[:200]!r}")
    assert not problems, "\n".join(problems)
