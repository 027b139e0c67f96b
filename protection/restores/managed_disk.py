"""Restore an Azure Disk recovery point as a NEW managed disk (original location is not supported, and a
restore never overwrites a disk): the Elastic SAN restore's path with a disk for the volume.

The engine writes the image into a hidden file of the target resource group's disk folder (sparse:
holes stay holes), its checksum is compared with the one recorded at backup, and only then is the disk
created through the inventory service (`create_disk` as the vault identity, which Disk Restore Operator
on the target resource group allows), adopting the image in place. A failure or a cancel before that
removes the hidden file; a failure while registering removes the disk's row (the transaction) and image.
"""

from __future__ import annotations

import contextlib
import os

from django.urls import reverse

from protection.jobs import runner as jobs
from protection.restores import layout, validation
from protection.restores.elastic_san import checked_image, temp_name, write_image


def _folder(target):
    from portal.inventory.disks.models import ManagedDisk
    from portal.models import ResourceGroup

    group = ResourceGroup.objects.filter(resource_id__iexact=target.resource_group_id).first()
    return None if group is None else ManagedDisk.folder_of(group)


def remove_leftovers(target, job) -> None:
    from portal.inventory import volumes

    folder = _folder(target)
    if folder is not None:
        with contextlib.suppress(Exception):
            volumes.remove_image(folder / temp_name(job))


def restore(job, point, target, resolved, run) -> dict:
    from portal.inventory import fs, volumes
    from portal.inventory.disks import services as disks
    from portal.inventory.disks.models import ManagedDisk
    from security.guards import GuardDenied

    group = resolved["resource_group"]
    identity = point.instance.vault.identity
    source = point.instance
    expected = layout.volume_checksum(point)
    folder = ManagedDisk.folder_of(group)
    remove_leftovers(target, job)
    os.close(fs.open_dir(folder, create=True))
    temp = folder / temp_name(job)
    disk = None
    try:
        to_write = write_image(point, temp, run, name=target.disk_name, shown_as=f"the disk {target.disk_name}",
                               noun="disk")
        checksum = checked_image(run, temp, to_write, target.disk_name, expected, "disk")
        info = volumes.image_info(temp)
        run.report(current_item=f"Creating the disk {target.disk_name}", force=True)
        sku = _source_sku(source)
        try:
            disk = disks.create_disk(identity, resource_group=group, name=target.disk_name, region=source.vault.region,
                                     size_gib=resolved["size_gib"], sku=sku, adopt_image=temp, restored_checksum=checksum)
        except GuardDenied as exc:
            raise jobs.JobError(validation.MISSING_PERMISSIONS,
                                f"{validation.MISSING_PERMISSIONS_TEXT} {exc.decision.reason}") from None
    finally:
        with contextlib.suppress(Exception):
            volumes.remove_image(temp)  # gone already when the disk adopted it
    run.items_base = 1
    run.report(items_done=1, force=True)
    return {
        "summary": {
            "itemsRestored": 1, "bytesRestored": info.size_bytes, "dataBytes": to_write,
            "allocatedBytes": info.allocated_bytes, "target": disk.name, "targetResourceId": disk.resource_id,
            "checksum": checksum, "expectedChecksum": expected,
            "checksumMatches": (checksum == expected) if expected else None,
            "links": [{"label": f"Disk {disk.name} in {group.name}", "url": reverse("portal:disk_detail", args=[disk.pk])}],
        },
        "bytes": to_write,
        "items": 1,
    }


def _source_sku(instance) -> str:
    """The protected disk's SKU for the new disk (Premium SSD when the source is gone)."""
    from portal.inventory.disks.models import ManagedDisk

    disk = ManagedDisk.objects.filter(resource_id__iexact=instance.datasource_resource_id).only("sku").first()
    return disk.sku if disk else ManagedDisk.Sku.PREMIUM_LRS
