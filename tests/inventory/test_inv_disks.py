"""Azure managed disks in the inventory: pages over the services (sparse image, sample data, delete), the
rules of their names and sizes, and who may do what."""

import os

import pytest
from django.urls import reverse

from portal.inventory import volumes
from portal.inventory.disks import services as disks
from portal.inventory.disks.models import ManagedDisk
from security.guards import GuardDenied
from security.models import ActivityLogEntry

MIB = 1024 * 1024


@pytest.fixture
def signed_in(client, lab):
    client.force_login(lab.trainer.user)
    return client


def test_create_write_sample_data_and_delete_through_the_pages(signed_in, lab):
    """GIVEN the create page WHEN a 2 GiB Premium SSD v2 disk is created, sample data written twice, then deleted
    THEN the image is sparse (4 MiB allocated per write), the list and search show it, and delete removes the image."""
    response = signed_in.post(reverse("portal:disk_create"), {
        "resource_group": lab.lab_group.pk, "name": "disk-page", "region": lab.region.pk,
        "sku": ManagedDisk.Sku.PREMIUMV2_LRS, "size_gib": "2"})
    disk = ManagedDisk.objects.get(name="disk-page")
    assert response.status_code == 302 and response.url == reverse("portal:disk_detail", args=[disk.pk])
    assert disk.resource_id.endswith("/providers/Microsoft.Compute/disks/disk-page")
    info = os.stat(disk.image_path)
    assert info.st_size == 2 * 1024**3 and info.st_blocks * 512 < MIB
    for _ in range(2):
        signed_in.post(reverse("portal:disk_write_sample_data", args=[disk.pk]))
    disk.refresh_from_db()
    assert disk.sample_writes == 2 and 7 * MIB <= disk.allocated_bytes <= 9 * MIB
    page = signed_in.get(reverse("portal:disk_detail", args=[disk.pk])).content.decode()
    assert "Premium SSD v2 (locally-redundant storage)" in page and "Written 2 times" in page
    assert "disk-page" in signed_in.get(reverse("portal:disk_list")).content.decode()
    assert "Disks" in signed_in.get(reverse("portal:search"), {"q": "managed disks"}).content.decode()
    response = signed_in.post(reverse("portal:disk_delete", args=[disk.pk]), {"confirm_name": "disk-page"})
    assert response.status_code == 302 and not ManagedDisk.objects.filter(pk=disk.pk).exists()
    assert not disk.image_path.exists()
    assert ActivityLogEntry.objects.filter(operation="Microsoft.Compute/disks/delete",
                                           scope__iexact=disk.resource_id).exists()


def test_bad_input_is_explained(signed_in, lab):
    disks.create_disk(lab.trainer, resource_group=lab.lab_group, name="disk-one", region=lab.region, size_gib=1)
    for data, words in (({"name": "DISK-ONE", "size_gib": "1"}, "already exists in the resource group"),
                        ({"name": "-bad", "size_gib": "1"}, "must begin with a letter or number"),
                        ({"name": "disk-two", "size_gib": "40000"}, "less than or equal to 32767")):
        response = signed_in.post(reverse("portal:disk_create"), {
            "resource_group": lab.lab_group.pk, "region": lab.region.pk, "sku": "Premium_LRS", **data})
        assert response.status_code == 400 and words in response.content.decode(), data
    assert ManagedDisk.objects.count() == 1


def test_a_reader_sees_disks_but_cannot_change_them(client, lab):
    disk = disks.create_disk(lab.trainer, resource_group=lab.lab_group, name="disk-read", region=lab.region, size_gib=1)
    reader = lab.personas["reader"].principal
    with pytest.raises(GuardDenied):
        disks.write_sample_data(reader, disk)
    with pytest.raises(GuardDenied):
        disks.delete_disk(reader, disk)
    client.force_login(reader.user)
    assert client.get(reverse("portal:disk_detail", args=[disk.pk])).status_code == 200
    assert client.post(reverse("portal:disk_write_sample_data", args=[disk.pk])).status_code == 403
    assert volumes.image_info(disk.image_path).allocated_bytes < MIB
