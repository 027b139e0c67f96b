"""Azure managed disks: the disk's image through the engine's block mode into the operational store of
the instance's snapshot resource group — the Elastic SAN driver's path, with a disk for the volume.

As in Azure, each recovery point is an incremental snapshot: a Snapshot resource (``Microsoft.Compute/
snapshots``) named ``AzureBackup_<datasource id>_<timestamp>`` in the snapshot resource group, whose bytes
live in that resource group's operational store (`protection.operational_store`). The first backup reads
every block that holds data; later ones store only blocks that changed (the rest deduplicate against the
earlier snapshots of the same store). Holes and all-zero blocks are neither read nor stored.

Operational tier: the snapshots live outside the vault, so vault immutability, soft delete and
multi-user authorization do not reach them (reference §5.8), as the instance and recovery point pages say.

The vault identity creates the Snapshot resource through the inventory service, so the rights Azure
needs (Disk Backup Reader on the disk, Disk Snapshot Contributor on the snapshot resource group) are
checked again at that step.
"""

from __future__ import annotations

from protection import datasource_types
from protection.datasources.elastic_san import ElasticSanDriver


class ManagedDiskDriver(ElasticSanDriver):
    datasource_type = datasource_types.AZURE_DISK
    datastore = "OperationalStore"
    noun = "disk"

    def volume(self, instance):
        """The protected disk (what the Elastic SAN path reads: ``name`` and ``image_path``)."""
        from portal.inventory.disks.models import ManagedDisk

        return self.datasource_row(ManagedDisk.objects.select_related("resource_group__subscription"), instance, "disk")

    # finalize: the Elastic SAN driver's (the disk's Snapshot resource, as the vault identity, from `volume`)
