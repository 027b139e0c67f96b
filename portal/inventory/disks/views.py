"""Managed disk pages over the generic inventory shapes: list, create, overview (with "Write sample data"
and the snapshots backups took of the disk) and delete."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from portal.inventory import volumes
from portal.inventory.disks import services
from portal.inventory.disks.models import ManagedDisk
from portal.inventory.forms import _ResourceForm
from portal.inventory.models import Snapshot
from portal.inventory.views.generic import Kind, create_view, delete_view, list_view
from portal.shortcuts import report_outcome, visible
from security import operations as ops

DISK = Kind(
    ManagedDisk, "disk", ops.DISK_READ, "portal:disk_detail",
    delete=ops.DISK_DELETE, related=("resource_group__subscription", "region"),
    abilities=(("can_write", ops.DISK_WRITE),),
    write=ops.DISK_WRITE, label="disk", plural="disks",
    list_url="portal:disk_list", create_url="portal:disk_create",
)


class DiskForm(_ResourceForm):
    name = forms.CharField(label="Disk name", max_length=80,
                           help_text="1 to 80 characters: letters, numbers, underscores, periods and hyphens.")
    sku = forms.ChoiceField(label="Disk SKU", choices=ManagedDisk.Sku.choices, initial=ManagedDisk.Sku.PREMIUM_LRS)
    size_gib = forms.IntegerField(label="Size (GiB)", min_value=1, max_value=services.MAX_SIZE_GIB, initial=4,
                                  help_text="The image is created sparse: it takes space only as data is written.")


disk_list = list_view(DISK, template="portal/inventory/disk_list.html")
disk_create = create_view(
    DISK, form_class=DiskForm, template="portal/inventory/disk_create.html", create=services.create_disk,
    created=lambda request, disk: messages.success(request, f"Disk '{disk.name}' created."),
)


@login_required
def disk_detail(request, pk):
    disk = DISK.get(request, pk)
    snapshots = visible(request.principal, Snapshot.objects.filter(source_disk=disk).select_related("resource_group"),
                        ops.SNAPSHOT_READ).order_by("-taken_at")
    context = DISK.context(request, disk, snapshots=snapshots[:50], write_action=ops.DISK_WRITE,
                           backup_reading=volumes.held_by_backup(disk.image_path))
    return render(request, "portal/inventory/disk_detail.html", context)


@login_required
@require_POST
def disk_write_sample_data(request, pk):
    disk = DISK.get(request, pk)
    report_outcome(request, lambda: services.write_sample_data(request.principal, disk),
                   lambda written: f"Wrote {written / 1024**2:.1f} MiB of sample data onto '{disk.name}'.")
    return redirect("portal:disk_detail", pk=disk.pk)


disk_delete = delete_view(
    DISK, noun="disk", delete=services.delete_disk,
    warning=lambda disk: f"Its image file and all {disk.size_gib} GiB of data on it are deleted. Snapshots taken "
                         "of it (recovery points) stay in their snapshot resource groups.",
)
