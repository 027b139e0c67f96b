"""The input rules every vault write shares: choices, soft-delete retention, tags, a new vault's settings."""

from __future__ import annotations

from django.core.exceptions import ValidationError

from portal.models import Region
from vaults.models import (
    SOFT_DELETE_MAX_DAYS,
    SOFT_DELETE_MIN_DAYS,
    CrossRegionRestoreState,
    CrossSubscriptionRestoreState,
    ImmutabilityState,
    SoftDeleteState,
    StorageRedundancy,
)
from vaults.services.names import name_rule_error

MAX_TAGS = 50


def choice_error(value, choices, what) -> str:
    if value not in choices.values:
        return f"Choose a {what}: " + ", ".join(str(label) for label in choices.labels) + "."
    return ""


def retention_error(days) -> str:
    try:
        value = int(days)
    except (TypeError, ValueError):
        value = None
    if value is None or str(days).strip() != str(value) or not SOFT_DELETE_MIN_DAYS <= value <= SOFT_DELETE_MAX_DAYS:
        return f"Enter a retention period between {SOFT_DELETE_MIN_DAYS} and {SOFT_DELETE_MAX_DAYS} days (a whole number)."
    return ""


def validate_tags(tags) -> dict:
    """Azure's tag rules, simplified: at most 50; names 1-512 characters without < > % & \\ ? /;
    values up to 256 characters."""
    tags = tags or {}
    if not isinstance(tags, dict):
        raise ValidationError({"tags": "Tags must be name/value pairs."})
    if len(tags) > MAX_TAGS:
        raise ValidationError({"tags": f"A resource can have at most {MAX_TAGS} tags."})
    clean = {}
    for key, value in tags.items():
        key, value = str(key).strip(), str(value if value is not None else "").strip()
        if not key or len(key) > 512 or any(c in key for c in '<>%&\\?/'):
            raise ValidationError(
                {"tags": f"The tag name '{key}' is not valid: use 1 to 512 characters, none of < > % & \\ ? /."}
            )
        if len(value) > 256:
            raise ValidationError({"tags": f"The value of tag '{key}' is longer than 256 characters."})
        if key.lower() in (k.lower() for k in clean):
            raise ValidationError({"tags": f"The tag name '{key}' is used twice (names are case-insensitive)."})
        clean[key] = value
    return clean


def _immutability_error(immutability_state) -> str:
    if immutability_state == ImmutabilityState.LOCKED:
        return ("Create the vault with immutability Disabled or Enabled; lock it afterwards in Properties "
                "(locking is irreversible and asks you to type the vault name).")
    return choice_error(immutability_state, ImmutabilityState, "immutability state")


def _cross_region_error(cross_region_restore_state, storage_redundancy) -> str:
    if problem := choice_error(cross_region_restore_state, CrossRegionRestoreState, "cross region restore state"):
        return problem
    if (cross_region_restore_state == CrossRegionRestoreState.ENABLED
            and storage_redundancy != StorageRedundancy.GEO_REDUNDANT):
        return "Cross Region Restore needs Geo-redundant backup storage: choose Geo-redundant, or leave it disabled."
    return ""


def validate_new_vault(*, name, region, storage_redundancy, soft_delete_state, soft_delete_retention_days,
                       immutability_state, cross_region_restore_state, cross_subscription_restore_state) -> None:
    """Every field of a vault to be created, all problems at once (keyed by field)."""
    errors = {
        "name": name_rule_error(name),
        "region": "" if isinstance(region, Region) else "Select a region.",
        "storage_redundancy": choice_error(storage_redundancy, StorageRedundancy, "backup storage redundancy"),
        "soft_delete_state": choice_error(soft_delete_state, SoftDeleteState, "soft delete state"),
        "soft_delete_retention_days": (
            retention_error(soft_delete_retention_days) if soft_delete_state != SoftDeleteState.OFF else ""),
        "immutability_state": _immutability_error(immutability_state),
        "cross_region_restore_state": _cross_region_error(cross_region_restore_state, storage_redundancy),
        "cross_subscription_restore_state": choice_error(
            cross_subscription_restore_state, CrossSubscriptionRestoreState, "cross subscription restore state"),
    }
    if any(errors.values()):
        raise ValidationError({field: problem for field, problem in errors.items() if problem})
