"""Backup policies: create, edit, delete, and the per-datasource limits (reference §1.3, §5.3, §5.8).

A policy is described by a `PolicySpec` (schedule + retention rules as a person fills them in) and
stored as `policy_rules.build_policy_rules` builds it: the API's policyRules JSON. Every write runs in
`security.audit.guarded` with the action string and a ``change`` dict guards can judge::

    {"setting": "retention",
     "max_retention_days_before": 30.0 | None,   # None when the policy is new
     "max_retention_days_after": 90.0,
     "retention_before": {"Default": "P30D"}, "retention_after": {"Default": "P90D", "Weekly": "P12W"}}

so the immutability guard (issue 10) can refuse a shorter retention without touching this module.

Limits per type (reference §5.3, §5.8):

* Azure Data Lake Storage: Daily or Weekly; Default rule plus Weekly / Monthly / Yearly rules;
  at most 3,650 days, 521 weeks, 120 months or 10 years per rule; at least 7 days.
* Elastic SAN: Daily (default) or Weekly; default retention 7 days; at most 450 recovery points kept
  at any moment across all rules (`max_recovery_points` computes the worst case from the schedule).
* PostgreSQL flexible servers: Weekly only, on chosen days; every rule 7 days to 10 years.
* Azure Disk: Hourly every 1, 2, 4, 6, 8 or 12 hours (``R/<start>/PT<n>H``) or Daily; Default rule plus
  "first successful backup taken daily / weekly" rules; at most 1 year per rule and 450 snapshots kept.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from dataclasses import dataclass, field

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import IntegrityError, transaction

from portal.shortcuts import visible
from protection import datasource_types, redating
from protection.models import BackupInstance, BackupPolicy
from protection.policy_rules import (
    DAYS, HOURLY_EVERY, Duration, Policy, PolicyError, RepeatingInterval, build_policy_rules, schedule_intervals,
)
from protection.scheduling import reschedule_policy_instances
from security import clock
from security.audit import guarded
from security.operations import POLICY_DELETE, POLICY_READ, POLICY_WRITE
from vaults.guards import retention_reduced


TIME_ZONE = "UTC"  # schedules are kept in UTC (the summary says so)
POLICY_IN_USE = "BackupPolicyInUse"  # the code of `delete_policy`'s refusal (the API answers it 409)

# Units and the reference's per-unit maxima (ADLS: daily 3,650 d, weekly 521 w, monthly 120 m,
# yearly 10 y; "up to 10 years" everywhere).
UNITS = {"Days": "D", "Weeks": "W", "Months": "M", "Years": "Y"}
UNIT_MAX = {"Days": 3650, "Weeks": 521, "Months": 120, "Years": 10}
UNIT_DAYS = {"Days": 1, "Weeks": 7, "Months": 30.4375, "Years": 365}
EXTRA_RULES = ("Daily", "Weekly", "Monthly", "Yearly")  # besides Default, in the order the portal lists them
RULE_UNIT = {"Default": "Days", "Daily": "Days", "Weekly": "Weeks", "Monthly": "Months", "Yearly": "Years"}
RULE_FIELD = {"Default": "default_count", "Daily": "daily_count", "Weekly": "weekly_count", "Monthly": "monthly_count",
              "Yearly": "yearly_count"}
RULE_TEXT = {
    "Default": "Default (every backup that no other rule keeps)",
    "Daily": "Daily (first successful backup of each day)",
    "Weekly": "Weekly (first successful backup of each week)",
    "Monthly": "Monthly (first successful backup of each month)",
    "Yearly": "Yearly (first successful backup of each year)",
}

POLICY_NAME_RE = re.compile(r"^[A-Za-z][-A-Za-z0-9]*[A-Za-z0-9]$")
POLICY_NAME_MIN, POLICY_NAME_MAX = 3, 150
POLICY_NAME_RULE = (
    "A policy name must be 3 to 150 characters long, start with a letter, end with a letter or a digit, "
    "and contain only letters, digits and hyphens."
)


@dataclass(frozen=True)
class TypeRules:
    """What the policy wizard offers for one datasource type."""

    frequencies: tuple[str, ...]
    default_frequency: str
    default_retention: tuple[int, str]  # (count, unit)
    min_days: int
    max_recovery_points: int | None
    rules: tuple[str, ...] = ("Default", "Weekly", "Monthly", "Yearly")
    notes: tuple[str, ...] = field(default=())
    every_hours: tuple[int, ...] = ()  # what an Hourly schedule offers
    default_every: int | None = None
    default_time: dt.time = dt.time(2, 0)
    unit_max: dict | None = None  # a rule's longest retention per unit, when shorter than UNIT_MAX
    max_label: str = "10 years"


TYPE_RULES = {
    datasource_types.ADLS: TypeRules(
        ("Daily", "Weekly"), "Daily", (30, "Days"), 7, None,
        notes=("One scheduled backup a day at most, plus up to 4 on-demand backups.",
               "Retention: up to 3,650 days, 521 weeks, 120 months or 10 years per rule; at least 7 days.",
               "Priority when a backup qualifies for several rules: Yearly > Monthly > Weekly > Default."),
    ),
    datasource_types.ELASTIC_SAN: TypeRules(
        ("Daily", "Weekly"), "Daily", (7, "Days"), 1, 450,
        notes=("Recovery points are operational-tier snapshots in the snapshot resource group.",
               "At most 450 recovery points may be kept at any time across all retention rules.",
               "Priority when a backup qualifies for several rules: Yearly > Monthly > Weekly > Default."),
    ),
    datasource_types.POSTGRES_FLEX: TypeRules(
        ("Weekly",), "Weekly", (3, "Months"), 7, None,
        notes=("The whole server is backed up weekly, on the days you choose, into the vault store.",
               "Every retention rule keeps backups from 7 days to 10 years.",
               "Priority when a backup qualifies for several rules: Yearly > Monthly > Weekly > Default."),
    ),
    datasource_types.AZURE_DISK: TypeRules(
        ("Hourly", "Daily"), "Hourly", (7, "Days"), 1, 450, rules=("Default", "Daily", "Weekly"),
        every_hours=HOURLY_EVERY, default_every=4, default_time=dt.time(8, 0),
        unit_max={"Days": 365, "Weeks": 52, "Months": 12, "Years": 1}, max_label="1 year",
        notes=("Backups are incremental snapshots in the snapshot resource group (operational tier), several a day "
               "with an hourly schedule. The start time is when the backup starts, not when it completes.",
               "Premium SSD v2 and Ultra disks can be backed up every 12 hours (or daily) only: a policy cannot know "
               "which disks will use it, so choose Every 12 hours or Daily for those.",
               "Retention: up to 1 year per rule, and at most 450 snapshots kept at any time across all rules "
               "(Azure's limit is 500 incremental snapshots per disk); for example every 12 hours allows 225 days.",
               "Priority when a backup qualifies for several rules: Weekly > Daily > Default."),
    ),
}


def type_rules(datasource_type: str) -> TypeRules:
    return TYPE_RULES[datasource_type]


@dataclass(frozen=True)
class Retention:
    count: int
    unit: str  # Days / Weeks / Months / Years

    def iso(self) -> str:
        return f"P{self.count}{UNITS[self.unit]}"

    @property
    def days(self) -> float:
        return self.count * UNIT_DAYS[self.unit]

    @classmethod
    def from_iso(cls, text: str) -> "Retention":
        d = Duration.parse(text)
        for count, unit in ((d.years, "Years"), (d.months, "Months"), (d.weeks, "Weeks"), (d.days, "Days")):
            if count and sum(1 for v in (d.years, d.months, d.weeks, d.days) if v) == 1:
                return cls(count, unit)
        return cls(int(round(d.approx_days())), "Days")

    def label(self) -> str:
        return Duration.parse(self.iso()).label()


# --- archive tier (issue 21) ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Tiering:
    """"Tier to archive" of the Default retention rule: after ``after_months`` (None: on expiry of the
    Vault-standard retention), kept ``archive`` in all (from the backup time)."""

    after_months: int | None
    archive: Retention


def _tiering_of(policy_rules) -> Tiering | None:
    from protection.policy_rules import tiering_rules

    rule = tiering_rules(policy_rules).get("Default")
    if rule is None:
        return None
    after = rule.copy_after.months + 12 * rule.copy_after.years if rule.copy_after else None
    return Tiering(after, Retention.from_iso(rule.archive_duration.iso()))


def _apply_tiering(datasource_type: str, spec, policy_rules: list[dict]) -> list[dict]:
    from protection.policy_rules import check_tiering, with_tiering

    if spec.tiering is None:
        return policy_rules
    tiered = with_tiering(policy_rules, tag="Default",
                          copy_after=f"P{spec.tiering.after_months}M" if spec.tiering.after_months is not None else None,
                          archive_duration=spec.tiering.archive.iso())
    kind = datasource_types.get(datasource_type)
    check_tiering(tiered, datasource_label=kind.label, supports_archive=datasource_type == datasource_types.POSTGRES_FLEX)
    return tiered
# --- end archive tier


@dataclass(frozen=True)
class PolicySpec:
    """A policy as the wizard fills it in: schedule and retention rules."""

    frequency: str
    time: dt.time
    days: tuple[str, ...] = ()
    default: Retention = Retention(30, "Days")
    extra: dict = field(default_factory=dict)  # {"Weekly": Retention(12, "Weeks"), ...}
    start: dt.date | None = None  # the earliest day the schedule may begin (the API's interval start)
    every: int | None = None  # hours between backups of an Hourly schedule
    tiering: "Tiering | None" = None  # archive tier (issue 21): the Default rule's tiering rule

    def retentions(self) -> dict[str, Retention]:
        return {"Default": self.default, **{k: v for k, v in self.extra.items() if v is not None}}


def default_spec(datasource_type: str) -> PolicySpec:
    rules = type_rules(datasource_type)
    days = ("Sunday",) if rules.default_frequency == "Weekly" else ()
    return PolicySpec(rules.default_frequency, rules.default_time, days, Retention(*rules.default_retention), {},
                      every=rules.default_every)


def spec_of(policy: BackupPolicy) -> PolicySpec:
    """The spec a stored policy was built from (for the edit form)."""
    parsed = policy.parsed
    first = min(parsed.intervals, key=lambda i: i.start)
    days = tuple(sorted({DAYS[i.start.weekday()] for i in parsed.intervals}, key=DAYS.index)) if parsed.frequency == "Weekly" else ()
    retentions = {r.tag: Retention.from_iso(r.duration.iso()) for r in parsed.retention_rules}
    return PolicySpec(
        parsed.frequency, first.start.timetz().replace(tzinfo=None), days,
        retentions.pop("Default"), {k: v for k, v in retentions.items() if k in EXTRA_RULES},
        every=parsed.every_hours,
        tiering=_tiering_of(parsed.rules),  # archive tier (the parsed policy's own rules)
    )


# --- validation --------------------------------------------------------------------------------


def name_rule_error(name: str) -> str:
    if not name or not POLICY_NAME_MIN <= len(name) <= POLICY_NAME_MAX or not POLICY_NAME_RE.match(name):
        return POLICY_NAME_RULE
    return ""


def _first_slot_start(moment: dt.datetime, at: dt.time) -> dt.date:
    """Schedules start today, or tomorrow when today's time has passed: the first slot is always in
    the future, so a new policy never makes a backup due the moment it is saved."""
    today = moment.astimezone(dt.timezone.utc).date()
    if dt.datetime.combine(today, at, tzinfo=dt.timezone.utc) <= moment:
        return today + dt.timedelta(days=1)
    return today


def build_rules(datasource_type: str, spec: PolicySpec, *, now: dt.datetime | None = None) -> list[dict]:
    """policyRules (API shape) for ``spec``. Call `validate_spec` first."""
    kind = datasource_types.get(datasource_type)
    now = now or clock.now()
    if spec.frequency == "Hourly":
        # Several slots a day from the start time: the schedule starts today, and the first backup is the
        # next slot after now (today's start time may have passed; nothing earlier ever runs).
        start = now.astimezone(dt.timezone.utc).date()
    else:
        start = _first_slot_start(now, spec.time)
    if spec.start is not None and spec.start > start:  # a later start asked for is kept; never an earlier one
        start = spec.start
    intervals = schedule_intervals(spec.frequency, time=spec.time, days=list(spec.days) or None, start=start,
                                   every_hours=spec.every)
    return build_policy_rules(
        datastore=kind.datastore,
        backup_type=kind.backup_type,
        frequency=spec.frequency,
        intervals=intervals,
        time_zone=TIME_ZONE,
        default_retention=spec.default.iso(),
        extra_retentions={tag: r.iso() for tag, r in spec.extra.items() if r is not None},
    )


def validate_spec(datasource_type: str, spec: PolicySpec) -> list[dict]:
    """Check ``spec`` against the type's limits; return the policyRules it builds.

    Raises a ValidationError keyed by the wizard's field names (``frequency``, ``days``,
    ``default_count``, ``weekly_count``, ...); the 450-point limit is a form-wide error.
    """
    if datasource_type not in TYPE_RULES:
        raise ValidationError({"datasource_type": "Choose a datasource type: " + ", ".join(
            label for _, label in datasource_types.CHOICES) + "."})
    kind = datasource_types.get(datasource_type)
    rules = type_rules(datasource_type)
    errors: dict[str, list[str]] = {}
    if spec.frequency not in rules.frequencies:
        offered = " or ".join(rules.frequencies)
        errors["frequency"] = [f"{kind.label} backups can be scheduled {offered} only."]
    if spec.frequency == "Weekly":
        if not spec.days:
            errors["days"] = ["Choose at least one day of the week for a weekly schedule."]
        elif any(d not in DAYS for d in spec.days):
            errors["days"] = ["Choose days of the week by name (Monday to Sunday)."]
    if spec.frequency == "Hourly" and rules.every_hours and spec.every not in rules.every_hours:
        hours = ", ".join(str(h) for h in rules.every_hours[:-1]) + f" or {rules.every_hours[-1]}"
        errors["every"] = [f"Choose how often an hourly schedule runs: every {hours} hours."]
    if not isinstance(spec.time, dt.time):
        errors["time"] = ["Enter the backup time as HH:MM (UTC)."]
    for tag, retention in spec.retentions().items():
        if tag not in rules.rules:
            errors.setdefault(NON_FIELD_ERRORS, []).append(f"{kind.label} policies have no {tag} retention rule.")
            continue
        problem = _retention_error(kind, rules, tag, retention)
        if problem:
            errors.setdefault(RULE_FIELD[tag], []).append(problem)
    if errors:
        raise ValidationError(errors)
    try:
        policy_rules = build_rules(datasource_type, spec)
    except PolicyError as exc:
        raise ValidationError({NON_FIELD_ERRORS: [str(exc)]}) from None
    try:  # archive tier (issue 21)
        policy_rules = _apply_tiering(datasource_type, spec, policy_rules)
    except PolicyError as exc:
        raise ValidationError({"tiering": [str(exc)]}) from None
    if rules.max_recovery_points is not None:
        worst = max_recovery_points(policy_rules)
        if worst > rules.max_recovery_points:
            raise ValidationError({NON_FIELD_ERRORS: [
                f"This schedule and these retention rules could keep up to {worst} recovery points at once; "
                f"{kind.label} allows at most {rules.max_recovery_points} across all rules. Shorten a retention "
                "duration or back up less often." + _hourly_hint(spec, rules.max_recovery_points)
            ]})
    return policy_rules


def _hourly_hint(spec: PolicySpec, limit: int) -> str:
    """What an hourly schedule allows: every n hours keeps 24/n points a day, so the Default rule can
    keep at most limit * n / 24 days of them (every 12 hours: 225 days)."""
    if spec.frequency != "Hourly" or not spec.every:
        return ""
    per_day = 24 // spec.every
    longest = limit * spec.every // 24
    every = "Every hour" if spec.every == 1 else f"Every {spec.every} hours"
    return (f" {every} makes {per_day} backups a day: keep them at most {longest} days (Default rule, with no "
            f"other rule), or choose a longer interval (every 12 hours allows {limit * 12 // 24} days).")


def _retention_error(kind, rules: TypeRules, tag: str, retention: Retention) -> str:
    if not isinstance(retention.count, int) or retention.count < 1:
        return f"Enter how long the {tag} rule keeps backups: a whole number of at least 1."
    if retention.unit not in UNITS:
        return "Choose Days, Weeks, Months or Years."
    most = (rules.unit_max or UNIT_MAX)[retention.unit]
    if retention.count > most:
        return (f"The {tag} rule can keep backups for at most {most:,} "
                f"{retention.unit.lower() if most != 1 else retention.unit.lower().rstrip('s')} ({rules.max_label}).")
    if retention.days < rules.min_days:
        return f"{kind.label} backups must be kept at least {rules.min_days} day{'s' if rules.min_days != 1 else ''}."
    return ""


def max_recovery_points(policy_rules: list[dict]) -> int:
    """The most recovery points the policy can keep at one moment, when every scheduled backup
    succeeds: each backup gets the retention rule of the highest priority it qualifies for (first of
    the year / month / week, else Default, as `Policy.tag_for` decides) and is kept until it expires.

    The answer depends on the day protection starts: a start in the middle of a week (month, year)
    makes its first backup the first of a partial period, so a daily policy keeping weekly points for
    four weeks can hold five of them at once. The limit must hold for every start, so this is the
    maximum over starts on each weekday at and just before a year's end, each simulated over the
    longest retention plus a year (in seven different years, so every calendar alignment is seen); with
    no monthly or yearly rule, two weeks past the longest retention show every alignment already (an
    hourly disk policy simulates thousands of slots per start)."""
    return _max_recovery_points(json.dumps(policy_rules, sort_keys=True))


@functools.lru_cache(maxsize=256)
def _max_recovery_points(rules_json: str) -> int:
    policy = Policy(json.loads(rules_json))
    longest = max(r.duration.approx_days() for r in policy.retention_rules)
    calendar = {c for r in policy.retention_rules for c in r.criteria} & {"FirstOfMonth", "FirstOfYear"}
    margin = 400 if calendar else 14
    return max(_most_alive(policy, begin, begin + dt.timedelta(days=longest + margin)) for begin in _alignment_starts(policy))


def _alignment_starts(policy: Policy) -> list[dt.datetime]:
    """Fixed start moments (never today's) covering every weekday both at a year's end (31 December:
    partial week, month and year at once) and just before it (30 December: a partial week only)."""
    tz = policy.intervals[0].start.tzinfo
    years_by_weekday: dict[int, int] = {}
    for year in range(2001, 2030):
        years_by_weekday.setdefault(dt.date(year, 12, 31).weekday(), year)
    return [dt.datetime(year, 12, day, tzinfo=tz) for year in sorted(years_by_weekday.values()) for day in (30, 31)]


def _most_alive(policy: Policy, begin: dt.datetime, end: dt.datetime) -> int:
    """The most points alive at once when protection starts at ``begin`` (the schedule kept)."""
    week = dt.timedelta(weeks=1)
    slots: set[dt.datetime] = set()
    for interval in policy.intervals:
        # Move the schedule's start back by whole weeks, so its weekdays and times stay as they are.
        weeks_back = max(0, -((begin - interval.start) // week)) + 1
        moved = RepeatingInterval(interval.start - weeks_back * week, interval.period)
        slots.update(moved.occurrences_between(begin, end, limit=200000))
    # Integer keys of the periods each slot falls in (a date's ordinal, its week's Monday, ...).
    keys = {
        "FirstOfDay": lambda d: d.toordinal(),
        "FirstOfWeek": lambda d: d.toordinal() - d.weekday(),
        "FirstOfMonth": lambda d: d.year * 12 + d.month,
        "FirstOfYear": lambda d: d.year,
    }
    seen: dict[str, set] = {criterion: set() for criterion in keys}
    # A rule with a criterion this simulation does not know never tags a point (as before).
    tagged = [(rule, rule.criteria) for rule in policy.retention_rules
              if rule.tag != "Default" and all(c in keys for c in rule.criteria)]
    default = policy.default_rule()
    events: list[tuple[dt.datetime, int]] = []
    for slot in sorted(slots):
        day = slot.date()
        slot_keys = {criterion: key(day) for criterion, key in keys.items()}
        chosen = default
        for rule, criteria in tagged:
            if all(slot_keys[c] not in seen[c] for c in criteria):
                chosen = rule
                break
        for criterion, key in slot_keys.items():
            seen[criterion].add(key)
        events.append((slot, 1))
        events.append((chosen.duration.add_to(slot), -1))
    # A point is kept while slot <= t < expiry: at equal times, expiries come before new points.
    events.sort(key=lambda e: (e[0], e[1]))
    current = best = 0
    for _, delta in events:
        current += delta
        best = max(best, current)
    return best


def retention_map(policy_rules: list[dict]) -> dict[str, str]:
    from protection.policy_rules import tiering_rules

    tiers = tiering_rules(policy_rules)  # archive tier: a tiered rule's points live their archive retention
    return {r.tag: (tiers[r.tag].archive_duration if r.tag in tiers else r.duration).iso()
            for r in Policy(policy_rules).retention_rules}


# --- reads -------------------------------------------------------------------------------------


def policies_for(principal):
    """Backup policies the principal may read (every list and picker starts here)."""
    return visible(
        principal,
        BackupPolicy.objects.select_related("vault__resource_group__subscription", "vault__region"),
        POLICY_READ,
    )


def instances_using(policy: BackupPolicy):
    return BackupInstance.objects.filter(policy=policy).order_by("name")


# --- writes ------------------------------------------------------------------------------------


def create_policy(principal, *, vault, name: str, datasource_type: str, spec: PolicySpec) -> BackupPolicy:
    """Create a backup policy in ``vault`` (authorized as backupPolicies/write at the new policy's id)."""
    name = (name or "").strip()
    target = f"{vault.resource_id}/backupPolicies/{name}"
    details = {"name": name, "datasourceType": datasource_type}
    change = {"setting": "retention", "max_retention_days_before": None, "retention_before": {}}
    try:
        preview_rules = validate_spec(datasource_type, spec) if datasource_type in TYPE_RULES else None
    except ValidationError:
        preview_rules = None
    if preview_rules:
        change.update(max_retention_days_after=Policy(preview_rules).max_retention_days(),
                      retention_after=retention_map(preview_rules))
    with guarded(principal, POLICY_WRITE, target, change=change, details=details) as op:
        errors = {}
        if problem := name_rule_error(name):
            errors["name"] = problem
        elif BackupPolicy.objects.filter(vault=vault, name__iexact=name).exists():
            errors["name"] = f"A backup policy named '{name}' already exists in the vault '{vault.name}'. Choose another name."
        if datasource_type not in TYPE_RULES:
            errors["datasource_type"] = "Choose a datasource type."
        if errors:
            raise ValidationError(errors)
        policy_rules = validate_spec(datasource_type, spec)
        policy = BackupPolicy(vault=vault, name=name, datasource_type=datasource_type, policy_rules=policy_rules,
                              created_by=principal if getattr(principal, "pk", None) else None)
        try:
            with transaction.atomic():
                policy.save()
        except IntegrityError:  # a concurrent create won the unique (vault, lower(name)) race
            raise ValidationError({"name": f"A backup policy named '{name}' already exists in the vault '{vault.name}'."}) from None
        op.result_scope = policy.resource_id
        op.details["summary"] = policy.parsed.summary()
    return policy


def update_policy(principal, policy: BackupPolicy, *, spec: PolicySpec) -> BackupPolicy:
    """Change a policy's schedule and retention. Applies to every instance that uses it: their next
    scheduled backup is recomputed from the new schedule in the same transaction."""
    before_rules = policy.policy_rules
    change = {
        "setting": "retention",
        "max_retention_days_before": Policy(before_rules).max_retention_days(),
        "retention_before": retention_map(before_rules),
        "instances": list(instances_using(policy).values_list("name", flat=True)),
    }
    try:
        preview = validate_spec(policy.datasource_type, spec)
        change.update(max_retention_days_after=Policy(preview).max_retention_days(), retention_after=retention_map(preview))
    except ValidationError:
        change.update(max_retention_days_after=None, retention_after={})
    change["datastore"] = policy.datasource.datastore  # operational tier (Elastic SAN): outside immutability
    with guarded(principal, POLICY_WRITE, policy, change=change, details={"name": policy.name}) as op:
        row = BackupPolicy.objects.select_for_update().get(pk=policy.pk)
        row.policy_rules = validate_spec(row.datasource_type, spec)
        row.save(update_fields=["policy_rules", "updated_at"])
        policy.policy_rules, policy.updated_at = row.policy_rules, row.updated_at
        rescheduled = reschedule_policy_instances(row)
        # The new retention applies to the existing recovery points of every instance (issue 21).
        redated = redating.redate(instances_using(row), row.policy_rules, row.vault)
        op.details.update(summary=row.parsed.summary(), rescheduledInstances=rescheduled,
                          redated=redated.as_details())
        reduced = retention_reduced({"max_retention_days_before": change["max_retention_days_before"],
                                     "max_retention_days_after": row.parsed.max_retention_days(),
                                     "retention_before": change["retention_before"],
                                     "retention_after": retention_map(row.policy_rules)})
        _alert_policy_shorter(principal, row, reduced, redated, change["instances"])
    policy.redated = redated  # for the page's message
    return policy


def _alert_policy_shorter(principal, row: BackupPolicy, reduced: list[str], redated, instances: list[str]) -> None:
    """"Modify Policy with Shorter Retention": a rule of the policy keeps points for less time (or is
    removed and its points fall back to a shorter Default), or an existing recovery point's expiry
    moved earlier. Longer, equal and schedule-only changes raise nothing."""
    raise_shorter_retention_alert(
        "Modify Policy with Shorter Retention", row.resource_id, principal, reduced, redated,
        who=f"The backup policy '{row.name}' of the Backup vault '{row.vault.name}' now",
        details={"policy": row.name, "instances": instances})


def raise_shorter_retention_alert(name: str, resource_id: str, principal, reduced: list[str], redated, *, who: str,
                                  details: dict) -> None:
    """"Modify Policy with Shorter Retention" / "Modify Protection with Shorter Retention" (reference §6.1),
    only when something actually gets shorter: a retention rule (``reduced`` says which) or an existing
    point's expiry (``redated``). The description starts with ``who`` ("The backup policy 'x' now")."""
    if not reduced and not redated.shorter:
        return
    from security import services as security_services
    from security.audit import caller_label
    from security.models import Alert

    what = "; ".join(reduced) if reduced else "its retention rules are not shorter"
    description = f"{who} keeps recovery points for less time: {what}. {redated.describe()}".rstrip()
    security_services.raise_alert(
        name=name, category=Alert.Category.SECURITY, severity=Alert.Severity.SEV2, resource_id=resource_id,
        description=f"{description} Changed by {caller_label(principal)}.",
        details={**details, "changes": reduced, "redated": redated.as_details(), "by": caller_label(principal)},
    )


def delete_policy(principal, policy: BackupPolicy) -> None:
    """Delete a policy no backup instance uses (soft-deleted instances count: they keep their policy)."""
    with guarded(principal, POLICY_DELETE, policy, details={"name": policy.name}):
        users = list(instances_using(policy).values_list("name", flat=True))
        if users:
            shown = ", ".join(f"'{n}'" for n in users[:10]) + (f" and {len(users) - 10} more" if len(users) > 10 else "")
            raise ValidationError(
                f"The backup policy '{policy.name}' is used by {len(users)} backup instance"
                f"{'s' if len(users) != 1 else ''}: {shown}. Change their policy or delete them, then delete the policy.",
                code=POLICY_IN_USE,
            )
        BackupPolicy.objects.filter(pk=policy.pk).delete()
