"""The vault's other settings (reference §3.3-3.4): restore across regions and subscriptions, storage
redundancy, tags and the system-assigned identity."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from django.core.exceptions import ValidationError

from security import services as security_services
from security.audit import guarded
from security.operations import VAULT_WRITE
from vaults.models import BackupVault, CrossRegionRestoreState, CrossSubscriptionRestoreState, StorageRedundancy
from vaults.services.rows import locked, refresh
from vaults.services.validation import choice_error, validate_tags

REDUNDANCY_FROZEN_MESSAGE = "Storage redundancy cannot be changed after protecting items to the vault."


@dataclass(frozen=True)
class _Choice:
    """A setting that takes one of a few values, and the rule that may refuse a value."""

    setting: str  # the ``change``'s "setting" and the activity log's details key
    field: str  # the model field
    choices: type
    what: str  # how the choice error names it
    rule: Callable[[BackupVault, str], str]  # the current row and the new value -> a problem or ""
    key: str = "state"  # the ``change``'s key in "from" and "to"
    error_field: str = "state"


def _update_choice(principal, vault, choice: _Choice, value: str) -> BackupVault:
    change = {"setting": choice.setting, "from": {choice.key: getattr(vault, choice.field)}, "to": {choice.key: value}}
    with guarded(principal, VAULT_WRITE, vault, change=change, details={choice.setting: value}):
        row = locked(vault)
        if problem := choice_error(value, choice.choices, choice.what) or choice.rule(row, value):
            raise ValidationError({choice.error_field: problem})
        setattr(row, choice.field, value)
        row.save(update_fields=[choice.field, "updated_at"])
    refresh(vault, row)
    return vault


def _cross_region_rule(row, state) -> str:
    if state == CrossRegionRestoreState.ENABLED and not row.is_geo_redundant:
        return ("Cross Region Restore needs Geo-redundant backup storage; this vault is "
                f"{row.get_storage_redundancy_display()}.")
    return ""


def _cross_subscription_rule(row, state) -> str:
    if (row.cross_subscription_restore_state == CrossSubscriptionRestoreState.PERMANENTLY_DISABLED
            and state != CrossSubscriptionRestoreState.PERMANENTLY_DISABLED):
        return "Cross Subscription Restore is permanently disabled for this vault and cannot be enabled again."
    return ""


def _redundancy_rule(row, redundancy) -> str:
    if redundancy == row.storage_redundancy:
        return ""
    if row.has_ever_protected_item:
        return REDUNDANCY_FROZEN_MESSAGE
    if redundancy != StorageRedundancy.GEO_REDUNDANT and row.cross_region_restore_state == CrossRegionRestoreState.ENABLED:
        return ("Cross Region Restore is enabled and needs Geo-redundant storage: "
                "disable Cross Region Restore first.")
    return ""


CROSS_REGION_RESTORE = _Choice("crossRegionRestore", "cross_region_restore_state", CrossRegionRestoreState,
                               "cross region restore state", _cross_region_rule)
CROSS_SUBSCRIPTION_RESTORE = _Choice("crossSubscriptionRestore", "cross_subscription_restore_state",
                                     CrossSubscriptionRestoreState, "cross subscription restore state",
                                     _cross_subscription_rule)
STORAGE_REDUNDANCY = _Choice("storageRedundancy", "storage_redundancy", StorageRedundancy, "backup storage redundancy",
                             _redundancy_rule, key="type", error_field="storage_redundancy")


def update_cross_region_restore(principal, vault, *, state: str) -> BackupVault:
    """Cross Region Restore: Enabled only on Geo-redundant vaults."""
    return _update_choice(principal, vault, CROSS_REGION_RESTORE, state)


def update_cross_subscription_restore(principal, vault, *, state: str) -> BackupVault:
    """Cross Subscription Restore: Enabled / Disabled / PermanentlyDisabled (irreversible)."""
    return _update_choice(principal, vault, CROSS_SUBSCRIPTION_RESTORE, state)


def update_storage_redundancy(principal, vault, *, redundancy: str) -> BackupVault:
    """Backup storage redundancy: refused once the vault has ever had a protected item."""
    return _update_choice(principal, vault, STORAGE_REDUNDANCY, redundancy)


def update_tags(principal, vault, *, tags: dict) -> BackupVault:
    change = {"setting": "tags", "from": dict(vault.tags), "to": dict(tags or {})}
    with guarded(principal, VAULT_WRITE, vault, change=change, details={"tags": tags}):
        row = locked(vault)
        row.tags = validate_tags(tags)
        row.save(update_fields=["tags", "updated_at"])
    refresh(vault, row)
    return vault


def set_identity_enabled(principal, vault, *, enabled: bool) -> BackupVault:
    """System-assigned identity On/Off. Off: the identity keeps its role assignments but cannot act
    (so backups and restores that run as the vault fail); On again: it acts with them again.
    A vault created without an identity gets a new one."""
    change = {"setting": "identity", "from": {"type": vault.identity_type},
              "to": {"type": "SystemAssigned" if enabled else "None"}}
    with guarded(principal, VAULT_WRITE, vault, change=change, details={"identityEnabled": enabled}) as op:
        row = locked(vault)
        if row.identity_id is None:
            if enabled:
                row.identity = security_services.create_managed_identity(row.resource_id, row.name)
                row.save(update_fields=["identity", "updated_at"])
        else:
            security_services.set_managed_identity_enabled(row.identity, bool(enabled))
        if row.identity_id:
            op.details["principalId"] = str(row.identity_id)
    refresh(vault, row)
    vault.identity = row.identity
    return vault


def mark_protected_item_added(vault) -> None:
    """Record that the vault has had a protected item (freezes its storage redundancy for good).

    Protection calls this inside its own guarded configure-protection block, so it is part of that
    logged, transactional write and needs no principal of its own.
    """
    BackupVault.objects.filter(pk=vault.pk, has_ever_protected_item=False).update(has_ever_protected_item=True)
    vault.has_ever_protected_item = True


def mark_protection_attempted(vault) -> None:
    """Record that protection was attempted on the vault, whatever comes of it (a vault's first private
    endpoint needs a vault that never had one, reference §4). Protection calls it once the person is
    authorized and before anything can fail: outside a transaction the update commits at once, so the
    attempt's own failure and rollback leave it set."""
    if not vault.protection_attempted:
        BackupVault.objects.filter(pk=vault.pk, protection_attempted=False).update(protection_attempted=True)
    vault.protection_attempted = True
