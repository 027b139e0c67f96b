import datetime as dt

import pytest

from protection.policy_rules import (
    Duration, Policy, PolicyError, RepeatingInterval, build_policy_rules, schedule_intervals,
)

UTC = dt.timezone.utc


def t(*args):
    return dt.datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize("text,days", [("P30D", 30), ("P12W", 84), ("P10Y", 3650), ("P6M", 182.625), ("P1Y2M3D", 365 + 60.875 + 3)])
def test_durations(text, days):
    assert Duration.parse(text).approx_days() == pytest.approx(days)
    assert Duration.parse(text).iso() == text


@pytest.mark.parametrize("bad", ["", "P", "30D", "P3X", "PT"])
def test_bad_durations_are_explained(bad):
    with pytest.raises(PolicyError, match="ISO 8601 duration"):
        Duration.parse(bad)


def test_month_arithmetic_clamps_to_month_end():
    assert Duration.parse("P1M").add_to(t(2026, 1, 31, 2)) == t(2026, 2, 28, 2)


def test_daily_interval_next_and_latest():
    interval = RepeatingInterval.parse("R/2026-01-01T02:00:00+00:00/P1D")
    assert interval.next_after(t(2026, 3, 5, 1)) == t(2026, 3, 5, 2)
    assert interval.next_after(t(2026, 3, 5, 2)) == t(2026, 3, 6, 2)
    assert interval.latest_at_or_before(t(2026, 3, 9, 23)) == t(2026, 3, 9, 2)
    assert interval.latest_at_or_before(t(2025, 12, 31)) is None


def test_weekly_schedule_on_chosen_days():
    intervals = schedule_intervals("Weekly", time=dt.time(3, 0), days=["Sunday", "Wednesday"], start=dt.date(2026, 1, 1))
    rules = build_policy_rules(datastore="VaultStore", backup_type="Full", frequency="Weekly", intervals=intervals,
                               time_zone="UTC", default_retention="P3M")
    policy = Policy(rules)
    # 2026-01-01 is a Thursday: next is Sunday the 4th, then Wednesday the 7th.
    assert policy.next_run_after(t(2026, 1, 1, 12)) == t(2026, 1, 4, 3)
    assert policy.next_run_after(t(2026, 1, 4, 3)) == t(2026, 1, 7, 3)
    assert policy.summary()[0] == "Backup: weekly on Wednesday, Sunday at 03:00 (UTC)"


def test_after_a_clock_jump_only_the_latest_slot_is_due():
    rules = build_policy_rules(datastore="VaultStore", backup_type="Discrete", frequency="Daily",
                               intervals=schedule_intervals("Daily", time=dt.time(2), days=None, start=dt.date(2026, 1, 1)),
                               time_zone="UTC", default_retention="P30D")
    policy = Policy(rules)
    assert policy.latest_due(t(2026, 1, 1, 2), t(2026, 1, 20, 5)) == t(2026, 1, 20, 2)
    assert policy.latest_due(t(2026, 1, 20, 2), t(2026, 1, 20, 5)) is None


def test_retention_tag_priorities_yearly_over_monthly_over_weekly_over_default():
    rules = build_policy_rules(datastore="VaultStore", backup_type="Discrete", frequency="Daily",
                               intervals=["R/2026-01-01T02:00:00+00:00/P1D"], time_zone="UTC",
                               default_retention="P30D",
                               extra_retentions={"Weekly": "P12W", "Monthly": "P12M", "Yearly": "P10Y"})
    policy = Policy(rules)
    assert policy.tag_for(t(2026, 1, 1, 2), []).tag == "Yearly"
    assert policy.tag_for(t(2026, 2, 1, 2), [t(2026, 1, 31, 2)]).tag == "Monthly"  # a Sunday, new month
    assert policy.tag_for(t(2026, 2, 2, 2), [t(2026, 2, 1, 2)]).tag == "Weekly"  # Monday starts an ISO week
    assert policy.tag_for(t(2026, 2, 3, 2), [t(2026, 2, 2, 2)]).tag == "Default"
    assert [r.priority for r in policy.retention_rules] == [10, 15, 20, 99]


def test_policy_without_retention_for_a_tag_is_refused():
    rules = build_policy_rules(datastore="VaultStore", backup_type="Discrete", frequency="Daily",
                               intervals=["R/2026-01-01T02:00:00+00:00/P1D"], time_zone="UTC",
                               default_retention="P30D", extra_retentions={"Weekly": "P12W"})
    rules = [r for r in rules if r.get("name") != "Weekly"]
    with pytest.raises(PolicyError, match="no retention rule"):
        Policy(rules)
