"""Backup policies in the API's shape (reference §1.3): building, reading and applying them.

A policy is stored exactly as `policyRules` would be sent to Azure: AzureBackupRule (schedule as ISO
8601 repeating intervals with a time zone, tagging criteria with priorities) and AzureRetentionRule
(lifecycles with `deleteAfter` durations). This module turns that JSON into decisions: when the next
backup is due, which retention tag a recovery point gets, and when it expires.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
TAG_PRIORITY = {"Yearly": 10, "Monthly": 15, "Weekly": 20, "Daily": 25, "Default": 99}
TAG_CRITERIA = {"Yearly": "FirstOfYear", "Monthly": "FirstOfMonth", "Weekly": "FirstOfWeek", "Daily": "FirstOfDay"}

_DURATION = re.compile(r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?)?$")


class PolicyError(ValueError):
    pass


@dataclass(frozen=True)
class Duration:
    years: int = 0
    months: int = 0
    weeks: int = 0
    days: int = 0
    hours: int = 0
    minutes: int = 0

    @classmethod
    def parse(cls, text: str) -> "Duration":
        match = _DURATION.match(text or "")
        if not match or text in ("P", "PT"):
            raise PolicyError(f"'{text}' is not an ISO 8601 duration such as P30D, P12W, P6M or P10Y.")
        y, mo, w, d, h, mi = (int(g) if g else 0 for g in match.groups())
        return cls(y, mo, w, d, h, mi)

    def iso(self) -> str:
        date = "".join(f"{v}{u}" for v, u in ((self.years, "Y"), (self.months, "M"), (self.weeks, "W"), (self.days, "D")) if v)
        time = "".join(f"{v}{u}" for v, u in ((self.hours, "H"), (self.minutes, "M")) if v)
        return "P" + date + ("T" + time if time else "")

    def add_to(self, moment: dt.datetime) -> dt.datetime:
        month_index = moment.month - 1 + self.months + 12 * self.years
        year, month = moment.year + month_index // 12, month_index % 12 + 1
        day = min(moment.day, _days_in_month(year, month))
        shifted = moment.replace(year=year, month=month, day=day)
        return shifted + dt.timedelta(weeks=self.weeks, days=self.days, hours=self.hours, minutes=self.minutes)

    def approx_days(self) -> float:
        return self.years * 365 + self.months * 30.4375 + self.weeks * 7 + self.days + self.hours / 24 + self.minutes / 1440

    def label(self) -> str:
        parts = []
        for value, unit in ((self.years, "year"), (self.months, "month"), (self.weeks, "week"), (self.days, "day"),
                            (self.hours, "hour"), (self.minutes, "minute")):
            if value:
                parts.append(f"{value} {unit}{'s' if value != 1 else ''}")
        return ", ".join(parts) or "0 days"


def _days_in_month(year: int, month: int) -> int:
    nxt = dt.date(year + (month == 12), month % 12 + 1, 1)
    return (nxt - dt.timedelta(days=1)).day


@dataclass(frozen=True)
class RepeatingInterval:
    """`R/<start>/<period>`: backups at start + k * period (weekly ones on the start's weekday)."""

    start: dt.datetime
    period: Duration

    @classmethod
    def parse(cls, text: str) -> "RepeatingInterval":
        parts = (text or "").split("/")
        if len(parts) != 3 or not parts[0].startswith("R"):
            raise PolicyError(f"'{text}' is not an ISO 8601 repeating interval such as R/2025-01-01T02:00:00+00:00/P1D.")
        try:
            start = dt.datetime.fromisoformat(parts[1])
        except ValueError:
            raise PolicyError(f"'{parts[1]}' is not an ISO 8601 date-time.") from None
        if start.tzinfo is None:
            start = start.replace(tzinfo=dt.timezone.utc)
        period = Duration.parse(parts[2])
        if period.approx_days() <= 0:
            raise PolicyError("A schedule's period must be positive.")
        return cls(start, period)

    def iso(self) -> str:
        return f"R/{self.start.isoformat()}/{self.period.iso()}"

    def occurrences_between(self, after: dt.datetime, until: dt.datetime, limit: int = 10000):
        """Slots s with after < s <= until (in order)."""
        if self.period.months or self.period.years:
            step = None
        else:
            step = dt.timedelta(weeks=self.period.weeks, days=self.period.days, hours=self.period.hours,
                                minutes=self.period.minutes)
        if step is not None:
            if after < self.start:
                k = 0
            else:
                k = int((after - self.start) / step) + 1
            slot = self.start + k * step
            while slot <= after:
                k += 1
                slot = self.start + k * step
            count = 0
            while slot <= until and count < limit:
                yield slot
                k += 1
                count += 1
                slot = self.start + k * step
            return
        slot, count = self.start, 0
        while slot <= until and count < limit:
            if slot > after:
                yield slot
                count += 1
            slot = self.period.add_to(slot)

    def latest_at_or_before(self, moment: dt.datetime) -> dt.datetime | None:
        """The last slot at or before ``moment`` (a lab-clock jump runs only this one)."""
        if moment < self.start:
            return None
        if not (self.period.months or self.period.years):
            step = dt.timedelta(weeks=self.period.weeks, days=self.period.days, hours=self.period.hours,
                                minutes=self.period.minutes)
            return self.start + int((moment - self.start) / step) * step
        last, slot = None, self.start
        while slot <= moment:
            last, slot = slot, self.period.add_to(slot)
        return last

    def next_after(self, moment: dt.datetime) -> dt.datetime:
        if moment < self.start:
            return self.start
        latest = self.latest_at_or_before(moment)
        nxt = next(self.occurrences_between(latest, latest + dt.timedelta(days=400)), None)
        if nxt is None:
            raise PolicyError("The schedule has no next occurrence.")
        return nxt


# --- building policies -------------------------------------------------------------------------


HOURLY_EVERY = (1, 2, 4, 6, 8, 12)  # Azure Disk: every 1, 2, 4, 6, 8 or 12 hours (PT<n>H)


def schedule_intervals(frequency: str, *, time: dt.time, days: list[str] | None, start: dt.date,
                       every_hours: int | None = None) -> list[str]:
    """ISO intervals for an Hourly schedule (one, ``R/<start>/PT<n>H`` as Azure Disk policies store it),
    a Daily one (one) or a Weekly one (one per chosen day)."""
    if frequency == "Hourly":
        if every_hours not in HOURLY_EVERY:
            raise PolicyError("An hourly schedule runs every 1, 2, 4, 6, 8 or 12 hours.")
        first = dt.datetime.combine(start, time, tzinfo=dt.timezone.utc)
        return [f"R/{first.isoformat()}/{Duration(hours=every_hours).iso()}"]
    if frequency == "Daily":
        first = dt.datetime.combine(start, time, tzinfo=dt.timezone.utc)
        return [f"R/{first.isoformat()}/P1D"]
    if frequency == "Weekly":
        if not days:
            raise PolicyError("Choose at least one day of the week for a weekly schedule.")
        intervals = []
        for day in sorted(set(days), key=DAYS.index):
            offset = (DAYS.index(day) - start.weekday()) % 7
            first = dt.datetime.combine(start + dt.timedelta(days=offset), time, tzinfo=dt.timezone.utc)
            intervals.append(f"R/{first.isoformat()}/P1W")
        return intervals
    raise PolicyError(f"'{frequency}' schedules are not offered for this datasource type.")


def build_policy_rules(
    *,
    datastore: str,
    backup_type: str,
    frequency: str,
    intervals: list[str],
    time_zone: str,
    default_retention: str,
    extra_retentions: dict[str, str] | None = None,
) -> list[dict]:
    """policyRules in the API's shape: one AzureBackupRule plus AzureRetentionRules."""
    extra_retentions = extra_retentions or {}
    tagging = [{"tagInfo": {"tagName": "Default", "id": "Default_"}, "taggingPriority": 99, "isDefault": True}]
    retention_rules = [_retention_rule("Default", default_retention, datastore, is_default=True)]
    for tag in ("Yearly", "Monthly", "Weekly", "Daily"):
        if tag in extra_retentions:
            tagging.append({
                "tagInfo": {"tagName": tag, "id": f"{tag}_"},
                "taggingPriority": TAG_PRIORITY[tag],
                "isDefault": False,
                "criteria": [{"objectType": "ScheduleBasedBackupCriteria", "absoluteCriteria": [TAG_CRITERIA[tag]]}],
            })
            retention_rules.append(_retention_rule(tag, extra_retentions[tag], datastore, is_default=False))
    backup_rule = {
        "objectType": "AzureBackupRule",
        "name": f"Backup{frequency}",
        "backupParameters": {"objectType": "AzureBackupParams", "backupType": backup_type},
        "dataStore": {"dataStoreType": datastore, "objectType": "DataStoreInfoBase"},
        "trigger": {
            "objectType": "ScheduleBasedTriggerContext",
            "schedule": {"repeatingTimeIntervals": intervals, "timeZone": time_zone},
            "taggingCriteria": sorted(tagging, key=lambda t: t["taggingPriority"]),
        },
    }
    return [backup_rule, *retention_rules]


def _retention_rule(name: str, duration: str, datastore: str, *, is_default: bool) -> dict:
    Duration.parse(duration)
    return {
        "objectType": "AzureRetentionRule",
        "name": name,
        "isDefault": is_default,
        "lifecycles": [{
            "sourceDataStore": {"dataStoreType": datastore, "objectType": "DataStoreInfoBase"},
            "deleteAfter": {"objectType": "AbsoluteDeleteOption", "duration": duration},
            "targetDataStoreCopySettings": [],
        }],
    }


# --- reading policies ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RetentionRule:
    tag: str
    duration: Duration
    priority: int
    criteria: tuple[str, ...]  # absoluteCriteria, e.g. ("FirstOfMonth",)
    datastore: str


class Policy:
    """A read-only view over stored policyRules."""

    def __init__(self, rules: list[dict]):
        self.rules = rules
        backup_rules = [r for r in rules if r.get("objectType") == "AzureBackupRule"]
        if len(backup_rules) != 1:
            raise PolicyError("A policy needs exactly one backup rule.")
        self.backup_rule = backup_rules[0]
        trigger = self.backup_rule["trigger"]
        schedule = trigger["schedule"]
        self.time_zone = schedule.get("timeZone") or "UTC"
        self.intervals = [RepeatingInterval.parse(s) for s in schedule["repeatingTimeIntervals"]]
        durations = {
            r["name"]: Duration.parse(r["lifecycles"][0]["deleteAfter"]["duration"])
            for r in rules
            if r.get("objectType") == "AzureRetentionRule"
        }
        stores = {
            r["name"]: r["lifecycles"][0]["sourceDataStore"]["dataStoreType"]
            for r in rules
            if r.get("objectType") == "AzureRetentionRule"
        }
        self.retention_rules: list[RetentionRule] = []
        for tagging in trigger.get("taggingCriteria", []):
            tag = tagging["tagInfo"]["tagName"]
            if tag not in durations:
                raise PolicyError(f"The tag '{tag}' has no retention rule.")
            criteria = tuple(c for crit in tagging.get("criteria", []) for c in crit.get("absoluteCriteria", []))
            self.retention_rules.append(
                RetentionRule(tag, durations[tag], int(tagging["taggingPriority"]), criteria, stores[tag])
            )
        self.retention_rules.sort(key=lambda r: r.priority)

    @property
    def frequency(self) -> str:
        return self.backup_rule["name"].removeprefix("Backup")

    @property
    def every_hours(self) -> int | None:
        """Hours between backups of an hourly schedule (None for daily and weekly ones)."""
        period = self.intervals[0].period
        if self.frequency != "Hourly" or period.days or period.weeks or period.minutes:
            return None
        return period.hours or None

    @property
    def backup_rule_name(self) -> str:
        return self.backup_rule["name"]

    def rule(self, tag: str) -> RetentionRule:
        for rule in self.retention_rules:
            if rule.tag == tag:
                return rule
        raise PolicyError(f"The policy has no retention rule named '{tag}'.")

    def default_rule(self) -> RetentionRule:
        return self.rule("Default")

    def next_run_after(self, moment: dt.datetime) -> dt.datetime:
        return min(interval.next_after(moment) for interval in self.intervals)

    def latest_due(self, after: dt.datetime | None, now: dt.datetime) -> dt.datetime | None:
        """The latest slot in (after, now], or None. After a clock jump only this one runs."""
        slots = [i.latest_at_or_before(now) for i in self.intervals]
        slots = [s for s in slots if s is not None and (after is None or s > after)]
        return max(slots) if slots else None

    def tag_for(self, moment: dt.datetime, earlier_points: list[dt.datetime]) -> RetentionRule:
        """The retention rule a scheduled recovery point at ``moment`` falls under.

        A point qualifies for FirstOfWeek/Month/Year when no earlier successful point of the same
        instance falls in the same week/month/year (in the policy's time zone); the qualifying rule
        with the highest priority (lowest number) wins, else Default.
        """
        tz = _zone(self.time_zone)
        local = moment.astimezone(tz)
        earlier = [p.astimezone(tz) for p in earlier_points if p < moment]
        for rule in self.retention_rules:
            if rule.tag == "Default":
                continue
            if all(_qualifies(c, local, earlier) for c in rule.criteria):
                return rule
        return self.default_rule()

    def max_retention_days(self) -> float:
        tiers = tiering_rules(self.rules)  # archive tier: a tiered rule's points live their archive retention
        return max((tiers[r.tag].archive_duration if r.tag in tiers else r.duration).approx_days()
                   for r in self.retention_rules)

    def summary(self) -> list[str]:
        lines = []
        times = sorted({i.start.astimezone(_zone(self.time_zone)).strftime("%H:%M") for i in self.intervals})
        if self.frequency == "Hourly" and self.every_hours:
            every = "every hour" if self.every_hours == 1 else f"every {self.every_hours} hours"
            lines.append(f"Backup: {every} from {', '.join(times)} ({self.time_zone})")
        elif self.frequency == "Weekly":
            days = sorted({DAYS[i.start.astimezone(_zone(self.time_zone)).weekday()] for i in self.intervals}, key=DAYS.index)
            lines.append(f"Backup: weekly on {', '.join(days)} at {', '.join(times)} ({self.time_zone})")
        else:
            lines.append(f"Backup: {self.frequency.lower()} at {', '.join(times)} ({self.time_zone})")
        for rule in self.retention_rules:
            what = {"FirstOfWeek": "first successful backup of each week", "FirstOfMonth": "first successful backup of each month",
                    "FirstOfYear": "first successful backup of each year", "FirstOfDay": "first successful backup of each day"}
            applies = ", ".join(what.get(c, c) for c in rule.criteria) or "every other backup"
            lines.append(f"Retention {rule.tag} ({applies}): {rule.duration.label()}")
        for tiering in tiering_rules(self.rules).values():  # archive tier (issue 21)
            lines.append(f"Tiering {tiering.tag}: {tiering.label()}")
        return lines


def _zone(name: str):
    aliases = {"Coordinated Universal Time": "UTC"}
    try:
        return ZoneInfo(aliases.get(name, name))
    except Exception:
        return dt.timezone.utc


def _qualifies(criterion: str, local: dt.datetime, earlier: list[dt.datetime]) -> bool:
    if criterion == "AllBackup":
        return True
    key = {
        "FirstOfDay": lambda t: t.date(),
        "FirstOfWeek": lambda t: t.isocalendar()[:2],
        "FirstOfMonth": lambda t: (t.year, t.month),
        "FirstOfYear": lambda t: t.year,
    }.get(criterion)
    if key is None:
        return False
    return not any(key(e) == key(local) for e in earlier)


# --- archive tier (issue 21): the tiering rule of a retention rule ------------------------------------
#
# In the API's shape: the retention rule's first lifecycle (its backup datastore) carries
# ``targetDataStoreCopySettings`` = [{"copyAfter": {"objectType": "CopyOnExpiryOption"} or
# {"objectType": "CustomCopyOption", "duration": "P3M"}, "dataStore": {"dataStoreType": "ArchiveStore", ...}}],
# and a second lifecycle whose ``sourceDataStore`` is ArchiveStore has its own ``deleteAfter``. Strongroom
# reads the archive ``deleteAfter`` as the point's whole life from its backup time (as the Recovery Services
# vault's tiering counts retention), so a tiered point expires at backup time + that duration; it moves to
# archive at backup time + ``duration`` (CustomCopyOption) or + the vault lifecycle's ``deleteAfter``
# (CopyOnExpiryOption). Only PostgreSQL policies offer it (`protection.tiering` says why others do not).

ARCHIVE_STORE = "ArchiveStore"
TIERING_MIN_AGE = Duration(months=3)  # a point moves to archive at least 3 months after its backup
TIERING_MIN_LEFT = Duration(months=6)  # ... with at least 6 months of retention left


@dataclass(frozen=True)
class TieringRule:
    tag: str
    copy_after: Duration | None  # None: CopyOnExpiryOption (when the vault lifecycle ends)
    vault_duration: Duration
    archive_duration: Duration

    def move_at(self, point_time: dt.datetime) -> dt.datetime:
        return (self.copy_after or self.vault_duration).add_to(point_time)

    def expiry(self, point_time: dt.datetime) -> dt.datetime:
        return self.archive_duration.add_to(point_time)

    def label(self) -> str:
        when = f"after {self.copy_after.label()}" if self.copy_after else f"on expiry ({self.vault_duration.label()})"
        return f"Tier to archive {when}; kept {self.archive_duration.label()} in all"


def _tiering_of(rule: dict) -> TieringRule | None:
    lifecycles = rule.get("lifecycles") or []
    copies = [c for lc in lifecycles for c in (lc.get("targetDataStoreCopySettings") or [])]
    archive = [lc for lc in lifecycles if (lc.get("sourceDataStore") or {}).get("dataStoreType") == ARCHIVE_STORE]
    if not copies and not archive:
        return None
    name = rule.get("name", "?")
    if len(copies) != 1 or len(archive) != 1 or len(lifecycles) != 2 or lifecycles[0] is archive[0]:
        raise PolicyError(f"Retention rule '{name}': a tiering rule is one targetDataStoreCopySettings entry on the "
                          "first lifecycle plus one ArchiveStore lifecycle with its own deleteAfter.")
    copy = copies[0]
    if (copy.get("dataStore") or {}).get("dataStoreType") != ARCHIVE_STORE:
        raise PolicyError(f"Retention rule '{name}': targetDataStoreCopySettings can only copy to ArchiveStore.")
    after = copy.get("copyAfter") or {}
    kind = after.get("objectType")
    if kind == "CopyOnExpiryOption":
        copy_after = None
    elif kind == "CustomCopyOption":
        copy_after = Duration.parse(after.get("duration") or "")
    else:
        raise PolicyError(f"Retention rule '{name}': copyAfter is CopyOnExpiryOption or CustomCopyOption (with a "
                          f"duration such as P3M), not '{kind}'.")
    vault = Duration.parse(lifecycles[0]["deleteAfter"]["duration"])
    archive_duration = Duration.parse(((archive[0].get("deleteAfter") or {}).get("duration")) or "")
    return TieringRule(str(name), copy_after, vault, archive_duration)


def tiering_rules(rules: list[dict]) -> dict[str, TieringRule]:
    """{retention tag: its tiering rule} of stored policyRules (raises PolicyError on a malformed one)."""
    found = {}
    for rule in rules:
        if rule.get("objectType") == "AzureRetentionRule":
            tiering = _tiering_of(rule)
            if tiering is not None:
                found[tiering.tag] = tiering
    return found


def check_tiering(rules: list[dict], *, datasource_label: str, supports_archive: bool) -> None:
    """Refuse a tiering rule the datasource does not support, or one that could never move a point."""
    found = tiering_rules(rules)
    if found and not supports_archive:
        raise PolicyError(f"Archive isn't supported for {datasource_label}: remove targetDataStoreCopySettings and "
                          "the ArchiveStore lifecycle.")
    epoch = dt.datetime(2001, 1, 1, tzinfo=dt.timezone.utc)
    for rule in found.values():
        move = rule.move_at(epoch)
        if move < TIERING_MIN_AGE.add_to(epoch):
            raise PolicyError(f"Retention rule '{rule.tag}': points can move to archive only when at least 3 months "
                              f"old; tier after 3 months or more (not {(rule.copy_after or rule.vault_duration).label()}).")
        if rule.expiry(epoch) < TIERING_MIN_LEFT.add_to(move):
            raise PolicyError(f"Retention rule '{rule.tag}': the archive retention ({rule.archive_duration.label()}) must "
                              "last at least 6 months past the move to archive.")


def with_tiering(rules: list[dict], *, tag: str, copy_after: str | None, archive_duration: str) -> list[dict]:
    """policyRules with a tiering rule on retention rule ``tag`` (``copy_after`` None: on expiry)."""
    Duration.parse(archive_duration)
    after = {"objectType": "CopyOnExpiryOption"} if not copy_after else {
        "objectType": "CustomCopyOption", "duration": Duration.parse(copy_after).iso()}
    out = []
    for rule in rules:
        if rule.get("objectType") == "AzureRetentionRule" and rule.get("name") == tag:
            first = dict(rule["lifecycles"][0])
            first["targetDataStoreCopySettings"] = [{
                "copyAfter": after, "dataStore": {"dataStoreType": ARCHIVE_STORE, "objectType": "DataStoreInfoBase"}}]
            archive = {"sourceDataStore": {"dataStoreType": ARCHIVE_STORE, "objectType": "DataStoreInfoBase"},
                       "deleteAfter": {"objectType": "AbsoluteDeleteOption", "duration": archive_duration},
                       "targetDataStoreCopySettings": []}
            rule = {**rule, "lifecycles": [first, archive]}
        out.append(rule)
    return out


def point_expiry(rules: list[dict], rule: RetentionRule, point_time: dt.datetime) -> dt.datetime:
    """When a point of ``rule`` expires: its tiering rule's archive retention, else the rule's deleteAfter."""
    tiering = tiering_rules(rules).get(rule.tag)
    return tiering.expiry(point_time) if tiering else rule.duration.add_to(point_time)
# --- end archive tier
