"""Every state change of a Backup vault, and the rules behind them (reference §1.2, §3.1–3.4, §5.1–5.2).

Each write takes the acting principal first and runs inside `security.audit.guarded`, which asks
`security.guards.evaluate` (RBAC, then whatever guards other apps registered), runs the block in one
transaction and writes the activity log. Guards see:

* ``operation``: the Azure action string. Every settings change is ``VAULT_WRITE`` (Azure authorizes
  PATCHes as ``backupVaults/write``); a change that lowers protection also names its critical
  operation in ``change["critical_operation"]`` (``...write#reduceSoftDeleteSecurity``,
  ``...write#reduceImmutabilityState``), which is what a Resource Guard protects.
* ``target``: the `BackupVault` (or, at creation, the new vault's resource id string).
* ``change``: ``{"setting": "softDelete", "from": {...}, "to": {...}, "critical_operation": ...}``.

So immutability, soft-delete and MUA guards (issue 10) plug in with `register_guard` alone.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Callable

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from portal import services as portal_services
from portal.models import Region, ResourceGroup, Subscription
from portal.shortcuts import visible
from security import context, mua, scopes
from security import services as security_services
from security.audit import guarded, register_operation_name
from security.guards import GuardDenied, evaluate
from security.models import Alert
from vaults import storage
from vaults.guards import (  # noqa: F401  (re-exported: the hook API lives here too)
    VAULT_DELETE,
    VAULT_NOT_EMPTY_MESSAGE,
    register_contents_check,
    unregister_contents_check,
    vault_has_contents,
)
from vaults.models import (
    SOFT_DELETE_DEFAULT_DAYS,
    SOFT_DELETE_MAX_DAYS,
    SOFT_DELETE_MIN_DAYS,
    BackupVault,
    CrossRegionRestoreState,
    CrossSubscriptionRestoreState,
    ImmutabilityState,
    SecurityLevel,
    SoftDeleteState,
    StorageRedundancy,
)

logger = logging.getLogger(__name__)

VAULT_READ = "Microsoft.DataProtection/backupVaults/read"
VAULT_WRITE = "Microsoft.DataProtection/backupVaults/write"
CHECK_NAME_AVAILABILITY = "Microsoft.DataProtection/locations/checkNameAvailability/action"
REDUCE_SOFT_DELETE_SECURITY = VAULT_WRITE + "#reduceSoftDeleteSecurity"
REDUCE_IMMUTABILITY_STATE = VAULT_WRITE + "#reduceImmutabilityState"
SOFT_DELETE_RETENTION_SHORTENED_ALERT = "Soft delete retention shortened"  # Strongroom's own, not Azure's

OPERATION_NAMES = {
    VAULT_WRITE: "Create or Update Backup Vault",
    VAULT_DELETE: "Delete Backup Vault",
    CHECK_NAME_AVAILABILITY: "Check Backup vault name availability",
}


def register_operation_names() -> None:
    for action, name in OPERATION_NAMES.items():
        register_operation_name(action, name)


# Reference §1.1: ^[A-Za-z][-A-Za-z0-9]*[A-Za-z0-9]$, 2-50 characters.
VAULT_NAME_RE = re.compile(r"^[A-Za-z][-A-Za-z0-9]*[A-Za-z0-9]$")
VAULT_NAME_MAX = 50
NAME_RULE_MESSAGE = (
    "A Backup vault name must be 2 to 50 characters long, start with a letter, end with a letter or "
    "a digit, and contain only letters, digits and hyphens."
)
REDUNDANCY_FROZEN_MESSAGE = "Storage redundancy cannot be changed after protecting items to the vault."
MAX_TAGS = 50


# --- reads -----------------------------------------------------------------------------------


def vaults_for(principal):
    """Vaults the principal may read (every list starts here)."""
    return visible(
        principal,
        BackupVault.objects.select_related("resource_group__subscription", "region__paired_region", "identity"),
        VAULT_READ,
    )


def resource_groups_for_create(principal):
    """Resource groups in which the principal may create a Backup vault."""
    return portal_services.resource_groups_for(principal, VAULT_WRITE)


@dataclass(frozen=True)
class NameAvailability:
    available: bool
    reason: str = ""  # "Invalid" | "AlreadyExists" (the API's CheckNameAvailabilityResult)
    message: str = ""


def name_rule_error(name: str) -> str:
    """The rule's message when ``name`` breaks it, else ''."""
    if not name or len(name) < 2 or len(name) > VAULT_NAME_MAX or not VAULT_NAME_RE.match(name):
        return NAME_RULE_MESSAGE
    return ""


def _name_taken(resource_group, name: str, *, exclude_pk=None) -> bool:
    rows = BackupVault.objects.filter(resource_group=resource_group, name__iexact=name)
    if exclude_pk:
        rows = rows.exclude(pk=exclude_pk)
    return rows.exists()


def _taken_message(name: str, group_name: str) -> str:
    return f"A Backup vault named '{name}' already exists in the resource group '{group_name}'. Choose another name."


def check_name_availability(principal, *, name: str, resource_group=None, subscription=None, new_resource_group_name="") -> NameAvailability:
    """`checkNameAvailability`: is ``name`` valid and free in the resource group (case-insensitive)?

    Authorized by ``locations/checkNameAvailability/action`` at the resource group (for a resource
    group still to be created, at its future id). Read-only: nothing is logged.
    """
    name = (name or "").strip()
    if resource_group is not None:
        scope = resource_group.resource_id
    elif subscription is not None and new_resource_group_name:
        scope = f"{subscription.resource_id}/resourceGroups/{new_resource_group_name.strip()}"
    else:
        raise ValidationError({"resource_group": "Select a resource group first."})
    decision = evaluate(principal, CHECK_NAME_AVAILABILITY, scope)
    if not decision.allowed:
        raise GuardDenied(decision)
    problem = name_rule_error(name)
    if problem:
        return NameAvailability(False, "Invalid", problem)
    if resource_group is not None and _name_taken(resource_group, name):
        return NameAvailability(False, "AlreadyExists", _taken_message(name, resource_group.name))
    return NameAvailability(True)


# --- security level (decision 6) ---------------------------------------------------------------

MuaLinkCheck = Callable[[BackupVault], bool]
_mua_link_checks: list[MuaLinkCheck] = []


def register_mua_link_check(check: MuaLinkCheck) -> None:
    """Register an extra ``check(vault) -> bool`` that counts a vault as MUA-protected (tests use it
    to try each level); the vault's Resource Guard link itself is read from `security.mua`."""
    if check not in _mua_link_checks:
        _mua_link_checks.append(check)


def unregister_mua_link_check(check: MuaLinkCheck) -> None:
    if check in _mua_link_checks:
        _mua_link_checks.remove(check)


def is_mua_protected(vault) -> bool:
    return mua.is_linked(vault.resource_id) or any(check(vault) for check in list(_mua_link_checks))


@dataclass(frozen=True)
class SecurityAssessment:
    level: str  # SecurityLevel value
    mua_protected: bool
    raise_by: list = field(default_factory=list)  # what would raise it, as sentences

    @property
    def label(self) -> str:
        return SecurityLevel(self.level).label

    @property
    def status_class(self) -> str:
        return {
            SecurityLevel.EXCELLENT: "status-ok",
            SecurityLevel.GOOD: "status-ok",
            SecurityLevel.FAIR: "status-warn",
            SecurityLevel.POOR: "status-failed",
        }[self.level]


def security_level(vault) -> SecurityAssessment:
    """The vault's security level by decision 6, and what would raise it.

    Excellent = MUA and (soft delete AlwaysOn or immutability Locked); Good = soft delete On or
    AlwaysOn, or immutability Locked; Fair = immutability Unlocked with soft delete Off;
    Poor = soft delete Off and immutability Disabled.
    """
    mua = is_mua_protected(vault)
    sd, imm = vault.soft_delete_state, vault.immutability_state
    irreversible = sd == SoftDeleteState.ALWAYS_ON or imm == ImmutabilityState.LOCKED
    if mua and irreversible:
        return SecurityAssessment(SecurityLevel.EXCELLENT, mua, [])
    if sd in (SoftDeleteState.ON, SoftDeleteState.ALWAYS_ON) or imm == ImmutabilityState.LOCKED:
        steps = []
        if not mua:
            steps.append("protect the vault with a Resource Guard (Multi-user authorization)")
        if not irreversible:
            steps.append("make soft delete always-on or lock immutability")
        return SecurityAssessment(SecurityLevel.GOOD, mua, ["To reach Excellent: " + " and ".join(steps) + "."])
    if imm == ImmutabilityState.UNLOCKED:
        return SecurityAssessment(
            SecurityLevel.FAIR,
            mua,
            ["To reach Good: enable soft delete, or lock immutability (irreversible)."],
        )
    return SecurityAssessment(
        SecurityLevel.POOR,
        mua,
        [
            "To reach Good: enable soft delete.",
            "To reach Fair: enable immutability (lock it to reach Good).",
        ],
    )


# --- immutability listeners ----------------------------------------------------------------------

ImmutabilityListener = Callable[[BackupVault, str], dict]
_immutability_listeners: list[ImmutabilityListener] = []


def register_immutability_listener(listener: ImmutabilityListener) -> None:
    """Register ``listener(vault, state) -> dict``, called inside `update_immutability`'s transaction when a
    vault becomes immutable (Unlocked) or locked (Locked).

    Protection registers one that gives the recovery points already in the vault's store a retain-until
    of their expiry (governance while Unlocked, compliance once Locked). It may raise ValidationError
    (a store that cannot enforce retention): the change is then refused and rolled back. What it returns
    goes into the activity log entry.
    """
    if listener not in _immutability_listeners:
        _immutability_listeners.append(listener)


def unregister_immutability_listener(listener: ImmutabilityListener) -> None:
    if listener in _immutability_listeners:
        _immutability_listeners.remove(listener)


# --- validation helpers ------------------------------------------------------------------------


def _retention_error(days) -> str:
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


def _choice_error(value, choices, what) -> str:
    if value not in choices.values:
        return f"Choose a {what}: " + ", ".join(str(label) for label in choices.labels) + "."
    return ""


def _validate_new_vault(*, name, region, storage_redundancy, soft_delete_state, soft_delete_retention_days,
                        immutability_state, cross_region_restore_state, cross_subscription_restore_state) -> None:
    errors = {}
    if problem := name_rule_error(name):
        errors["name"] = problem
    if not isinstance(region, Region):
        errors["region"] = "Select a region."
    if problem := _choice_error(storage_redundancy, StorageRedundancy, "backup storage redundancy"):
        errors["storage_redundancy"] = problem
    if problem := _choice_error(soft_delete_state, SoftDeleteState, "soft delete state"):
        errors["soft_delete_state"] = problem
    if soft_delete_state != SoftDeleteState.OFF and (problem := _retention_error(soft_delete_retention_days)):
        errors["soft_delete_retention_days"] = problem
    if immutability_state == ImmutabilityState.LOCKED:
        errors["immutability_state"] = (
            "Create the vault with immutability Disabled or Enabled; lock it afterwards in Properties "
            "(locking is irreversible and asks you to type the vault name)."
        )
    elif problem := _choice_error(immutability_state, ImmutabilityState, "immutability state"):
        errors["immutability_state"] = problem
    if problem := _choice_error(cross_region_restore_state, CrossRegionRestoreState, "cross region restore state"):
        errors["cross_region_restore_state"] = problem
    elif (cross_region_restore_state == CrossRegionRestoreState.ENABLED
          and storage_redundancy != StorageRedundancy.GEO_REDUNDANT):
        errors["cross_region_restore_state"] = (
            "Cross Region Restore needs Geo-redundant backup storage: choose Geo-redundant, or leave it disabled."
        )
    if problem := _choice_error(cross_subscription_restore_state, CrossSubscriptionRestoreState,
                                "cross subscription restore state"):
        errors["cross_subscription_restore_state"] = problem
    if errors:
        raise ValidationError(errors)


def _notify_principal(principal):
    """Notifications go to the person at the keyboard (the trainer, when role-playing)."""
    return context.real_actor() or principal


# --- create ----------------------------------------------------------------------------------


def create_vault(
    principal,
    *,
    name: str,
    region: Region,
    resource_group: ResourceGroup | None = None,
    subscription: Subscription | None = None,
    new_resource_group_name: str = "",
    storage_redundancy: str = StorageRedundancy.GEO_REDUNDANT,
    soft_delete_state: str = SoftDeleteState.ON,
    soft_delete_retention_days: int = SOFT_DELETE_DEFAULT_DAYS,
    immutability_state: str = ImmutabilityState.DISABLED,
    cross_region_restore_state: str = CrossRegionRestoreState.DISABLED,
    cross_subscription_restore_state: str = CrossSubscriptionRestoreState.ENABLED,
    identity_enabled: bool = True,
    tags: dict | None = None,
    acknowledge_irreversible: bool = False,
) -> BackupVault:
    """Create a Backup vault with its system-assigned identity and its store, as one Operation.

    Give ``resource_group``, or ``subscription`` and ``new_resource_group_name`` to create the
    group first (created only once the vault itself has passed validation and authorization).
    Nothing is half-created: the vault row, its identity and its store folder exist together or
    not at all (the store is initialised last inside the transaction and removed if it fails).
    """
    name = (name or "").strip()
    new_resource_group_name = (new_resource_group_name or "").strip()
    settings_kwargs = dict(
        storage_redundancy=storage_redundancy,
        soft_delete_state=soft_delete_state,
        soft_delete_retention_days=soft_delete_retention_days,
        immutability_state=immutability_state,
        cross_region_restore_state=cross_region_restore_state,
        cross_subscription_restore_state=cross_subscription_restore_state,
    )
    if resource_group is None and not (subscription is not None and new_resource_group_name):
        raise ValidationError({"resource_group": "Select a resource group, or create a new one."})
    if always_on_unacknowledged(None, soft_delete_state, acknowledge_irreversible):
        raise ValidationError({"acknowledge_irreversible": ALWAYS_ON_ACK_REQUIRED})
    group_id = (
        resource_group.resource_id
        if resource_group is not None
        else f"{subscription.resource_id}/resourceGroups/{new_resource_group_name}"
    )
    target_id = f"{group_id}/providers/{BackupVault.RESOURCE_TYPE}/{name}"
    change = {"setting": "create", "to": {**settings_kwargs, "identity": "SystemAssigned" if identity_enabled else "None"}}
    details = {"name": name, "region": getattr(region, "name", None), **settings_kwargs}

    operation = portal_services.start_operation(
        _notify_principal(principal), f"Create Backup vault '{name}'", resource_id=target_id
    )
    store_owner = None
    try:
        if resource_group is None:
            # Everything about the vault is checked before the new group exists, so a refused or
            # invalid vault does not leave an empty resource group behind.
            _validate_new_vault(name=name, region=region, **settings_kwargs)
            validate_tags(tags)
            decision = evaluate(principal, VAULT_WRITE, target_id, change)
            if not decision.allowed:
                with guarded(principal, VAULT_WRITE, target_id, change=change, details=details):
                    pass  # logs the refusal and raises GuardDenied
            try:
                resource_group = portal_services.create_resource_group(
                    principal, subscription=subscription, name=new_resource_group_name, region=region
                )
            except ValidationError as exc:  # its "name" is the group's, not the vault's
                messages = exc.message_dict.get("name", exc.messages) if hasattr(exc, "error_dict") else exc.messages
                raise ValidationError({"new_resource_group_name": messages}) from None
            target_id = f"{resource_group.resource_id}/providers/{BackupVault.RESOURCE_TYPE}/{name}"

        with guarded(principal, VAULT_WRITE, target_id, change=change, details=details) as op:
            _validate_new_vault(name=name, region=region, **settings_kwargs)
            clean_tags = validate_tags(tags)
            if _name_taken(resource_group, name):
                raise ValidationError({"name": _taken_message(name, resource_group.name)})
            vault = BackupVault(
                name=name,
                resource_group=resource_group,
                region=region,
                tags=clean_tags,
                soft_delete_retention_days=(
                    int(soft_delete_retention_days) if soft_delete_state != SoftDeleteState.OFF else SOFT_DELETE_DEFAULT_DAYS
                ),
                created_by=principal if getattr(principal, "pk", None) else None,
                **{k: v for k, v in settings_kwargs.items() if k != "soft_delete_retention_days"},
            )
            try:
                with transaction.atomic():
                    vault.save()
            except IntegrityError:  # a concurrent create won the unique (group, lower(name)) race
                raise ValidationError({"name": _taken_message(name, resource_group.name)}) from None
            if identity_enabled:
                vault.identity = security_services.create_managed_identity(vault.resource_id, vault.name)
            # The store is made last, so every check above has passed; if the transaction still
            # fails after this point the except-branch below removes the folder.
            store_owner = vault
            vault.store_id = storage.create_store(vault)
            vault.save(update_fields=["identity", "store_id"])
            op.result_scope = vault.resource_id
            op.details["storeId"] = vault.store_id
            if vault.identity_id:
                op.details["principalId"] = str(vault.identity_id)
    except BaseException as exc:
        if store_owner is not None:
            try:
                storage.destroy_store(store_owner)
            except Exception:  # keep the original error; the folder is logged for clean-up
                logger.exception("Could not remove the store of the failed vault %s", target_id)
        portal_services.finish_operation(operation, succeeded=False, message=_failure_text(exc))
        raise
    from django.urls import reverse

    portal_services.finish_operation(
        operation,
        succeeded=True,
        message=f"Backup vault '{vault.name}' was created in resource group '{resource_group.name}'.",
        link=reverse("vaults:vault_detail", args=[vault.pk]),
    )
    return vault


def _failure_text(exc: BaseException) -> str:
    if isinstance(exc, GuardDenied):
        return exc.decision.reason
    if isinstance(exc, ValidationError):
        if hasattr(exc, "message_dict"):
            return " ".join(m for msgs in exc.message_dict.values() for m in msgs)
        return " ".join(exc.messages)
    return f"The deployment failed: {type(exc).__name__}: {exc}"


# --- updates ---------------------------------------------------------------------------------


def _locked(vault) -> BackupVault:
    """The vault's current row, locked for the rest of the transaction (rules read fresh state)."""
    return BackupVault.objects.select_for_update(of=("self",)).select_related("region", "identity").get(pk=vault.pk)


def _refresh(target, source) -> None:
    for f in BackupVault._meta.concrete_fields:
        setattr(target, f.attname, getattr(source, f.attname))


def soft_delete_change(vault, *, state: str, retention_days=None) -> dict:
    """The ``change`` guards see for a soft-delete update (the blade's preview asks with the same)."""
    if retention_days in (None, ""):
        retention_days = vault.soft_delete_retention_days
    before = {"state": vault.soft_delete_state, "retentionDays": vault.soft_delete_retention_days}
    after = {"state": state, "retentionDays": retention_days}
    change = {"setting": "softDelete", "from": before, "to": after}
    reducing = (vault.soft_delete_enabled and state == SoftDeleteState.OFF) or (
        state != SoftDeleteState.OFF and not _retention_error(retention_days)
        and int(retention_days) < vault.soft_delete_retention_days
    )
    if reducing:
        change["critical_operation"] = REDUCE_SOFT_DELETE_SECURITY
    return change


ALWAYS_ON_ACK_LABEL = "I understand this is irreversible"
ALWAYS_ON_ACK_REQUIRED = (
    f"Tick “{ALWAYS_ON_ACK_LABEL}” to make soft delete always-on: once always-on, soft delete can never be "
    "disabled for this vault."
)


def always_on_unacknowledged(current_state: str | None, state: str, acknowledged: bool) -> bool:
    """True when ``state`` makes soft delete always-on (irreversible) without the confirmation tick."""
    return state == SoftDeleteState.ALWAYS_ON and current_state != SoftDeleteState.ALWAYS_ON and not acknowledged


def update_soft_delete(principal, vault, *, state: str, retention_days=None,
                       acknowledge_irreversible: bool = False) -> BackupVault:
    """Soft delete: Off / On / AlwaysOn and 14-180 days. AlwaysOn can never be left, so choosing it
    needs ``acknowledge_irreversible`` (the blade's "I understand this is irreversible" tick).

    Turning it off or shortening the retention is the critical operation
    ``write#reduceSoftDeleteSecurity``; turning it off raises the "Soft Delete Disabled for Vault" alert,
    shortening the retention Strongroom's own "Soft delete retention shortened" alert.
    """
    if retention_days in (None, ""):
        retention_days = vault.soft_delete_retention_days
    change = soft_delete_change(vault, state=state, retention_days=retention_days)
    before, after = change["from"], change["to"]
    with guarded(principal, VAULT_WRITE, vault, change=change, details={"softDelete": after, "previous": before}):
        row = _locked(vault)
        was_enabled, old_days = row.soft_delete_enabled, row.soft_delete_retention_days
        if problem := _choice_error(state, SoftDeleteState, "soft delete state"):
            raise ValidationError({"state": problem})
        if row.soft_delete_state == SoftDeleteState.ALWAYS_ON and state != SoftDeleteState.ALWAYS_ON:
            raise ValidationError(
                {"state": "Soft delete is always-on for this vault: it is permanently enabled and cannot be changed."}
            )
        if always_on_unacknowledged(row.soft_delete_state, state, acknowledge_irreversible):
            raise ValidationError({"acknowledge_irreversible": ALWAYS_ON_ACK_REQUIRED})
        if state != SoftDeleteState.OFF:
            if problem := _retention_error(retention_days):
                raise ValidationError({"retention_days": problem})
            row.soft_delete_retention_days = int(retention_days)
        turned_off = row.soft_delete_enabled and state == SoftDeleteState.OFF
        row.soft_delete_state = state
        row.save(update_fields=["soft_delete_state", "soft_delete_retention_days", "updated_at"])
        if turned_off:
            security_services.raise_alert(
                name="Soft Delete Disabled for Vault",
                category=Alert.Category.SECURITY,
                severity=Alert.Severity.SEV1,
                resource_id=row.resource_id,
                description=(
                    f"Soft delete was disabled for the Backup vault '{row.name}' by {principal}. Deleted "
                    "backup data is now removed at once instead of being kept for recovery."
                ),
            )
        elif was_enabled and state != SoftDeleteState.OFF and row.soft_delete_retention_days < old_days:
            # Strongroom's own alert: a shorter retention lets deleted backup data be purged sooner.
            security_services.raise_alert(
                name=SOFT_DELETE_RETENTION_SHORTENED_ALERT,
                category=Alert.Category.SECURITY,
                severity=Alert.Severity.SEV2,
                resource_id=row.resource_id,
                description=(
                    f"The soft delete retention of the Backup vault '{row.name}' was shortened from {old_days} to "
                    f"{row.soft_delete_retention_days} days by {principal}. Deleted backup data is now purged "
                    f"{old_days - row.soft_delete_retention_days} days sooner."
                ),
                details={"previousRetentionDays": old_days, "retentionDays": row.soft_delete_retention_days},
            )
    _refresh(vault, row)
    return vault


def immutability_change(vault, *, state: str) -> dict:
    """The ``change`` guards see for an immutability update (the blade's preview asks with the same)."""
    before = vault.immutability_state
    change = {"setting": "immutability", "from": {"state": before}, "to": {"state": state}}
    if before == ImmutabilityState.UNLOCKED and state == ImmutabilityState.DISABLED:
        change["critical_operation"] = REDUCE_IMMUTABILITY_STATE
    return change


def update_immutability(principal, vault, *, state: str, confirm_name: str = "") -> BackupVault:
    """Immutable vault: Disabled -> Unlocked (Enabled) -> Locked (Enabled and locked).

    Locking needs the vault name typed (``confirm_name``) and can never be undone; disabling an
    unlocked vault is the critical operation ``write#reduceImmutabilityState``.
    """
    before = vault.immutability_state
    change = immutability_change(vault, state=state)
    with guarded(principal, VAULT_WRITE, vault, change=change, details={"immutability": state, "previous": before}) as op:
        row = _locked(vault)
        if problem := _choice_error(state, ImmutabilityState, "immutability state"):
            raise ValidationError({"state": problem})
        current = row.immutability_state
        if current == ImmutabilityState.LOCKED and state != ImmutabilityState.LOCKED:
            raise ValidationError(
                {"state": "Immutability is locked for this vault: it cannot be disabled or unlocked by anyone."}
            )
        if state == ImmutabilityState.LOCKED and current != ImmutabilityState.LOCKED:
            if current != ImmutabilityState.UNLOCKED:
                raise ValidationError({"state": "Enable immutability first; you can lock it once it is enabled."})
            if (confirm_name or "").strip() != row.name:
                raise ValidationError(
                    {"confirm_name": f"Type the vault name '{row.name}' to confirm locking immutability. Locking is irreversible."}
                )
        if current == ImmutabilityState.DISABLED and state != ImmutabilityState.DISABLED:
            try:
                storage.require_immutable_store(row)
            except ValueError as exc:
                raise ValidationError({"state": str(exc)}) from None
        disabled = current == ImmutabilityState.UNLOCKED and state == ImmutabilityState.DISABLED
        row.immutability_state = state
        row.save(update_fields=["immutability_state", "updated_at"])
        if state != current and state in (ImmutabilityState.UNLOCKED, ImmutabilityState.LOCKED):
            for listener in list(_immutability_listeners):  # the store enforces it too (existing points)
                op.details.update(listener(row, state) or {})
        if disabled:
            security_services.raise_alert(
                name="Immutability Disabled",
                category=Alert.Category.SECURITY,
                severity=Alert.Severity.SEV1,
                resource_id=row.resource_id,
                description=f"Immutability was disabled for the Backup vault '{row.name}' by {principal}.",
            )
    _refresh(vault, row)
    return vault


def update_cross_region_restore(principal, vault, *, state: str) -> BackupVault:
    """Cross Region Restore: Enabled only on Geo-redundant vaults."""
    change = {"setting": "crossRegionRestore", "from": {"state": vault.cross_region_restore_state}, "to": {"state": state}}
    with guarded(principal, VAULT_WRITE, vault, change=change, details={"crossRegionRestore": state}):
        row = _locked(vault)
        if problem := _choice_error(state, CrossRegionRestoreState, "cross region restore state"):
            raise ValidationError({"state": problem})
        if state == CrossRegionRestoreState.ENABLED and not row.is_geo_redundant:
            raise ValidationError(
                {"state": "Cross Region Restore needs Geo-redundant backup storage; this vault is "
                 f"{row.get_storage_redundancy_display()}."}
            )
        row.cross_region_restore_state = state
        row.save(update_fields=["cross_region_restore_state", "updated_at"])
    _refresh(vault, row)
    return vault


def update_cross_subscription_restore(principal, vault, *, state: str) -> BackupVault:
    """Cross Subscription Restore: Enabled / Disabled / PermanentlyDisabled (irreversible)."""
    change = {
        "setting": "crossSubscriptionRestore",
        "from": {"state": vault.cross_subscription_restore_state},
        "to": {"state": state},
    }
    with guarded(principal, VAULT_WRITE, vault, change=change, details={"crossSubscriptionRestore": state}):
        row = _locked(vault)
        if problem := _choice_error(state, CrossSubscriptionRestoreState, "cross subscription restore state"):
            raise ValidationError({"state": problem})
        if (row.cross_subscription_restore_state == CrossSubscriptionRestoreState.PERMANENTLY_DISABLED
                and state != CrossSubscriptionRestoreState.PERMANENTLY_DISABLED):
            raise ValidationError(
                {"state": "Cross Subscription Restore is permanently disabled for this vault and cannot be enabled again."}
            )
        row.cross_subscription_restore_state = state
        row.save(update_fields=["cross_subscription_restore_state", "updated_at"])
    _refresh(vault, row)
    return vault


def update_storage_redundancy(principal, vault, *, redundancy: str) -> BackupVault:
    """Backup storage redundancy: refused once the vault has ever had a protected item."""
    change = {"setting": "storageRedundancy", "from": {"type": vault.storage_redundancy}, "to": {"type": redundancy}}
    with guarded(principal, VAULT_WRITE, vault, change=change, details={"storageRedundancy": redundancy}):
        row = _locked(vault)
        if problem := _choice_error(redundancy, StorageRedundancy, "backup storage redundancy"):
            raise ValidationError({"storage_redundancy": problem})
        if redundancy != row.storage_redundancy:
            if row.has_ever_protected_item:
                raise ValidationError({"storage_redundancy": REDUNDANCY_FROZEN_MESSAGE})
            if (redundancy != StorageRedundancy.GEO_REDUNDANT
                    and row.cross_region_restore_state == CrossRegionRestoreState.ENABLED):
                raise ValidationError(
                    {"storage_redundancy": "Cross Region Restore is enabled and needs Geo-redundant storage: "
                     "disable Cross Region Restore first."}
                )
        row.storage_redundancy = redundancy
        row.save(update_fields=["storage_redundancy", "updated_at"])
    _refresh(vault, row)
    return vault


def update_tags(principal, vault, *, tags: dict) -> BackupVault:
    change = {"setting": "tags", "from": dict(vault.tags), "to": dict(tags or {})}
    with guarded(principal, VAULT_WRITE, vault, change=change, details={"tags": tags}):
        row = _locked(vault)
        row.tags = validate_tags(tags)
        row.save(update_fields=["tags", "updated_at"])
    _refresh(vault, row)
    return vault


def set_identity_enabled(principal, vault, *, enabled: bool) -> BackupVault:
    """System-assigned identity On/Off. Off: the identity keeps its role assignments but cannot act
    (so backups and restores that run as the vault fail); On again: it acts with them again.
    A vault created without an identity gets a new one."""
    change = {"setting": "identity", "from": {"type": vault.identity_type},
              "to": {"type": "SystemAssigned" if enabled else "None"}}
    with guarded(principal, VAULT_WRITE, vault, change=change, details={"identityEnabled": enabled}) as op:
        row = _locked(vault)
        if row.identity_id is None:
            if enabled:
                row.identity = security_services.create_managed_identity(row.resource_id, row.name)
                row.save(update_fields=["identity", "updated_at"])
        else:
            security_services.set_managed_identity_enabled(row.identity, bool(enabled))
        if row.identity_id:
            op.details["principalId"] = str(row.identity_id)
    _refresh(vault, row)
    vault.identity = row.identity
    return vault


def mark_protected_item_added(vault) -> None:
    """Record that the vault has had a protected item (freezes its storage redundancy for good).

    Protection calls this inside its own guarded configure-protection block, so it is part of that
    logged, transactional write and needs no principal of its own.
    """
    BackupVault.objects.filter(pk=vault.pk, has_ever_protected_item=False).update(has_ever_protected_item=True)
    vault.has_ever_protected_item = True


# --- delete ----------------------------------------------------------------------------------


def delete_vault(principal, vault) -> None:
    """Delete an empty vault with its identity (and that identity's role assignments), the role
    assignments made on the vault, and its store.

    `evaluate` runs the "Vault deletion rules" guard first (Azure's exact message while backup
    instances or policies exist). The store folder is removed only after the transaction commits,
    so a rolled-back delete never loses data.
    """
    resource_id, name = vault.resource_id, vault.name
    operation = portal_services.start_operation(
        _notify_principal(principal), f"Delete Backup vault '{name}'", resource_id=resource_id
    )
    try:
        with guarded(principal, VAULT_DELETE, vault, details={"name": name}):
            row = _locked(vault)
            # Asked again under the row lock: contents created since the guard ran still block it.
            if vault_has_contents(row):
                raise ValidationError(VAULT_NOT_EMPTY_MESSAGE)
            security_services.remove_assignments_of_deleted_scope(
                principal, resource_id, cause="The Backup vault was deleted.")
            if row.identity_id:
                security_services.delete_managed_identity(row.identity)
            mua.remove_links_of(resource_id)  # the vault's MUA link goes with it (frees the guard)
            doomed = BackupVault(pk=row.pk, uuid=row.uuid)
            row.delete()
            transaction.on_commit(lambda: _destroy_store_after_commit(doomed, resource_id))
    except BaseException as exc:
        portal_services.finish_operation(operation, succeeded=False, message=_failure_text(exc))
        raise
    portal_services.finish_operation(operation, succeeded=True, message=f"Backup vault '{name}' was deleted.")


def _destroy_store_after_commit(vault, resource_id) -> None:
    try:
        storage.destroy_store(vault)
    except Exception:  # the vault is gone; a leftover folder is logged for the operator
        logger.exception("Could not remove the store folder of the deleted vault %s", resource_id)


def delete_preview(principal, vault):
    """What `delete_vault` would decide, without acting (the delete page shows it up front)."""
    return evaluate(principal, VAULT_DELETE, vault)


def scope_of(vault) -> str:
    return scopes.normalize(vault.resource_id)
