"""Backup policies through the services: every limit per datasource type (reference §5.3, §5.8), the
API's JSON shape (§1.3), edits reaching every instance, deletion rules, the vault deletion guard, and
the authorization matrix."""

import datetime as dt

import pytest
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from protection import datasource_types
from protection.models import BackupPolicy, ProtectionState
from protection.policy_rules import DAYS
from protection.policies import services as svc
from protection.policies.services import Retention
from security import clock, roles
from security.guards import GuardDenied, register_guard, unregister_guard
from tests.protection._protection_fixtures import (  # noqa: F401  (fixtures)
    inventory, make_policy, principal_with, protect, spec, vault,
)
from tests.conftest import rbac_allows as _attempt

pytestmark = pytest.mark.django_db

ADLS, ESAN, PG = datasource_types.ADLS, datasource_types.ELASTIC_SAN, datasource_types.POSTGRES_FLEX


def errors_of(fn):
    with pytest.raises(ValidationError) as info:
        fn()
    return info.value.message_dict


# --- JSON shape -----------------------------------------------------------------------------------


def test_an_adls_policy_is_stored_in_the_api_shape(make_policy, vault):
    """GIVEN daily backups with Default 30 days and Weekly/Monthly/Yearly rules WHEN created THEN the
    stored JSON is the API's BackupPolicy: one AzureBackupRule and one AzureRetentionRule per tag."""
    policy = make_policy(ADLS, "adls-daily", time=dt.time(2, 30), default=Retention(30, "Days"),
                         extra={"Weekly": Retention(12, "Weeks"), "Monthly": Retention(12, "Months"),
                                "Yearly": Retention(10, "Years")})
    api = policy.as_api()
    assert api["id"] == f"{vault.resource_id}/backupPolicies/adls-daily"
    assert api["type"] == "Microsoft.DataProtection/backupVaults/backupPolicies"
    props = api["properties"]
    assert props["objectType"] == "BackupPolicy"
    assert props["datasourceTypes"] == ["Microsoft.Storage/storageAccounts/adlsBlobServices"]
    backup = [r for r in props["policyRules"] if r["objectType"] == "AzureBackupRule"]
    assert len(backup) == 1
    rule = backup[0]
    assert rule["name"] == "BackupDaily"
    assert rule["backupParameters"] == {"objectType": "AzureBackupParams", "backupType": "Discrete"}
    assert rule["dataStore"] == {"dataStoreType": "VaultStore", "objectType": "DataStoreInfoBase"}
    trigger = rule["trigger"]
    assert trigger["objectType"] == "ScheduleBasedTriggerContext"
    [interval] = trigger["schedule"]["repeatingTimeIntervals"]
    assert interval.startswith("R/") and interval.endswith("T02:30:00+00:00/P1D")
    assert trigger["schedule"]["timeZone"] == "UTC"
    tags = [(t["tagInfo"]["tagName"], t["taggingPriority"], t["isDefault"]) for t in trigger["taggingCriteria"]]
    assert tags == [("Yearly", 10, False), ("Monthly", 15, False), ("Weekly", 20, False), ("Default", 99, True)]
    criteria = {t["tagInfo"]["tagName"]: t.get("criteria") for t in trigger["taggingCriteria"]}
    assert criteria["Weekly"] == [{"objectType": "ScheduleBasedBackupCriteria", "absoluteCriteria": ["FirstOfWeek"]}]
    assert criteria["Monthly"][0]["absoluteCriteria"] == ["FirstOfMonth"]
    assert criteria["Yearly"][0]["absoluteCriteria"] == ["FirstOfYear"]
    retention = {r["name"]: r for r in props["policyRules"] if r["objectType"] == "AzureRetentionRule"}
    assert set(retention) == {"Default", "Weekly", "Monthly", "Yearly"}
    assert retention["Default"]["isDefault"] is True and retention["Weekly"]["isDefault"] is False
    lifecycle = retention["Monthly"]["lifecycles"][0]
    assert lifecycle["deleteAfter"] == {"objectType": "AbsoluteDeleteOption", "duration": "P12M"}
    assert lifecycle["sourceDataStore"]["dataStoreType"] == "VaultStore"
    assert retention["Yearly"]["lifecycles"][0]["deleteAfter"]["duration"] == "P10Y"
    assert policy.parsed.summary() == [
        "Backup: daily at 02:30 (UTC)",
        "Retention Yearly (first successful backup of each year): 10 years",
        "Retention Monthly (first successful backup of each month): 12 months",
        "Retention Weekly (first successful backup of each week): 12 weeks",
        "Retention Default (every other backup): 30 days",
    ]


def test_elastic_san_and_postgres_use_their_datastores_and_backup_types(make_policy):
    esan = make_policy(ESAN).parsed.backup_rule
    assert esan["dataStore"]["dataStoreType"] == "OperationalStore"
    assert esan["backupParameters"]["backupType"] == "Incremental"
    pg = make_policy(PG, days=("Monday", "Thursday")).parsed
    assert pg.backup_rule["name"] == "BackupWeekly"
    assert pg.backup_rule["backupParameters"]["backupType"] == "Full"
    assert [i.iso().rsplit("/", 1)[1] for i in pg.intervals] == ["P1W", "P1W"]
    assert sorted(DAYS[i.start.weekday()] for i in pg.intervals) == ["Monday", "Thursday"]


@pytest.mark.date_sensitive
def test_the_first_scheduled_slot_is_never_in_the_past(make_policy):
    """A policy saved at 10:00 with a 02:00 schedule starts tomorrow, so nothing becomes due at once."""
    policy = make_policy(ADLS, time=dt.time(0, 0))
    assert all(i.start > clock.now() for i in policy.parsed.intervals)


# --- limits per type ------------------------------------------------------------------------------

ADLS_LIMITS = [
    # rule, count, unit, allowed
    ("Default", 7, "Days", True),
    ("Default", 6, "Days", False),  # at least 7 days
    ("Default", 3650, "Days", True),
    ("Default", 3651, "Days", False),
    ("Weekly", 521, "Weeks", True),
    ("Weekly", 522, "Weeks", False),
    ("Monthly", 120, "Months", True),
    ("Monthly", 121, "Months", False),
    ("Yearly", 10, "Years", True),
    ("Yearly", 11, "Years", False),
    ("Weekly", 0, "Weeks", False),
]


@pytest.mark.parametrize("rule,count,unit,allowed", ADLS_LIMITS)
def test_adls_retention_limits(rule, count, unit, allowed):
    retention = Retention(count, unit)
    s = spec(ADLS, default=retention) if rule == "Default" else spec(ADLS, extra={rule: retention})
    if allowed:
        svc.validate_spec(ADLS, s)
    else:
        errors = errors_of(lambda: svc.validate_spec(ADLS, s))
        assert list(errors) == [svc.RULE_FIELD[rule]]


@pytest.mark.parametrize("kind,frequency,allowed", [
    (ADLS, "Daily", True), (ADLS, "Weekly", True), (ADLS, "Hourly", False),
    (ESAN, "Daily", True), (ESAN, "Weekly", True), (ESAN, "Hourly", False),
    (PG, "Weekly", True), (PG, "Daily", False),
])
def test_schedule_frequencies_per_type(kind, frequency, allowed):
    s = spec(kind, frequency=frequency, days=("Sunday",) if frequency == "Weekly" else ())
    if allowed:
        svc.validate_spec(kind, s)
    else:
        assert "frequency" in errors_of(lambda: svc.validate_spec(kind, s))


def test_defaults_per_type_follow_the_reference():
    assert svc.default_spec(ESAN).frequency == "Daily"  # "Daily (default)"
    assert svc.default_spec(ESAN).default == Retention(7, "Days")  # "default retention 7 days"
    assert svc.default_spec(PG).frequency == "Weekly"
    assert svc.default_spec(ADLS).frequency == "Daily"


def test_weekly_needs_at_least_one_day():
    errors = errors_of(lambda: svc.validate_spec(PG, spec(PG, days=())))
    assert errors["days"] == ["Choose at least one day of the week for a weekly schedule."]


PG_LIMITS = [
    (Retention(6, "Days"), False), (Retention(7, "Days"), True), (Retention(1, "Weeks"), True),
    (Retention(10, "Years"), True), (Retention(11, "Years"), False), (Retention(120, "Months"), True),
    (Retention(3650, "Days"), True), (Retention(3651, "Days"), False),
]


@pytest.mark.parametrize("retention,allowed", PG_LIMITS)
def test_postgres_keeps_backups_7_days_to_10_years(retention, allowed):
    for s in (spec(PG, default=retention), spec(PG, extra={"Monthly": retention})):
        if allowed:
            svc.validate_spec(PG, s)
        else:
            errors = errors_of(lambda: svc.validate_spec(PG, s))
            assert "7 day" in " ".join(sum(errors.values(), [])) or "10 years" in " ".join(sum(errors.values(), []))


def _rules(kind, *, now=dt.datetime(2026, 12, 3, 9, 0, tzinfo=dt.timezone.utc), **kw):
    return svc.build_rules(kind, spec(kind, **kw), now=now)


@pytest.mark.parametrize("kw,expected", [
    ({"default": Retention(7, "Days")}, 7),
    ({"default": Retention(450, "Days")}, 450),
    ({"frequency": "Weekly", "days": ("Monday", "Thursday"), "default": Retention(30, "Weeks")}, 60),
    # A daily backup kept 7 days plus the first of each week kept 4 weeks: 6 default + 4 weekly in a
    # steady state, but protection started mid-week makes its first backup the first of a partial
    # week, so for a while 5 weekly points are alive at once: 11 is the true worst case.
    ({"default": Retention(7, "Days"), "extra": {"Weekly": Retention(4, "Weeks")}}, 11),
    ({"default": Retention(30, "Days"), "extra": {"Weekly": Retention(8, "Weeks"), "Monthly": Retention(6, "Months")}}, 40),
])
@pytest.mark.date_sensitive
def test_worst_case_recovery_points_follow_schedule_and_rules(kw, expected):
    assert svc.max_recovery_points(_rules(ESAN, **kw)) == expected


@pytest.mark.parametrize("created", [
    dt.datetime(2026, 11, 30, 9, tzinfo=dt.timezone.utc),   # a Monday
    dt.datetime(2026, 12, 3, 9, tzinfo=dt.timezone.utc),    # a Thursday
    dt.datetime(2026, 12, 6, 23, tzinfo=dt.timezone.utc),   # a Sunday
    dt.datetime(2028, 2, 29, 12, tzinfo=dt.timezone.utc),   # 29 February
    dt.datetime(2026, 12, 31, 23, 59, tzinfo=dt.timezone.utc),
])
@pytest.mark.date_sensitive
def test_worst_case_does_not_depend_on_the_day_the_policy_was_made(created):
    """GIVEN the same policy made on different days THEN its worst case is the same: the limit check
    covers every start day, not the one the schedule happens to begin on."""
    kw = {"default": Retention(7, "Days"), "extra": {"Weekly": Retention(4, "Weeks"), "Monthly": Retention(3, "Months")}}
    reference = svc.max_recovery_points(_rules(ESAN, **kw))
    assert svc.max_recovery_points(_rules(ESAN, now=created, **kw)) == reference


@pytest.mark.parametrize("kw,allowed", [
    ({"default": Retention(450, "Days")}, True),
    ({"default": Retention(451, "Days")}, False),
    ({"frequency": "Weekly", "days": ("Sunday",), "default": Retention(450, "Weeks")}, True),
    ({"frequency": "Weekly", "days": ("Sunday",), "default": Retention(451, "Weeks")}, False),
    ({"default": Retention(440, "Days"), "extra": {"Weekly": Retention(20, "Weeks")}}, True),
    ({"default": Retention(440, "Days"), "extra": {"Monthly": Retention(24, "Months"), "Yearly": Retention(10, "Years")}}, False),
])
@pytest.mark.date_sensitive
def test_elastic_san_keeps_at_most_450_recovery_points(kw, allowed):
    s = spec(ESAN, **kw)
    if allowed:
        svc.validate_spec(ESAN, s)
    else:
        errors = errors_of(lambda: svc.validate_spec(ESAN, s))
        [message] = errors[NON_FIELD_ERRORS]
        assert "allows at most 450 across all rules" in message


@pytest.mark.parametrize("name,ok", [("ab", False), ("abc", True), ("daily-30d", True), ("-x1", False),
                                     ("has space", False), ("a" * 150, True), ("a" * 151, False), ("ends-", False)])
def test_policy_name_rule(name, ok, make_policy):
    if ok:
        assert make_policy(ADLS, name).name == name
    else:
        assert errors_of(lambda: make_policy(ADLS, name)) == {"name": [svc.POLICY_NAME_RULE]}


def test_policy_names_are_unique_per_vault_ignoring_case(make_policy, vault):
    make_policy(ADLS, "Daily-Policy")
    errors = errors_of(lambda: make_policy(ADLS, "daily-policy"))
    assert errors["name"][0].startswith("A backup policy named 'daily-policy' already exists in the vault 'bv-protect'")
    assert BackupPolicy.objects.filter(vault=vault).count() == 1


def test_spec_round_trips_through_the_stored_json(lab, vault):
    original = spec(PG, days=("Tuesday", "Saturday"), time=dt.time(23, 15), default=Retention(3, "Months"),
                    extra={"Yearly": Retention(5, "Years")})
    policy = svc.create_policy(lab.trainer, vault=vault, name="pg-roundtrip", datasource_type=PG, spec=original)
    assert svc.spec_of(policy) == original


# --- edits and deletes ----------------------------------------------------------------------------


@pytest.mark.date_sensitive
def test_editing_a_policy_applies_to_every_instance_using_it(lab, vault, inventory, make_policy):
    """GIVEN two instances on a daily 02:00 policy WHEN it is changed to 05:45 THEN both instances'
    next backup moves to 05:45, and the activity log counts them."""
    from security.models import ActivityLogEntry

    policy = make_policy(ADLS, "shared", time=dt.time(2, 0))
    first = protect(lab, vault, policy, inventory.account, name="bi-one")
    assert first.protection_state == ProtectionState.CONFIGURED
    assert first.next_backup_at.time() == dt.time(2, 0)
    svc.update_policy(lab.trainer, policy, spec=spec(ADLS, time=dt.time(5, 45), default=Retention(60, "Days")))
    first.refresh_from_db()
    assert first.next_backup_at.time() == dt.time(5, 45)
    assert first.next_backup_at > clock.now()
    assert policy.parsed.default_rule().duration.iso() == "P60D"
    entry = ActivityLogEntry.objects.filter(operation=svc.POLICY_WRITE, scope=policy.resource_id).latest("timestamp")
    assert entry.details["rescheduledInstances"] == 1


def test_guards_see_the_retention_before_and_after(lab, make_policy):
    seen = []

    def spy(principal, operation, target, change):
        if operation == svc.POLICY_WRITE:
            seen.append(change)
        return None

    policy = make_policy(ADLS, default=Retention(30, "Days"))
    register_guard("test-spy", spy, order=90)
    try:
        svc.update_policy(lab.trainer, policy, spec=spec(ADLS, default=Retention(10, "Days"), extra={"Yearly": Retention(2, "Years")}))
    finally:
        unregister_guard("test-spy")
    [change] = seen
    assert change["max_retention_days_before"] == 30
    assert change["max_retention_days_after"] == 730
    assert change["retention_before"] == {"Default": "P30D"}
    assert change["retention_after"] == {"Yearly": "P2Y", "Default": "P10D"}


def test_a_policy_in_use_cannot_be_deleted_and_the_message_names_the_instances(lab, vault, inventory, make_policy):
    policy = make_policy(PG, "pg-weekly")
    protect(lab, vault, policy, inventory.server, name="bi-pg")
    with pytest.raises(ValidationError) as info:
        svc.delete_policy(lab.trainer, policy)
    assert info.value.messages == [
        "The backup policy 'pg-weekly' is used by 1 backup instance: 'bi-pg'. Change their policy or delete them, "
        "then delete the policy."
    ]
    assert BackupPolicy.objects.filter(pk=policy.pk).exists()


def test_an_unused_policy_is_deleted(lab, make_policy):
    policy = make_policy(ESAN)
    svc.delete_policy(lab.trainer, policy)
    assert not BackupPolicy.objects.filter(pk=policy.pk).exists()


def test_a_vault_holding_a_policy_refuses_deletion_with_the_exact_message(lab, vault, make_policy):
    from vaults import services as vault_services
    from vaults.models import BackupVault

    make_policy(ADLS)
    with pytest.raises(GuardDenied) as info:
        vault_services.delete_vault(lab.trainer, vault)
    assert info.value.decision.reason == (
        "Cannot delete the Backup vault as there are existing backup instances or backup policies in the vault. "
        "Delete all backup instances and backup policies that are present in the vault and then try deleting the vault."
    )
    assert BackupVault.objects.filter(pk=vault.pk).exists()


def test_a_vault_holding_only_a_failed_instance_still_refuses_deletion(lab, vault, inventory, make_policy):
    from vaults import services as vault_services

    policy = make_policy(ADLS)
    instance = protect(lab, vault, policy, inventory.account, run=False)
    assert instance.protection_state == ProtectionState.CONFIGURING
    with pytest.raises(GuardDenied):
        vault_services.delete_vault(lab.trainer, vault)


# --- authorization matrix -------------------------------------------------------------------------

A, D = True, False
# role on the lab resource group -> read policies, create, edit, delete
POLICY_MATRIX = [
    (roles.OWNER,              A, A, A, A),
    (roles.BACKUP_CONTRIBUTOR, A, A, A, A),
    (roles.BACKUP_OPERATOR,    A, D, D, D),
    (roles.BACKUP_READER,      A, D, D, D),
    (roles.READER,             A, D, D, D),
    (None,                     D, D, D, D),
]


@pytest.mark.parametrize("role,read,create,edit,delete", [pytest.param(*r, id=r[0] or "no role") for r in POLICY_MATRIX])
def test_policy_authorization_matrix(role, read, create, edit, delete, vault, make_policy, principal_with):
    principal = principal_with(role)
    existing = make_policy(ADLS, "existing")
    assert svc.policies_for(principal).filter(pk=existing.pk).exists() is read
    assert _attempt(lambda: make_policy(ADLS, "by-them", principal=principal)) is create
    assert _attempt(lambda: svc.update_policy(principal, existing, spec=spec(ADLS, default=Retention(40, "Days")))) is edit
    assert _attempt(lambda: svc.delete_policy(principal, existing)) is delete
