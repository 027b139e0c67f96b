"""A ``BaseBackupPolicyResource`` body (reference §1.3) read into what the policy wizard fills in.

The API calls the same `create_policy` / `update_policy` as the wizard, so a policy sent as JSON must
say what the wizard can say: one scheduled AzureBackupRule (hourly every 1, 2, 4, 6, 8 or 12 hours
from a start time — ``R/<start>/PT<n>H``, Azure Disk only — daily, or weekly on chosen days, at one
UTC time), the Default retention rule and optionally Daily / Weekly / Monthly / Yearly ones (first backup
of the day / week / month / year, as the type allows), each with one lifecycle in the datasource type's own
datastore (VaultStore, or OperationalStore for Elastic SAN and Azure Disk) deleting after a whole number
of days, weeks, months or years.
Anything else Azure's model can express (other intervals, other time zones, ad hoc triggers, custom
criteria, copies to another datastore) is refused here with a 400 naming the field, never dropped.
The per-type limits (frequencies, retention ranges, the 450-point limit) stay the services' own: their
ValidationError is mapped back onto the fields of this body (`Parsed.arm_error`).

What Strongroom stores is what `policy_rules.build_policy_rules` builds from that, so a GET answers the
stored policy: tag ids ``<Tag>_``, rules in the wizard's order, ``timeZone`` "UTC", and each interval's
start moved to the first slot that is not in the past (a later start asked for is kept); an hourly
schedule starts today at its start time, its first backup being the next slot after now.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from portal.api.errors import ArmError
from protection import datasource_types
from protection.policies.services import EXTRA_RULES, RULE_FIELD, UNITS, PolicySpec, Retention, Tiering
from protection.policy_rules import (
    DAYS, HOURLY_EVERY, TAG_CRITERIA, TAG_PRIORITY, Duration, PolicyError, RepeatingInterval,
)

PROPS = "properties"
RULES = f"{PROPS}.policyRules"
TAGS = ("Default", *EXTRA_RULES)
UTC_NAMES = ("UTC", "Coordinated Universal Time")
PERIODS = {Duration(days=1): "Daily", Duration(weeks=1): "Weekly", **{Duration(hours=n): "Hourly" for n in HOURLY_EVERY}}
PERIOD_TEXT = {"Daily": "daily (P1D)", "Weekly": "weekly (P1W)",
               "Hourly": "hourly every 1, 2, 4, 6, 8 or 12 hours (PT1H, PT2H, PT4H, PT6H, PT8H or PT12H)"}
LAST_START_YEAR = 9000  # later starts would overflow the calendar arithmetic of schedules
BAD_CONTENT, BAD_VALUE = "InvalidRequestContent", "InvalidParameter"


def bad(target: str, message: str, code: str = BAD_VALUE) -> ArmError:
    return ArmError(400, code, message, target=target)


def _obj(value, target: str) -> dict:
    if not isinstance(value, dict):
        raise bad(target, f"'{target}' must be a JSON object.", BAD_CONTENT)
    return value


def _list(value, target: str, *, required: bool = True) -> list:
    if value is None and not required:
        return []
    if not isinstance(value, list):
        raise bad(target, f"'{target}' must be a JSON array.", BAD_CONTENT)
    return value


def _str(value, target: str) -> str:
    if not isinstance(value, str) or not value:
        raise bad(target, f"'{target}' must be a non-empty string.", BAD_CONTENT)
    return value


def _object_type(obj: dict, target: str, expected: str, *, required: bool = True) -> None:
    found = obj.get("objectType")
    if found is None and not required:
        return
    if found != expected:
        raise bad(f"{target}.objectType", f"'{target}.objectType' must be '{expected}' (found {found!r}).", BAD_CONTENT)


@dataclass
class Parsed:
    """The body, read: the datasource type, the wizard's spec, and where each wizard field came from."""

    datasource_type: str
    spec: PolicySpec
    targets: dict = field(default_factory=dict)  # wizard field -> ARM target

    def _target(self, field_name: str) -> str:
        return self.targets.get(field_name, RULES if field_name == NON_FIELD_ERRORS else field_name)

    def arm_error(self, exc: ValidationError) -> ArmError:
        """The services' ValidationError (keyed by the wizard's fields) as a 400 naming this body's fields."""
        if not hasattr(exc, "error_dict"):
            return bad(RULES, " ".join(exc.messages))
        details = [
            {"code": BAD_VALUE, "message": message, "target": self._target(key)}
            for key, messages in exc.message_dict.items()
            for message in messages
        ]
        first = details[0]
        return ArmError(400, BAD_VALUE, first["message"], target=first["target"], details=details[1:])


def parse(body) -> Parsed:
    """Read a BaseBackupPolicyResource body; 400 (naming the field) for what Strongroom cannot keep."""
    props = _obj(_obj(body, "body").get(PROPS), PROPS)
    _object_type(props, PROPS, "BackupPolicy")
    kind = _datasource_type(props)
    rules = _list(props.get("policyRules"), RULES)
    backup_at = [i for i, r in enumerate(rules) if _obj(r, f"{RULES}[{i}]").get("objectType") == "AzureBackupRule"]
    for i, rule in enumerate(rules):
        if rule.get("objectType") not in ("AzureBackupRule", "AzureRetentionRule"):
            raise bad(f"{RULES}[{i}].objectType", "A policy rule's objectType is 'AzureBackupRule' or "
                      f"'AzureRetentionRule' (found {rule.get('objectType')!r}).", BAD_CONTENT)
    if len(backup_at) != 1:
        raise bad(RULES, f"A backup policy has exactly one AzureBackupRule (found {len(backup_at)}).")
    b = backup_at[0]
    targets = {"datasource_type": f"{PROPS}.datasourceTypes[0]", "name": "backupPolicyName"}
    schedule, tags = _backup_rule(rules[b], f"{RULES}[{b}]", kind, targets)
    tiering = {}
    retentions = _retention_rules(rules, tags, kind, targets, f"{RULES}[{b}].trigger.taggingCriteria", tiering)
    spec = PolicySpec(
        frequency=schedule["frequency"], time=schedule["time"], days=schedule["days"], start=schedule["start"],
        every=schedule["every"],
        default=retentions.pop("Default"), extra=retentions, tiering=tiering.get("Default"),
    )
    return Parsed(kind.api_name, spec, targets)


def _datasource_type(props: dict) -> datasource_types.DatasourceType:
    target = f"{PROPS}.datasourceTypes"
    types = _list(props.get("datasourceTypes"), target)
    if len(types) != 1:
        raise bad(target, f"A backup policy names exactly one datasource type (found {len(types)}).")
    name = _str(types[0], f"{target}[0]")
    found = next((t for t in datasource_types.TYPES.values() if t.api_name.lower() == name.lower()), None)
    if found is None:
        supported = ", ".join(f"'{t.api_name}' ({t.label})" for t in datasource_types.TYPES.values())
        raise bad(f"{target}[0]", f"Strongroom does not protect the datasource type '{name}'. "
                  f"Supported types: {supported}.")
    return found


def _datastore(obj, target: str, kind: datasource_types.DatasourceType) -> None:
    store = _obj(obj, target)
    _object_type(store, target, "DataStoreInfoBase", required=False)
    found = store.get("dataStoreType")
    if found != kind.datastore:
        tier = "the vault (VaultStore)" if kind.datastore == "VaultStore" else "snapshots (OperationalStore)"
        raise bad(f"{target}.dataStoreType", f"{kind.label} backups are kept in {tier}: dataStoreType must be "
                  f"'{kind.datastore}' (found {found!r}).")


def _backup_rule(rule: dict, target: str, kind, targets: dict) -> tuple[dict, dict]:
    """The schedule ({frequency, time, days, start}) and the tags ({tag: index}) of the AzureBackupRule."""
    params = rule.get("backupParameters")
    if params is not None:
        params = _obj(params, f"{target}.backupParameters")
        _object_type(params, f"{target}.backupParameters", "AzureBackupParams")
        if params.get("backupType") != kind.backup_type:
            raise bad(f"{target}.backupParameters.backupType", f"{kind.label} backups are of type '{kind.backup_type}' "
                      f"(found {params.get('backupType')!r}).")
    _datastore(rule.get("dataStore"), f"{target}.dataStore", kind)
    trigger = _obj(rule.get("trigger"), f"{target}.trigger")
    if trigger.get("objectType") == "AdhocBasedTriggerContext":
        raise bad(f"{target}.trigger.objectType", "Strongroom's backup policies are scheduled "
                  "('ScheduleBasedTriggerContext'); take an on-demand backup with the backup action of a "
                  "backup instance.")
    _object_type(trigger, f"{target}.trigger", "ScheduleBasedTriggerContext")
    at = f"{target}.trigger.schedule"
    schedule = _schedule(_obj(trigger.get("schedule"), at), at, targets, kind)
    name, frequency = rule.get("name"), schedule["frequency"]
    if name != f"Backup{frequency}":
        raise bad(f"{target}.name", f"Strongroom names the backup rule after its schedule: 'Backup{frequency}' "
                  f"for this {frequency.lower()} schedule (found {name!r}).")
    at = f"{target}.trigger.taggingCriteria"
    tags = _tagging(_list(trigger.get("taggingCriteria"), at), at)
    return schedule, tags


def _schedule(schedule: dict, target: str, targets: dict, kind) -> dict:
    zone = schedule.get("timeZone")
    if zone not in (None, "", *UTC_NAMES):
        raise bad(f"{target}.timeZone", f"Strongroom runs schedules in UTC: timeZone must be 'UTC' (found {zone!r}). "
                  "Give the times in UTC (+00:00) instead.")
    at = f"{target}.repeatingTimeIntervals"
    targets.update(frequency=at, days=at, time=at, every=at)
    offered = " or ".join(PERIOD_TEXT[f] for f in ("Hourly", "Daily", "Weekly") if f in kind.schedules)
    texts = _list(schedule.get("repeatingTimeIntervals"), at)
    if not texts:
        raise bad(at, "A schedule needs at least one repeating time interval, such as "
                  "'R/2026-01-05T02:00:00+00:00/P1D'.")
    intervals = []
    for j, text in enumerate(texts):
        try:
            interval = RepeatingInterval.parse(_str(text, f"{at}[{j}]"))
        except PolicyError as exc:
            raise bad(f"{at}[{j}]", str(exc)) from None
        if interval.start.year > LAST_START_YEAR:
            raise bad(f"{at}[{j}]", f"A schedule starts by {LAST_START_YEAR} at the latest (found '{text}').")
        if interval.start.utcoffset() != dt.timedelta(0):
            raise bad(f"{at}[{j}]", f"Strongroom runs schedules in UTC: give the start with +00:00 (found '{text}').")
        found = PERIODS.get(interval.period)
        if found is None or (found == "Hourly" and found not in kind.schedules):  # Daily/Weekly: the services judge
            raise bad(f"{at}[{j}]", f"{kind.label} backups are scheduled {offered}; '{interval.period.iso()}' "
                      f"is not one (found '{text}').")
        intervals.append(interval)
    frequencies = {PERIODS[i.period] for i in intervals}
    times = {i.start.timetz().replace(tzinfo=None) for i in intervals}
    if len(frequencies) != 1 or len(times) != 1:
        raise bad(at, "Strongroom runs one schedule a day or a week at one time: every interval needs the same "
                  "period and the same time of day.")
    frequency = frequencies.pop()
    days = [DAYS[i.start.weekday()] for i in intervals]
    if frequency == "Daily" and len(intervals) != 1:
        raise bad(at, "A daily schedule has one repeating time interval (one scheduled backup a day).")
    if frequency == "Hourly" and len(intervals) != 1:
        raise bad(at, "An hourly schedule has one repeating time interval, such as 'R/2026-01-05T08:00:00+00:00/PT4H'.")
    if len(set(days)) != len(days):
        raise bad(at, "A weekly schedule has one interval per day of the week; a day is named twice.")
    return {"frequency": frequency, "time": times.pop(), "start": min(i.start.date() for i in intervals),
            "days": tuple(sorted(days, key=DAYS.index)) if frequency == "Weekly" else (),
            "every": intervals[0].period.hours if frequency == "Hourly" else None}


def _tagging(criteria: list, target: str) -> dict:
    tags = {}
    for k, entry in enumerate(criteria):
        at = f"{target}[{k}]"
        entry = _obj(entry, at)
        tag = _obj(entry.get("tagInfo"), f"{at}.tagInfo").get("tagName")
        if tag not in TAGS:
            raise bad(f"{at}.tagInfo.tagName",
                      f"Strongroom keeps the retention tags {', '.join(TAGS)} (found {tag!r}).")
        if tag in tags:
            raise bad(f"{at}.tagInfo.tagName", f"The tag '{tag}' is named twice.")
        if entry.get("taggingPriority") != TAG_PRIORITY[tag]:
            raise bad(f"{at}.taggingPriority", f"The {tag} tag's priority is {TAG_PRIORITY[tag]} "
                      f"(Yearly 10 > Monthly 15 > Weekly 20 > Daily 25 > Default 99; "
                      f"found {entry.get('taggingPriority')!r}).")
        if entry.get("isDefault") is not (tag == "Default"):
            raise bad(f"{at}.isDefault", f"isDefault is {'true' if tag == 'Default' else 'false'} for the {tag} tag.")
        _criteria(_list(entry.get("criteria"), f"{at}.criteria", required=False), f"{at}.criteria", tag)
        tags[tag] = k
    if "Default" not in tags:
        raise bad(target, "The tagging criteria need the Default tag (isDefault true, priority 99).")
    return tags


def _criteria(criteria: list, target: str, tag: str) -> None:
    if tag == "Default":
        if criteria:
            raise bad(target, "The Default tag has no criteria: it takes every backup no other rule keeps.")
        return
    wanted = TAG_CRITERIA[tag]
    if len(criteria) != 1:
        raise bad(target, f"The {tag} tag has one criterion: absoluteCriteria ['{wanted}'].")
    criterion = _obj(criteria[0], f"{target}[0]")
    _object_type(criterion, f"{target}[0]", "ScheduleBasedBackupCriteria")
    for other in ("daysOfMonth", "daysOfTheWeek", "monthsOfYear", "scheduleTimes", "weeksOfTheMonth"):
        if criterion.get(other):
            period = {"Daily": "day", "Weekly": "week", "Monthly": "month", "Yearly": "year"}[tag]
            raise bad(f"{target}[0].{other}", f"Strongroom's {tag} rule keeps the first successful backup of each "
                      f"{period}: only absoluteCriteria ['{wanted}'] is supported, not {other}.")
    if criterion.get("absoluteCriteria") != [wanted]:
        raise bad(f"{target}[0].absoluteCriteria", f"The {tag} tag's absoluteCriteria is ['{wanted}'] "
                  f"(found {criterion.get('absoluteCriteria')!r}).")


def _retention_rules(rules: list, tags: dict, kind, targets: dict, tag_target: str, tiering: dict) -> dict:
    found: dict[str, Retention] = {}
    for i, rule in enumerate(rules):
        if rule.get("objectType") != "AzureRetentionRule":
            continue
        at = f"{RULES}[{i}]"
        name = rule.get("name")
        if not isinstance(name, str) or name not in tags:
            raise bad(f"{at}.name", f"A retention rule is named after a tag of the backup rule's taggingCriteria "
                      f"({', '.join(tags)}; found {name!r}).")
        if name in found:
            raise bad(f"{at}.name", f"The retention rule '{name}' is given twice.")
        if rule.get("isDefault") not in (name == "Default", None):
            value = "true" if name == "Default" else "false"
            raise bad(f"{at}.isDefault", f"isDefault is {value} for the {name} rule.")
        lifecycles = _list(rule.get("lifecycles"), f"{at}.lifecycles")
        if len(lifecycles) == 2 and name == "Default" and kind.api_name == datasource_types.POSTGRES_FLEX:
            tiering[name] = _tiering(lifecycles, f"{at}.lifecycles", targets)  # archive tier (issue 21)
            lifecycles = [{**lifecycles[0], "targetDataStoreCopySettings": []}]
        if len(lifecycles) != 1:
            raise bad(f"{at}.lifecycles", f"Strongroom keeps one lifecycle per retention rule (found {len(lifecycles)}); "
                      "a PostgreSQL policy's Default rule may add an ArchiveStore lifecycle (tiering).")
        found[name] = _lifecycle(_obj(lifecycles[0], f"{at}.lifecycles[0]"), f"{at}.lifecycles[0]", kind)
        targets[RULE_FIELD[name]] = f"{at}.lifecycles[0].deleteAfter.duration"
    for tag, k in tags.items():
        if tag not in found:
            raise bad(f"{tag_target}[{k}]", f"The tag '{tag}' has no AzureRetentionRule named '{tag}'.")
    return found


# --- archive tier (issue 21): the Default rule's tiering (targetDataStoreCopySettings + an ArchiveStore lifecycle)


def _tiering(lifecycles: list, target: str, targets: dict):
    first, archive = (_obj(lc, f"{target}[{i}]") for i, lc in enumerate(lifecycles))
    copies = _list(first.get("targetDataStoreCopySettings"), f"{target}[0].targetDataStoreCopySettings")
    where = f"{target}[0].targetDataStoreCopySettings"
    if len(copies) != 1:
        raise bad(where, "A tiering rule has one targetDataStoreCopySettings entry (to ArchiveStore).")
    copy = _obj(copies[0], f"{where}[0]")
    store = _obj(copy.get("dataStore"), f"{where}[0].dataStore")
    if store.get("dataStoreType") != "ArchiveStore":
        raise bad(f"{where}[0].dataStore.dataStoreType", "Recovery points can be copied to ArchiveStore only.")
    after = _obj(copy.get("copyAfter"), f"{where}[0].copyAfter")
    months = None
    if after.get("objectType") == "CustomCopyOption":
        at = f"{where}[0].copyAfter.duration"
        try:
            duration = Duration.parse(_str(after.get("duration"), at))
        except PolicyError as exc:
            raise bad(at, str(exc)) from None
        if duration.weeks or duration.days or duration.hours or duration.minutes:
            raise bad(at, "Tier after a whole number of months or years (P3M, P1Y).")
        months = duration.months + 12 * duration.years
        if months < 3:  # said here, beside its field (P0M would otherwise read as "on expiry")
            raise bad(at, f"Points can move to archive only when at least 3 months old: tier after 3 months or more "
                          f"(P3M or longer), not '{after.get('duration')}'.")
        targets["tier_after_months"] = at
    elif after.get("objectType") != "CopyOnExpiryOption":
        raise bad(f"{where}[0].copyAfter.objectType", "copyAfter is CopyOnExpiryOption or CustomCopyOption.", BAD_CONTENT)
    source = _obj(archive.get("sourceDataStore"), f"{target}[1].sourceDataStore")
    if source.get("dataStoreType") != "ArchiveStore":
        raise bad(f"{target}[1].sourceDataStore.dataStoreType", "The second lifecycle of a tiering rule is the "
                  "ArchiveStore's (sourceDataStore ArchiveStore, with its own deleteAfter).")
    retention = _duration_of(_obj(archive.get("deleteAfter"), f"{target}[1].deleteAfter"), f"{target}[1].deleteAfter")
    targets["tiering"] = f"{target}[1].deleteAfter.duration"
    return Tiering(months, retention)
# --- end archive tier


def _lifecycle(lifecycle: dict, target: str, kind) -> Retention:
    _datastore(lifecycle.get("sourceDataStore"), f"{target}.sourceDataStore", kind)
    if _list(lifecycle.get("targetDataStoreCopySettings"), f"{target}.targetDataStoreCopySettings", required=False):
        why = (f"Archive isn't supported for {kind.label}" if kind.api_name != datasource_types.POSTGRES_FLEX else
               "Only the Default retention rule of a PostgreSQL policy tiers to archive (with an ArchiveStore lifecycle)")
        raise bad(f"{target}.targetDataStoreCopySettings", f"{why}: Strongroom keeps these {kind.label} recovery "
                  f"points in {kind.datastore}.")
    return _duration_of(_obj(lifecycle.get("deleteAfter"), f"{target}.deleteAfter"), f"{target}.deleteAfter")


def _duration_of(delete_after: dict, where: str) -> Retention:
    target = where.removesuffix(".deleteAfter")
    _object_type(delete_after, f"{target}.deleteAfter", "AbsoluteDeleteOption")
    at = f"{target}.deleteAfter.duration"
    text = _str(delete_after.get("duration"), at)
    try:
        duration = Duration.parse(text)
    except PolicyError as exc:
        raise bad(at, str(exc)) from None
    units = [(count, unit) for count, unit in ((duration.days, "Days"), (duration.weeks, "Weeks"),
                                               (duration.months, "Months"), (duration.years, "Years")) if count]
    if duration.hours or duration.minutes or len(units) != 1:
        raise bad(at, f"A retention duration is a whole number of one unit: P<n>D, P<n>W, P<n>M or P<n>Y "
                  f"(found '{text}'; {'/'.join(UNITS)}).")
    count, unit = units[0]
    return Retention(count, unit)
