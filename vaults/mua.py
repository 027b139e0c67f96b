"""The vault side of multi-user authorization: hooks `vaults` registers at start-up.

The Resource Guard, its links (proxies) and the MUA guard live in `security.mua`; here the vault's
security level learns whether a guard protects the vault (decision 6: Excellent needs MUA).
"""

from __future__ import annotations

from security import mua


def vault_is_mua_protected(vault) -> bool:
    return mua.is_linked(vault.resource_id)


def register_mua_hooks() -> None:
    """Called from `VaultsConfig.ready()`."""
    from vaults.services import register_mua_link_check

    register_mua_link_check(vault_is_mua_protected)


LAB_MUA_VAULT_NAME = "bv-contoso-mua"


def seed_mua_vault(lab, *, stdout=None):
    """The lab's second vault, "bv-contoso-mua", created by the backup admin and not yet linked:
    the MUA story starts by linking the lab's Resource Guard to it."""
    from vaults import services
    from vaults.models import BackupVault

    vault = BackupVault.objects.filter(resource_group=lab.lab_group, name__iexact=LAB_MUA_VAULT_NAME).first()
    if vault is None:
        vault = services.create_vault(lab.personas["backup-admin"].principal, name=LAB_MUA_VAULT_NAME,
                                      resource_group=lab.lab_group, region=lab.region)
    if stdout:
        stdout.write(f"Vaults: {vault.name} in {lab.lab_group.name}, for the MUA story (not linked yet).")
    return vault
