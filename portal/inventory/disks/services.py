"""Managed disks: create (a new sparse image, or a restored one adopted in place), delete, and
"Write sample data". Every change goes through `guarded`; the image is made as the last step inside
it, so a refusal or a bad input leaves nothing behind."""

from __future__ import annotations

import os
from pathlib import Path

from django.core.exceptions import ValidationError

from portal.inventory import fs, naming, volumes
from portal.inventory.disks.models import GIB, ManagedDisk
from portal.inventory.services.common import check_region, forget_assignments, new_resource_id
from portal.models import ResourceGroup
from security import clock
from security.audit import guarded
from security.operations import DISK_DELETE, DISK_WRITE

MAX_SIZE_GIB = 32767  # Azure's largest managed disk (32 TiB - 1 GiB)
# "Write sample data" from a page waits this long for a backup that is reading the disk.
WRITE_WAIT_SECONDS = 10
SAMPLE_BYTES = 4 * volumes.MIB  # each "Write sample data" writes this much, in extents spread over the disk


def validate_disk_name(name: str, field: str = "name") -> None:
    """Azure's rule: 1 to 80 letters, numbers, underscores, periods and hyphens; it begins with a letter or
    a number and ends with a letter, a number or an underscore."""
    if not 1 <= len(name or "") <= 80 or not naming.SNAPSHOT.match(name or ""):
        raise ValidationError({field: "The disk name must be 1 to 80 characters: letters, numbers, underscores, "
                                      "periods and hyphens; it must begin with a letter or number and end with a "
                                      "letter, number or underscore."})


def check_name_free(resource_group: ResourceGroup, name: str, field: str = "name") -> None:
    """A disk name must not exist in the resource group (nor an image file no disk owns)."""
    if ManagedDisk.objects.filter(resource_group=resource_group, name__iexact=name).exists():
        raise ValidationError({field: f"A disk named '{name}' already exists in the resource group "
                                      f"'{resource_group.name}'. Choose another name."})
    leftover = ManagedDisk.folder_of(resource_group) / f"{name}.img"
    if os.path.lexists(leftover):
        raise ValidationError({field: f"An image file '{leftover}' already exists for the name '{name}' and belongs "
                                      "to no disk; choose another name, or move that file away."})


def create_disk(principal, *, resource_group: ResourceGroup, name: str, region, size_gib: int,
                sku: str = ManagedDisk.Sku.PREMIUM_LRS, tags: dict | None = None,
                adopt_image: Path | None = None, restored_checksum: str = "") -> ManagedDisk:
    """A new empty disk (a sparse image of ``size_gib``), or, with ``adopt_image`` (a restore's finished
    image in the resource group's disk folder), a disk that takes that image by renaming it into place."""
    name = (name or "").strip()
    target = new_resource_id(resource_group, ManagedDisk.RESOURCE_TYPE, name or "-")
    details = {"sku": sku, "diskSizeGB": size_gib, **({"restored": True} if adopt_image else {})}
    with guarded(principal, DISK_WRITE, target, details=details) as op:
        validate_disk_name(name)
        region = check_region(region)
        if sku not in ManagedDisk.Sku.values:
            raise ValidationError({"sku": f"Choose a disk SKU: {', '.join(ManagedDisk.Sku.values)}."})
        if not isinstance(size_gib, int) or not 1 <= size_gib <= MAX_SIZE_GIB:
            raise ValidationError({"size_gib": f"The disk size must be a whole number of GiB from 1 to {MAX_SIZE_GIB}."})
        check_name_free(resource_group, name)
        disk = ManagedDisk.objects.create(name=name, resource_group=resource_group, region=region, sku=sku,
                                          size_gib=size_gib, size_bytes=size_gib * GIB, tags=tags or {},
                                          restored_checksum=restored_checksum)
        op.result_scope = disk.resource_id
        if adopt_image is not None:
            adopt_image = Path(adopt_image)
            if adopt_image.parent != disk.data_path:
                raise ValueError(f"{adopt_image} is not in the disk folder {disk.data_path}")
            with fs.opened_dir(disk.data_path) as dir_fd:
                os.rename(adopt_image.name, disk.image_path.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        else:
            volumes.create_image(disk.image_path, disk.size_bytes)
        volumes.measure(disk)
        disk.save(update_fields=["allocated_bytes", "allocated_measured_at"])
    return disk


def delete_disk(principal, disk: ManagedDisk) -> None:
    """Delete the disk and its image. Its snapshots (recovery points) stay: they are resources of their own."""
    with guarded(principal, DISK_DELETE, disk) as op:
        path = disk.image_path
        forget_assignments(op, disk.resource_id, "disk")
        disk.delete()
        volumes.remove_image(path)
        try:  # the resource group's disk folder goes with its last disk
            with fs.opened_dir(path.parent.parent) as parent_fd:
                os.rmdir(path.parent.name, dir_fd=parent_fd)
        except OSError:
            pass


def write_sample_data(principal, disk: ManagedDisk) -> int:
    """Write the next seed's extents of random bytes onto the disk (deterministic per disk and write).

    A backup reading the disk holds it (its recovery point is one consistent image): the write waits up to
    `WRITE_WAIT_SECONDS`, then is refused with nothing written."""
    with guarded(principal, DISK_WRITE, disk, details={"job": "Write sample data"}) as op:
        locked = ManagedDisk.objects.select_for_update().get(pk=disk.pk)
        seed = locked.pk * 1_000_000 + locked.sample_writes + 1
        try:
            written = volumes.write_sample_extents(locked.image_path, seed, wait=WRITE_WAIT_SECONDS,
                                                   budget=SAMPLE_BYTES)
        except TimeoutError:
            raise ValidationError(f"A backup is reading the disk '{locked.name}' right now, so nothing was written. "
                                  "Write sample data again once the backup has finished.") from None
        volumes.measure(locked)
        locked.sample_writes += 1
        locked.sample_written_at = clock.now()
        locked.save(update_fields=["allocated_bytes", "allocated_measured_at", "sample_writes", "sample_written_at"])
        op.details.update(seed=seed, bytes=written)
    disk.refresh_from_db()
    return written
