"""Azure Disk policies through the ARM API, driven by azure-mgmt-dataprotection's own models: an hourly
``R/<start>/PT4H`` schedule (rule ``BackupHourly``, OperationalStore), the Default rule and a
"first successful backup taken daily" rule, created, read back and listed by the SDK; intervals other
than every 1, 2, 4, 6, 8 or 12 hours, and limits past 450 snapshots, are clear 400s naming the field."""

from __future__ import annotations

import pytest

from protection import datasource_types
from protection.models import BackupPolicy
from protection.policies import services as svc
from protection.policies.services import Retention
from tests.api.test_policies import path, round_trips
from tests.protection._protection_fixtures import vault  # noqa: F401  (fixtures)

DISK = datasource_types.AZURE_DISK
RULES = "properties.policyRules"
INTERVALS = f"{RULES}[0].trigger.schedule.repeatingTimeIntervals"


def disk_policy(*, interval="R/2026-01-05T08:00:00+00:00/PT4H", default="P7D", daily="P30D", rule_name="BackupHourly"):
    """A disk policy as Azure's docs show it, made from the SDK's model classes."""
    from azure.mgmt.dataprotection import models as m

    store = lambda: m.DataStoreInfoBase(data_store_type="OperationalStore", object_type="DataStoreInfoBase")  # noqa: E731
    tagging = [m.TaggingCriteria(tag_info=m.RetentionTag(tag_name="Default"), tagging_priority=99, is_default=True)]
    retentions = {"Default": default}
    if daily:
        tagging.append(m.TaggingCriteria(tag_info=m.RetentionTag(tag_name="Daily"), tagging_priority=25, is_default=False,
                                         criteria=[m.ScheduleBasedBackupCriteria(absolute_criteria=["FirstOfDay"])]))
        retentions["Daily"] = daily
    backup_rule = m.AzureBackupRule(
        name=rule_name, backup_parameters=m.AzureBackupParams(backup_type="Incremental"), data_store=store(),
        trigger=m.ScheduleBasedTriggerContext(
            schedule=m.BackupSchedule(repeating_time_intervals=[interval], time_zone="UTC"), tagging_criteria=tagging),
    )
    retention = [
        m.AzureRetentionRule(name=tag, is_default=tag == "Default", lifecycles=[m.SourceLifeCycle(
            delete_after=m.AbsoluteDeleteOption(duration=duration), source_data_store=store(),
            target_data_store_copy_settings=[])])
        for tag, duration in retentions.items()
    ]
    return m.BaseBackupPolicyResource(properties=m.BackupPolicy(datasource_types=[DISK], policy_rules=[backup_rule, *retention]))


def test_the_sdk_creates_reads_and_lists_an_hourly_disk_policy(lab, vault, sdk_client, arm):
    client = sdk_client(lab.trainer, lab.lab_group.subscription.subscription_id)
    rg = lab.lab_group.name
    created = client.backup_policies.create_or_update(rg, vault.name, "disk-4h", disk_policy())
    policy = BackupPolicy.objects.get(vault=vault, name="disk-4h")
    assert policy.datasource_type == DISK and created.id == policy.resource_id
    backup = next(r for r in created.properties.policy_rules if r.name == "BackupHourly")
    [interval] = backup.trigger.schedule.repeating_time_intervals
    assert interval.endswith("T08:00:00+00:00/PT4H")
    assert backup.data_store.data_store_type == "OperationalStore" and backup.backup_parameters.backup_type == "Incremental"
    tags = {t.tag_info.tag_name: t for t in backup.trigger.tagging_criteria}
    assert tags["Daily"].criteria[0].absolute_criteria == ["FirstOfDay"] and tags["Daily"].tagging_priority == 25
    spec = svc.spec_of(policy)
    assert (spec.frequency, spec.every, spec.default, spec.extra) == (
        "Hourly", 4, Retention(7, "Days"), {"Daily": Retention(30, "Days")})
    assert policy.parsed.summary()[0] == "Backup: every 4 hours from 08:00 (UTC)"

    fetched = client.backup_policies.get(rg, vault.name, "disk-4h")
    assert fetched.as_dict() == created.as_dict()
    sent = arm(lab.trainer).get(path(vault, "disk-4h")).json()
    round_trips(sent)
    assert sent["properties"]["datasourceTypes"] == [DISK]
    client.backup_policies.create_or_update(rg, vault.name, "disk-12h", disk_policy(
        interval="R/2026-01-05T20:00:00+00:00/PT12H", default="P225D", daily=None))
    listed = {p.name: p for p in client.backup_policies.list(rg, vault.name)}
    assert set(listed) == {"disk-4h", "disk-12h"}
    assert listed["disk-12h"].properties.policy_rules[0].trigger.schedule.repeating_time_intervals[0].endswith("/PT12H")


BAD = {
    "every 5 hours": (dict(interval="R/2026-01-05T08:00:00+00:00/PT5H"), f"{INTERVALS}[0]",
                      "Azure Disk backups are scheduled hourly every 1, 2, 4, 6, 8 or 12 hours"),
    "every 30 minutes": (dict(interval="R/2026-01-05T08:00:00+00:00/PT30M"), f"{INTERVALS}[0]", "'PT30M' is not one"),
    "rule named daily": (dict(rule_name="BackupDaily"), f"{RULES}[0].name", "'BackupHourly'"),
    "720 snapshots": (dict(interval="R/2026-01-05T08:00:00+00:00/PT1H", default="P30D", daily=None), RULES,
                      "keep them at most 18 days"),
    "over a year": (dict(interval="R/2026-01-05T08:00:00+00:00/PT12H", default="P2Y", daily=None),
                    f"{RULES}[1].lifecycles[0].deleteAfter.duration", "at most 1 year"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_disk_policies_are_clear_400s(arm, lab, vault, case):
    kwargs, target, words = BAD[case]
    response = arm(lab.trainer).put(path(vault, "disk-bad"), disk_policy(**kwargs).as_dict())
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["target"] == target and words in error["message"], error
    assert not BackupPolicy.objects.filter(name="disk-bad").exists()


def test_hourly_schedules_are_for_disks_only(arm, lab, vault):
    from tests.api.test_policies import body

    sent = body(datasource_types.ELASTIC_SAN, default="P7D")
    sent["properties"]["policyRules"][0]["trigger"]["schedule"]["repeatingTimeIntervals"] = [
        "R/2026-01-05T08:00:00+00:00/PT4H"]
    response = arm(lab.trainer).put(path(vault, "esan-hourly"), sent)
    assert response.status_code == 400
    assert "Elastic SAN (Preview) backups are scheduled daily (P1D) or weekly (P1W)" in response.json()["error"]["message"]
