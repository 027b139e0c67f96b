"""Elastic SAN volumes: the image through the engine's block mode into the operational store.

The recovery point is one consistent image of the volume (`vaults.store.pit`: a reflink clone, or the
volume held while the engine reads it, so "Write sample data" waits), and its checksum
(`portal.inventory.volumes`) is computed in the same pass.

As in Azure, the recovery point is a Snapshot resource ``AzureBackup_<datasource id>_<timestamp>``
in the instance's snapshot resource group; its bytes live in that resource group's operational store
(`protection.operational_store`), outside vault immutability and MUA. Holes and all-zero blocks are
not read or stored; unchanged blocks deduplicate against earlier snapshots.

The vault identity creates the Snapshot resource through the inventory service, so the same rights
Azure needs (Elastic SAN Snapshot Exporter on the Elastic SAN, Disk Snapshot Contributor on the
snapshot resource group) are checked again at that step.
"""

from __future__ import annotations

import os
import uuid

from protection import datasource_types
from protection.datasources.base import (MISSING_PERMISSIONS, MISSING_PERMISSIONS_MESSAGE, BackupOutcome, Driver,
                                         RunContext, snapshot_stats)
from protection.jobs import runner as jobs

DATASOURCE_NAMESPACE = uuid.UUID("0b7f3e52-5d0a-4a43-9d0e-2f3c7a1b6e19")


def datasource_guid(instance) -> str:
    """A stable GUID for the datasource (Azure names snapshots after the datasource's id)."""
    return str(uuid.uuid5(DATASOURCE_NAMESPACE, instance.datasource_resource_id.lower()))


def snapshot_name(instance, moment) -> str:
    # Milliseconds keep two on-demand backups in the same second apart (names are unique per group).
    stamp = moment.strftime("%Y%m%d%H%M%S") + f"{moment.microsecond // 1000:03d}"
    return f"AzureBackup_{datasource_guid(instance)}_{stamp}"


def _bytes_to_read(path, size: int, store) -> int:
    """What the engine will read of the image: its data extents (a store that chunks inside them), or the
    fixed blocks touching them (a store made before that, ``volume_chunking`` "blocks")."""
    from vaults.store.chunker import data_extents, volume_blocks

    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        if store.volume_chunking == "blocks":
            return sum(length for _offset, length in volume_blocks(fd, size, store.block_size))
        return sum(end - start for start, end in data_extents(fd, size))
    finally:
        os.close(fd)


def source_id(instance) -> str:
    return f"bi:{instance.id}:volume"


class ElasticSanDriver(Driver):
    datasource_type = datasource_types.ELASTIC_SAN
    datastore = "OperationalStore"
    noun = "volume"  # what the protected image is called in messages

    def volume(self, instance):
        from portal.inventory.models import Volume

        rows = Volume.objects.select_related("volume_group__elastic_san__resource_group__subscription")
        return self.datasource_row(rows, instance, "volume")

    def snapshot_group(self, instance):
        from portal.models import ResourceGroup

        group = (ResourceGroup.objects.select_related("subscription")
                 .filter(resource_id__iexact=instance.snapshot_resource_group_id).first())
        if group is None:
            raise jobs.JobError("UserErrorSnapshotResourceGroupNotFound",
                                f"The snapshot resource group '{instance.snapshot_resource_group_id}' no longer exists. "
                                "Create it again or change the backup instance's snapshot resource group.")
        return group

    def backup(self, instance, run: RunContext) -> BackupOutcome:
        from protection.operational_store import open_operational_store

        volume = self.volume(instance)
        group = self.snapshot_group(instance)
        path = volume.image_path
        try:
            st = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            raise jobs.JobError("UserErrorDatasourceNotFound", f"The image of {self.noun} '{volume.name}' is missing ({path}).") from None
        allocated = min(st.st_size, st.st_blocks * 512)
        with open_operational_store(group) as store:
            # Percent by the bytes the engine will read (those holding data; holes are skipped), not
            # by the volume's size, which a sparse volume would never fill.
            to_read = _bytes_to_read(path, st.st_size, store)
            run.report(bytes_total=to_read or None, items_total=1, current_item=f"Reading {volume.name}", force=True)
            run.check_cancel()
            # One consistent image: the engine reads a reflink clone, or holds the volume while it reads it
            # ("Write sample data" waits meanwhile), and computes the checksum in the same pass.
            snap = store.backup_volume(str(path), source_id=source_id(instance),
                                       tags=[f"instance:{instance.id}", f"job:{run.job.pk}", f"volume:{volume.name}"],
                                       progress=run.engine_progress(volume.name), cancel=run.cancel)
        run.remember(lambda: open_operational_store(group), snap.id)
        run.item_done(snap)
        checksum = snap.stats["checksum"]
        stats = snapshot_stats(snap)
        return BackupOutcome(
            manifests=[{"item": volume.name, "kind": "volume", "id": snap.id, "bytes": int(snap.stats.get("size", st.st_size)),
                        "store": "operational", "resource_group_id": group.resource_id}],
            logical_bytes=int(snap.stats.get("size", st.st_size)),
            stored_bytes=stats["bytes_stored"],
            transferred_bytes=stats["bytes_read"],
            item_count=1,
            details={"checksum": checksum, "allocated_bytes": allocated, "blocks_bytes": to_read,
                     "zero_blocks": int(snap.stats.get("zero_blocks", 0)),
                     "point_in_time": snap.stats.get("point_in_time", "")},
        )

    def store_openers(self, instance) -> list:
        from portal.models import ResourceGroup
        from protection.operational_store import open_operational_store, operational_store_exists

        group = ResourceGroup.objects.filter(resource_id__iexact=instance.snapshot_resource_group_id).first()
        if group is None or not operational_store_exists(group):
            return []
        return [lambda: open_operational_store(group, create=False)]

    def finalize(self, instance, outcome: BackupOutcome, run: RunContext, rp_time) -> None:
        """Create the Snapshot resource as the vault identity (inside the recovery point's transaction)."""
        from portal.inventory import services as inventory
        from protection.operational_store import store_path
        from security.guards import GuardDenied

        volume = self.volume(instance)
        group = self.snapshot_group(instance)
        try:
            snapshot = inventory.create_snapshot(
                instance.vault.identity, volume, resource_group=group, name=snapshot_name(instance, rp_time),
                size_bytes=outcome.logical_bytes, checksum=outcome.details.get("checksum", ""),
                store_location=str(store_path(group)), manifest_id=outcome.manifests[0]["id"], taken_at=rp_time,
            )
        except GuardDenied as exc:
            raise jobs.JobError(MISSING_PERMISSIONS, f"{MISSING_PERMISSIONS_MESSAGE} {exc.decision.reason}") from None
        outcome.snapshot_resource_id = snapshot.resource_id
