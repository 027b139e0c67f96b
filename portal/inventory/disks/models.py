"""The managed disk: a row in a resource group and a raw image file of its size."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower

from portal.models import TrackedResource
from security import operations as ops

GIB = 1024**3


class ManagedDisk(TrackedResource):
    """An Azure managed disk. Its image is ``STRONGROOM_DATA_ROOT/disks/<rg id>-<rg>/<name>.img``,
    created sparse (names are unique per resource group, so the folder is the resource group's)."""

    RESOURCE_TYPE = ops.DISK_TYPE

    class Sku(models.TextChoices):
        # The portal's labels (Create a managed disk > Disk details > Size > Disk SKU).
        PREMIUM_LRS = "Premium_LRS", "Premium SSD (locally-redundant storage)"
        PREMIUMV2_LRS = "PremiumV2_LRS", "Premium SSD v2 (locally-redundant storage)"
        STANDARDSSD_LRS = "StandardSSD_LRS", "Standard SSD (locally-redundant storage)"
        STANDARD_LRS = "Standard_LRS", "Standard HDD (locally-redundant storage)"
        ULTRASSD_LRS = "UltraSSD_LRS", "Ultra disk (locally-redundant storage)"

    sku = models.CharField(max_length=20, choices=Sku.choices, default=Sku.PREMIUM_LRS)
    size_gib = models.PositiveIntegerField()
    size_bytes = models.BigIntegerField()
    allocated_bytes = models.BigIntegerField(default=0)
    allocated_measured_at = models.DateTimeField(null=True, blank=True)
    sample_writes = models.PositiveIntegerField(default=0)
    sample_written_at = models.DateTimeField(null=True, blank=True)
    # Set when the disk was created by a restore: the recovery point's checksum it was checked against.
    restored_checksum = models.CharField(max_length=80, blank=True)

    class Meta(TrackedResource.Meta):
        constraints = [models.UniqueConstraint(Lower("name"), "resource_group", name="unique_disk_per_group")]

    @staticmethod
    def folder_of(resource_group) -> Path:
        return Path(settings.STRONGROOM_DATA_ROOT) / "disks" / f"{resource_group.pk}-{resource_group.name}"

    @property
    def data_path(self) -> Path:
        return self.folder_of(self.resource_group)

    @property
    def image_path(self) -> Path:
        """The raw image backups read (as a point-in-time copy) and restores create anew."""
        return self.data_path / f"{self.name}.img"

    @property
    def size_label(self) -> str:
        return f"{self.size_gib} GiB"
