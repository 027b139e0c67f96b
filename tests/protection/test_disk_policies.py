"""Azure Disk policies (reference §3.5, §5.3): hourly schedules every 1, 2, 4, 6, 8 or 12 hours stored as
Azure stores them (``R/<start>/PT<n>H``, rule ``BackupHourly``, OperationalStore), the Default rule plus
"first successful backup taken daily / weekly" rules, at most 1 year per rule and 450 snapshots kept;
the dispatcher running hourly slots across a day of lab time (and only the latest slot after a jump);
and the retention tag an hourly point gets."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError

from protection import datasource_types
from protection.backups import services as backups
from protection.jobs import runner as jobs
from protection.models import BackupInstance, Job, JobStatus, ProtectionState
from protection.policies import services as svc
from protection.policies.services import PolicySpec, Retention
from protection.policy_rules import Policy, PolicyError, schedule_intervals
from protection.scheduling import reschedule
from security import clock
from security import services as security_services
from tests.protection._protection_fixtures import vault  # noqa: F401  (fixtures)

DISK = datasource_types.AZURE_DISK
NOW = dt.datetime(2026, 3, 4, 9, 30, tzinfo=dt.timezone.utc)  # a Wednesday, after the 08:00 start


def at(*args):
    return dt.datetime(*args, tzinfo=dt.timezone.utc)


def hourly(every=4, default=Retention(7, "Days"), extra=None, time=dt.time(8, 0)):
    return PolicySpec("Hourly", time, (), default, extra or {}, every=every)


def rules_of(spec, now=NOW):
    return svc.build_rules(DISK, spec, now=now)


# --- the policy's shape ------------------------------------------------------------------------------


@pytest.mark.django_db  # the lab clock's offset is in the database
def test_an_hourly_disk_policy_is_stored_as_azure_stores_it():
    rules = svc.validate_spec(DISK, hourly(extra={"Daily": Retention(30, "Days"), "Weekly": Retention(12, "Weeks")}))
    backup = rules[0]
    assert backup["name"] == "BackupHourly" and backup["objectType"] == "AzureBackupRule"
    assert backup["backupParameters"] == {"objectType": "AzureBackupParams", "backupType": "Incremental"}
    assert backup["dataStore"]["dataStoreType"] == "OperationalStore"
    [interval] = backup["trigger"]["schedule"]["repeatingTimeIntervals"]
    assert interval.startswith("R/") and interval.endswith("T08:00:00+00:00/PT4H")
    tags = {t["tagInfo"]["tagName"]: t for t in backup["trigger"]["taggingCriteria"]}
    assert tags["Daily"]["criteria"][0]["absoluteCriteria"] == ["FirstOfDay"] and tags["Daily"]["taggingPriority"] == 25
    assert tags["Weekly"]["criteria"][0]["absoluteCriteria"] == ["FirstOfWeek"] and tags["Weekly"]["taggingPriority"] == 20
    assert tags["Default"]["isDefault"] is True and "criteria" not in tags["Default"]
    retention = {r["name"]: r for r in rules[1:]}
    assert retention["Default"]["isDefault"] is True
    assert retention["Default"]["lifecycles"][0]["deleteAfter"] == {"objectType": "AbsoluteDeleteOption", "duration": "P7D"}
    assert retention["Default"]["lifecycles"][0]["sourceDataStore"]["dataStoreType"] == "OperationalStore"
    policy = Policy(rules)
    assert policy.frequency == "Hourly" and policy.every_hours == 4
    assert policy.summary()[0] == "Backup: every 4 hours from 08:00 (UTC)"
    assert "Retention Daily (first successful backup of each day): 30 days" in policy.summary()


@pytest.mark.parametrize("every", [1, 2, 4, 6, 8, 12])
def test_every_offered_interval_round_trips_through_the_edit_spec(every):
    rules = rules_of(hourly(every=every, default=Retention(1, "Days")))
    assert rules[0]["trigger"]["schedule"]["repeatingTimeIntervals"][0].endswith(f"/PT{every}H")
    assert Policy(rules).summary()[0].startswith("Backup: every hour" if every == 1 else f"Backup: every {every} hours")


@pytest.mark.parametrize("every", [None, 3, 5, 24])
@pytest.mark.django_db  # the lab clock's offset is in the database
def test_other_intervals_are_refused_beside_the_every_field(every):
    with pytest.raises(ValidationError) as caught:
        svc.validate_spec(DISK, hourly(every=every))
    assert caught.value.message_dict == {"every": ["Choose how often an hourly schedule runs: every 1, 2, 4, 6, 8 or 12 hours."]}
    with pytest.raises(PolicyError):
        schedule_intervals("Hourly", time=dt.time(8), days=None, start=dt.date(2026, 1, 1), every_hours=every)


@pytest.mark.django_db  # the lab clock's offset is in the database
def test_other_types_offer_no_hourly_schedule_and_disks_offer_no_weekly_one():
    with pytest.raises(ValidationError) as caught:
        svc.validate_spec(datasource_types.ELASTIC_SAN, hourly())
    assert "can be scheduled Daily or Weekly only" in caught.value.message_dict["frequency"][0]
    with pytest.raises(ValidationError) as caught:
        svc.validate_spec(DISK, PolicySpec("Weekly", dt.time(8), ("Sunday",), Retention(7, "Days"), {}))
    assert caught.value.message_dict["frequency"] == ["Azure Disk backups can be scheduled Hourly or Daily only."]
    daily = svc.validate_spec(DISK, PolicySpec("Daily", dt.time(22, 0), (), Retention(30, "Days"), {}))
    assert daily[0]["name"] == "BackupDaily" and daily[0]["trigger"]["schedule"]["repeatingTimeIntervals"][0].endswith("/P1D")


@pytest.mark.django_db  # the lab clock's offset is in the database
def test_disk_rules_are_default_daily_weekly_up_to_a_year():
    with pytest.raises(ValidationError) as caught:
        svc.validate_spec(DISK, hourly(every=12, extra={"Monthly": Retention(2, "Months")}))
    assert "Azure Disk policies have no Monthly retention rule." in caught.value.messages
    with pytest.raises(ValidationError) as caught:
        svc.validate_spec(DISK, hourly(every=12, extra={"Weekly": Retention(53, "Weeks")}))
    assert caught.value.message_dict == {"weekly_count": ["The Weekly rule can keep backups for at most 52 weeks (1 year)."]}
    with pytest.raises(ValidationError) as caught:
        svc.validate_spec(DISK, hourly(every=12, default=Retention(2, "Years")))
    assert caught.value.message_dict == {"default_count": ["The Default rule can keep backups for at most 1 year (1 year)."]}
    svc.validate_spec(DISK, PolicySpec("Daily", dt.time(8), (), Retention(1, "Years"), {}))  # 365 points: allowed


@pytest.mark.django_db  # the lab clock's offset is in the database
def test_the_450_snapshot_limit_says_what_to_change():
    """Every hour for 30 days keeps 720 snapshots: refused, with what the limit is and what fits."""
    with pytest.raises(ValidationError) as caught:
        svc.validate_spec(DISK, hourly(every=1, default=Retention(30, "Days")))
    [message] = caught.value.messages
    assert "could keep up to 720 recovery points at once" in message
    assert "Azure Disk allows at most 450 across all rules" in message
    assert "Every hour makes 24 backups a day: keep them at most 18 days" in message
    assert "every 12 hours allows 225 days" in message
    # The reference's example: 12-hourly → at most 225 days.
    assert svc.max_recovery_points(svc.validate_spec(DISK, hourly(every=12, default=Retention(225, "Days")))) == 450
    with pytest.raises(ValidationError):
        svc.validate_spec(DISK, hourly(every=12, default=Retention(226, "Days")))
    svc.validate_spec(DISK, hourly(every=1, default=Retention(18, "Days")))  # 432
    # Daily and weekly rules keep snapshots too: they count against the same 450.
    with pytest.raises(ValidationError):
        svc.validate_spec(DISK, hourly(every=4, default=Retention(30, "Days"), extra={"Daily": Retention(365, "Days")}))
    svc.validate_spec(DISK, hourly(every=4, default=Retention(7, "Days"),
                                   extra={"Daily": Retention(365, "Days"), "Weekly": Retention(52, "Weeks")}))


def test_the_edit_form_reads_an_hourly_policy_back():
    from protection.policies.forms import PolicyScheduleForm

    spec = hourly(every=6, extra={"Daily": Retention(30, "Days")}, time=dt.time(3, 0))
    rules = rules_of(spec)

    class Stored:
        parsed = Policy(rules)

    read = svc.spec_of(Stored)
    assert (read.frequency, read.every, read.time, read.default, read.extra) == (
        "Hourly", 6, dt.time(3, 0), Retention(7, "Days"), {"Daily": Retention(30, "Days")})
    form = PolicyScheduleForm(datasource_type=DISK, spec=read)
    assert form.fields["every"].initial == 6 and form.fields["frequency"].label == "Frequency"
    assert set(form.fields) >= {"daily_enabled", "weekly_enabled"} and "monthly_enabled" not in form.fields
    assert "days" not in form.fields and form.has_extra_rules


# --- schedule slots ----------------------------------------------------------------------------------


def test_hourly_slots_next_and_latest_due():
    policy = Policy(rules_of(hourly(every=4)))  # from 08:00 on NOW's day (09:30): 12:00, 16:00, 20:00, 00:00, 04:00, 08:00
    assert policy.intervals[0].start == at(2026, 3, 4, 8, 0)
    assert policy.next_run_after(NOW) == at(2026, 3, 4, 12, 0)
    assert policy.next_run_after(at(2026, 3, 4, 12, 0)) == at(2026, 3, 4, 16, 0)
    assert policy.next_run_after(at(2026, 3, 4, 22, 0)) == at(2026, 3, 5, 0, 0)
    # After a jump of many hours only the latest slot is due.
    assert policy.latest_due(at(2026, 3, 4, 8, 0), at(2026, 3, 5, 7, 59)) == at(2026, 3, 5, 4, 0)
    assert policy.latest_due(at(2026, 3, 5, 4, 0), at(2026, 3, 5, 7, 59)) is None
    # A policy made before its start time today starts today.
    early = Policy(rules_of(hourly(every=4), now=at(2026, 3, 4, 6, 0)))
    assert early.next_run_after(at(2026, 3, 4, 6, 0)) == at(2026, 3, 4, 8, 0)


def test_an_hourly_point_gets_the_highest_priority_rule_it_satisfies():
    """Every 4 h from 08:00, Daily 30 days and Weekly 12 weeks: the week's first point is Weekly, each
    later day's first is Daily, the rest Default (the same `tag_for` the backup job asks)."""
    policy = Policy(rules_of(hourly(every=4, extra={"Daily": Retention(30, "Days"), "Weekly": Retention(12, "Weeks")})))
    earlier: list[dt.datetime] = []
    tags = []
    for slot in [at(2026, 3, 9, 8) + k * dt.timedelta(hours=4) for k in range(12)]:  # Monday 08:00 .. Wednesday 04:00
        tags.append((slot.strftime("%a %H"), policy.tag_for(slot, earlier).tag))
        earlier.append(slot)
    assert tags[0] == ("Mon 08", "Weekly")
    assert tags[4] == ("Tue 00", "Daily") and tags[10] == ("Wed 00", "Daily")
    assert all(t == "Default" for i, (_, t) in enumerate(tags) if i not in (0, 4, 10))
    assert policy.rule("Daily").duration.add_to(at(2026, 3, 10, 0)) == at(2026, 4, 9, 0)


# --- the dispatcher across a day of lab time ---------------------------------------------------------


@pytest.fixture
def enqueued(monkeypatch):
    sent = []
    monkeypatch.setattr(jobs, "enqueue", lambda job: sent.append(job.pk))
    return sent


def _disk_instance(lab, vault, policy, name="bi-disk-hourly"):
    """An Azure Disk backup instance row, made directly (the disk datasource is another branch's)."""
    disk_id = f"{lab.lab_group.resource_id}/providers/Microsoft.Compute/disks/{name}-disk"
    instance = BackupInstance.objects.create(
        vault=vault, name=name, datasource_type=DISK, datasource_resource_id=disk_id, datasource_name=f"{name}-disk",
        datasource_location=vault.region.name, policy=policy, protection_state=ProtectionState.CONFIGURED,
        snapshot_resource_group_id=lab.lab_group.resource_id,
    )
    reschedule(instance)
    instance.refresh_from_db()
    return instance


def _finish_backups(instance):
    """The backups are not run here: each dispatched job is marked done so the next slot may start."""
    Job.objects.filter(instance=instance, status=JobStatus.IN_PROGRESS).update(status=JobStatus.COMPLETED, end_time=clock.now())


@pytest.mark.date_sensitive
@pytest.mark.django_db
def test_hourly_slots_are_dispatched_across_a_day_of_lab_time(lab, vault, enqueued):
    """GIVEN every 4 hours from 08:00 WHEN the lab clock steps an hour at a time through 24 hours THEN
    exactly 6 backups are dispatched, one per slot, each at its slot; THEN a 10-hour jump dispatches one
    backup, for the latest slot only."""
    policy = svc.create_policy(lab.trainer, vault=vault, name="disk-every-4h", datasource_type=DISK, spec=hourly(every=4))
    instance = _disk_instance(lab, vault, policy)
    first = instance.next_backup_at
    assert first > clock.now() and first.hour % 4 == 0 and first.minute == 0
    # Half an hour before the first slot (the schedule starts at 08:00 today: no slot before it).
    gap = first - dt.timedelta(minutes=30) - clock.now()
    if gap > dt.timedelta(0):
        security_services.move_lab_clock(lab.trainer, forward=gap)
    start = clock.now()
    for _ in range(24):
        security_services.move_lab_clock(lab.trainer, forward=dt.timedelta(hours=1))
        backups.dispatch_due_backups()
        _finish_backups(instance)
    dispatched = list(Job.objects.filter(instance=instance, operation="Backup").order_by("scheduled_time"))
    assert len(dispatched) == 6 and len(enqueued) == 6
    slots = [j.scheduled_time for j in dispatched]
    assert all(b - a == dt.timedelta(hours=4) for a, b in zip(slots, slots[1:]))
    assert slots[0] == first and all(s.hour in (0, 4, 8, 12, 16, 20) and start < s <= clock.now() for s in slots)
    assert all(j.rule_name == "BackupHourly" and j.datasource_type == DISK and not j.is_user_triggered for j in dispatched)

    before = clock.now()
    security_services.move_lab_clock(lab.trainer, forward=dt.timedelta(hours=10))
    report = backups.dispatch_due_backups()
    [job] = Job.objects.filter(instance=instance, operation="Backup").exclude(pk__in=[j.pk for j in dispatched])
    assert report.enqueued == [job.pk]
    now = clock.now()
    assert now - dt.timedelta(hours=4) < job.scheduled_time <= now and job.scheduled_time > before
    instance.refresh_from_db()
    assert instance.last_scheduled_slot == job.scheduled_time
    assert instance.next_backup_at == job.scheduled_time + dt.timedelta(hours=4)
    assert backups.dispatch_due_backups().enqueued == []


@pytest.mark.django_db
def test_the_edit_page_changes_an_hourly_disk_policy(lab, vault, client):
    """The Edit page shows Every and the added rules, and saves every 12 hours with a weekly rule; a
    weekly rule past a year stays beside its field."""
    from django.urls import reverse

    policy = svc.create_policy(lab.trainer, vault=vault, name="disk-edit", datasource_type=DISK,
                               spec=hourly(every=4, extra={"Daily": Retention(30, "Days")}))
    client.force_login(lab.trainer.user)
    url = reverse("protection:policy_edit", args=[policy.pk])
    page = client.get(url).content.decode()
    assert 'name="every"' in page and "+ Add retention rule" in page and "First successful backup taken weekly" in page
    assert 'id="added-rules" open' in page and 'name="monthly_count"' not in page and 'name="days"' not in page
    data = {"frequency": "Hourly", "every": "12", "time": "20:00", "default_count": "30", "default_unit": "Days",
            "daily_enabled": "on", "daily_count": "30", "daily_unit": "Days",
            "weekly_enabled": "on", "weekly_count": "53", "weekly_unit": "Weeks"}
    refused = client.post(url, data)
    assert refused.status_code == 400
    assert "The Weekly rule can keep backups for at most 52 weeks (1 year)." in refused.content.decode()
    saved = client.post(url, {**data, "weekly_count": "12"})
    assert saved.status_code == 302
    policy.refresh_from_db()
    assert policy.parsed.summary()[0] == "Backup: every 12 hours from 20:00 (UTC)"
    assert svc.retention_map(policy.policy_rules) == {"Weekly": "P12W", "Daily": "P30D", "Default": "P30D"}
