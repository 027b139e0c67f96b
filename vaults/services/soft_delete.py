"""A vault's soft delete (reference §3.2): Off / On / AlwaysOn and 14-180 days of retention.

Leaving AlwaysOn is refused by the "Soft delete" guard (`vaults.guards.soft_delete_guard`), so a
preview says so before the click; the rules here are the form's (a valid state, a retention, the
always-on tick).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError

from security.audit import guarded
from security.models import Alert
from security.operations import REDUCE_SOFT_DELETE, VAULT_WRITE
from vaults.guards import always_on_refusal
from vaults.models import SOFT_DELETE_MIN_DAYS, BackupVault, SoftDeleteState
from vaults.services.alerts import security_alert
from vaults.services.rows import locked, refresh
from vaults.services.validation import choice_error, retention_error

SOFT_DELETE_DISABLED_ALERT = "Soft Delete Disabled for Vault"
SOFT_DELETE_RETENTION_SHORTENED_ALERT = "Soft delete retention shortened"  # Strongroom's own, not Azure's

ALWAYS_ON_ACK_LABEL = "I understand this is irreversible"
ALWAYS_ON_ACK_REQUIRED = (
    f"Tick “{ALWAYS_ON_ACK_LABEL}” to make soft delete always-on: once always-on, soft delete can never be "
    "disabled for this vault."
)


def always_on_unacknowledged(current_state: str | None, state: str, acknowledged: bool) -> bool:
    """True when ``state`` makes soft delete always-on (irreversible) without the confirmation tick."""
    return state == SoftDeleteState.ALWAYS_ON and current_state != SoftDeleteState.ALWAYS_ON and not acknowledged


def soft_delete_change(vault, *, state: str, retention_days=None) -> dict:
    """The ``change`` guards see for a soft-delete update (the blade's preview asks with the same)."""
    if retention_days in (None, ""):
        retention_days = vault.soft_delete_retention_days
    before = {"state": vault.soft_delete_state, "retentionDays": vault.soft_delete_retention_days}
    after = {"state": state, "retentionDays": retention_days}
    change = {"setting": "softDelete", "from": before, "to": after}
    reducing = (vault.soft_delete_enabled and state == SoftDeleteState.OFF) or (
        state != SoftDeleteState.OFF and not retention_error(retention_days)
        and int(retention_days) < vault.soft_delete_retention_days
    )
    if reducing:
        change["critical_operation"] = REDUCE_SOFT_DELETE
    return change


def reduction_change(vault) -> dict:
    """The reduction the soft-delete blade previews: turning soft delete off or, on an always-on vault
    (which offers no way off), shortening its retention to the least allowed."""
    if vault.soft_delete_state == SoftDeleteState.ALWAYS_ON:
        return soft_delete_change(vault, state=SoftDeleteState.ALWAYS_ON, retention_days=SOFT_DELETE_MIN_DAYS)
    return soft_delete_change(vault, state=SoftDeleteState.OFF)


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
        row = locked(vault)
        was_enabled, old_days = row.soft_delete_enabled, row.soft_delete_retention_days
        _check(row, state, retention_days, acknowledge_irreversible)
        if state != SoftDeleteState.OFF:
            row.soft_delete_retention_days = int(retention_days)
        row.soft_delete_state = state
        row.save(update_fields=["soft_delete_state", "soft_delete_retention_days", "updated_at"])
        _raise_alerts(principal, row, was_enabled=was_enabled, old_days=old_days)
    refresh(vault, row)
    return vault


def _check(row, state, retention_days, acknowledge_irreversible) -> None:
    if problem := choice_error(state, SoftDeleteState, "soft delete state"):
        raise ValidationError({"state": problem})
    if refusal := always_on_refusal(row.soft_delete_state, state):
        # The guard refused this before the block; asked again under the row lock (it may have changed since).
        raise ValidationError({"state": refusal.reason})
    if always_on_unacknowledged(row.soft_delete_state, state, acknowledge_irreversible):
        raise ValidationError({"acknowledge_irreversible": ALWAYS_ON_ACK_REQUIRED})
    if state != SoftDeleteState.OFF and (problem := retention_error(retention_days)):
        raise ValidationError({"retention_days": problem})


def _raise_alerts(principal, row, *, was_enabled: bool, old_days: int) -> None:
    if was_enabled and row.soft_delete_state == SoftDeleteState.OFF:
        security_alert(row, SOFT_DELETE_DISABLED_ALERT, Alert.Severity.SEV1, (
            f"Soft delete was disabled for the Backup vault '{row.name}' by {principal}. Deleted "
            "backup data is now removed at once instead of being kept for recovery."
        ))
    elif was_enabled and row.soft_delete_state != SoftDeleteState.OFF and row.soft_delete_retention_days < old_days:
        # Strongroom's own alert: a shorter retention lets deleted backup data be purged sooner.
        days = row.soft_delete_retention_days
        security_alert(row, SOFT_DELETE_RETENTION_SHORTENED_ALERT, Alert.Severity.SEV2, (
            f"The soft delete retention of the Backup vault '{row.name}' was shortened from {old_days} to "
            f"{days} days by {principal}. Deleted backup data is now purged {old_days - days} days sooner."
        ), {"previousRetentionDays": old_days, "retentionDays": days})
