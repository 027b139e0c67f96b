"""The lab's vault for the MUA story. Whether a Resource Guard protects a vault is `security.mua.is_linked`,
which the vault's security level reads directly (decision 6: Excellent needs MUA)."""

from __future__ import annotations

from vaults import services
from vaults.models import BackupVault

LAB_MUA_VAULT_NAME = "bv-contoso-mua"


def seed_mua_vault(lab, *, stdout=None):
    """The lab's second vault, "bv-contoso-mua", created by the backup admin and not yet linked:
    the MUA story starts by linking the lab's Resource Guard to it."""
    vault = BackupVault.objects.filter(resource_group=lab.lab_group, name__iexact=LAB_MUA_VAULT_NAME).first()
    if vault is None:
        vault = services.create_vault(lab.personas["backup-admin"].principal, name=LAB_MUA_VAULT_NAME,
                                      resource_group=lab.lab_group, region=lab.region)
    if stdout:
        stdout.write(f"Vaults: {vault.name} in {lab.lab_group.name}, for the MUA story (not linked yet).")
    return vault
