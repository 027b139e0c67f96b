"""A vault's immutability (reference §3.1, decision 5): Disabled -> Unlocked (Enabled) -> Locked."""

from __future__ import annotations

from typing import Callable

from django.core.exceptions import ValidationError

from security.audit import guarded
from security.models import Alert
from security.operations import REDUCE_IMMUTABILITY, VAULT_WRITE
from vaults import storage
from vaults.models import BackupVault, ImmutabilityState
from vaults.services.alerts import security_alert
from vaults.services.rows import locked, refresh
from vaults.services.validation import choice_error

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


def immutability_change(vault, *, state: str) -> dict:
    """The ``change`` guards see for an immutability update (the blade's preview asks with the same)."""
    before = vault.immutability_state
    change = {"setting": "immutability", "from": {"state": before}, "to": {"state": state}}
    if before == ImmutabilityState.UNLOCKED and state == ImmutabilityState.DISABLED:
        change["critical_operation"] = REDUCE_IMMUTABILITY
    return change


def update_immutability(principal, vault, *, state: str, confirm_name: str = "") -> BackupVault:
    """Immutable vault: Disabled -> Unlocked (Enabled) -> Locked (Enabled and locked).

    Locking needs the vault name typed (``confirm_name``) and can never be undone; disabling an
    unlocked vault is the critical operation ``write#reduceImmutabilityState``.
    """
    before = vault.immutability_state
    change = immutability_change(vault, state=state)
    with guarded(principal, VAULT_WRITE, vault, change=change, details={"immutability": state, "previous": before}) as op:
        row = locked(vault)
        current = row.immutability_state
        _check(row, state, confirm_name)
        row.immutability_state = state
        row.save(update_fields=["immutability_state", "updated_at"])
        if state != current and state in (ImmutabilityState.UNLOCKED, ImmutabilityState.LOCKED):
            for listener in list(_immutability_listeners):  # the store enforces it too (existing points)
                op.details.update(listener(row, state) or {})
        if current == ImmutabilityState.UNLOCKED and state == ImmutabilityState.DISABLED:
            security_alert(row, "Immutability Disabled", Alert.Severity.SEV1,
                           f"Immutability was disabled for the Backup vault '{row.name}' by {principal}.")
    refresh(vault, row)
    return vault


def _check(row, state: str, confirm_name: str) -> None:
    if problem := choice_error(state, ImmutabilityState, "immutability state"):
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
