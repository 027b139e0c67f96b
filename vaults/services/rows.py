"""Reading a vault's row for a write: locked, then copied back into the caller's object."""

from __future__ import annotations

from vaults.models import BackupVault


def locked(vault) -> BackupVault:
    """The vault's current row, locked for the rest of the transaction (rules read fresh state)."""
    return BackupVault.objects.select_for_update(of=("self",)).select_related("region", "identity").get(pk=vault.pk)


def refresh(target, source) -> None:
    """Copy every stored field of ``source`` (the saved row) into ``target`` (the caller's object)."""
    for f in BackupVault._meta.concrete_fields:
        setattr(target, f.attname, getattr(source, f.attname))
