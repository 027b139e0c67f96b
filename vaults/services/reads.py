"""What a principal may see of Backup vaults, and where they may create one."""

from __future__ import annotations

from portal import services as portal_services
from portal.shortcuts import visible
from security.operations import VAULT_READ, VAULT_WRITE
from vaults.models import BackupVault


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
