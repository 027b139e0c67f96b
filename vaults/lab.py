"""The vaults' part of the demo lab: one Backup vault with the defaults, created through the service."""

from __future__ import annotations

from vaults import services
from vaults.models import BackupVault

LAB_VAULT_NAME = "bv-contoso-lab"


def seed_vaults(lab, *, stdout=None) -> BackupVault:
    """Idempotent: creates "bv-contoso-lab" in the lab resource group (lab region, defaults) once."""
    vault = BackupVault.objects.filter(resource_group=lab.lab_group, name__iexact=LAB_VAULT_NAME).first()
    if vault is None:
        vault = services.create_vault(lab.trainer, name=LAB_VAULT_NAME, resource_group=lab.lab_group, region=lab.region)
    if stdout:
        stdout.write(f"Vaults: {vault.name} in {lab.lab_group.name} ({vault.region.display_name}).")
    return vault
