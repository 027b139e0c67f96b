"""Elastic SAN pages: SANs, volume groups, volumes (and their jobs), and the snapshots backups take."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from portal.inventory import forms, services, volumes
from portal.inventory.models import ElasticSan, Snapshot, Volume, VolumeGroup
from portal.inventory.services.volume_jobs import JOB_ACTION, WAITING_FOR_BACKUP, activity_stale
from portal.inventory.views.network import datasource_network_view, subnet_choices
from portal.inventory.views.generic import (
    Kind,
    add_child_view,
    blade_with_form,
    create_view,
    delete_view,
    form_page,
    list_view,
    submit,
    with_attach_roots,
)
from portal.shortcuts import report_outcome, visible
from security import operations as ops

SAN = Kind(
    ElasticSan, "san", ops.ELASTIC_SAN_READ, "portal:elastic_san_detail",
    delete=ops.ELASTIC_SAN_DELETE, related=("resource_group__subscription", "region"),
    abilities=(("can_add_group", ops.VOLUME_GROUP_WRITE),),
    write=ops.ELASTIC_SAN_WRITE, label="Elastic SAN", plural="Elastic SANs",
    list_url="portal:elastic_san_list", create_url="portal:elastic_san_create",
)
GROUP = Kind(
    VolumeGroup, "group", ops.VOLUME_GROUP_READ, "portal:volume_group_detail",
    delete=ops.VOLUME_GROUP_DELETE, related=("elastic_san__resource_group__subscription", "elastic_san__region"),
    parents=(("san", "elastic_san"),), abilities=(("can_add_volume", ops.VOLUME_WRITE),),
)
VOLUME = Kind(
    Volume, "volume", ops.VOLUME_READ, "portal:volume_detail",
    delete=ops.VOLUME_DELETE,
    related=("volume_group__elastic_san__resource_group__subscription", "volume_group__elastic_san__region",
             "activity_operation"),
    parents=(("group", "volume_group"), ("san", "volume_group.elastic_san")),
    abilities=(("can_write", ops.VOLUME_WRITE), ("can_checksum", JOB_ACTION[Volume.Activity.COMPUTE_CHECKSUM])),
)
SNAPSHOT = Kind(
    Snapshot, "snapshot", ops.SNAPSHOT_READ, "portal:snapshot_detail",
    delete=ops.SNAPSHOT_DELETE, related=("resource_group__subscription", "region", "source_volume", "source_disk"),
)


# --- Elastic SANs -----------------------------------------------------------------------------------------


elastic_san_list = list_view(SAN, template="portal/inventory/elastic_san_list.html")
elastic_san_create = create_view(
    SAN,
    form_class=forms.ElasticSanForm,
    template="portal/inventory/elastic_san_create.html",
    create=services.create_elastic_san,
    created=lambda request, san: messages.success(request, f"Elastic SAN '{san.name}' created. Add a volume group next."),
    form_kwargs=subnet_choices,
)


@login_required
def elastic_san_detail(request, pk):
    san = SAN.get(request, pk)
    all_volumes = list(Volume.objects.filter(volume_group__elastic_san=san))
    context = SAN.context(
        request,
        san,
        group_count=san.volume_groups.count(),
        volume_count=len(all_volumes),
        provisioned_gib=sum(v.size_gib for v in all_volumes),
        capacity_gib=san.total_size_tib * 1024,
    )
    return render(request, "portal/inventory/elastic_san_detail.html", context)


@login_required
def elastic_san_volume_groups(request, pk, form=None):
    san = SAN.get(request, pk)
    groups = visible(request.principal, san.volume_groups.all(), ops.VOLUME_GROUP_READ)
    context = SAN.context(request, san, "volume_groups", groups=[{"group": g, "volumes": g.volumes.count()} for g in groups])
    return blade_with_form(request, "portal/inventory/elastic_san_volume_groups.html", context, form,
                           forms.VolumeGroupForm())


@login_required
def elastic_san_volumes(request, pk):
    san = SAN.get(request, pk)
    volumes_here = visible(
        request.principal,
        Volume.objects.filter(volume_group__elastic_san=san).select_related("volume_group"),
        ops.VOLUME_READ,
    ).order_by("volume_group__name", "name")
    context = SAN.context(request, san, "volumes", volumes=volumes_here, groups=san.volume_groups.all())
    return render(request, "portal/inventory/elastic_san_volumes.html", context)


volume_group_create = add_child_view(
    SAN,
    form_class=forms.VolumeGroupForm,
    create=services.create_volume_group,
    message="Volume group '{child.name}' created. Create a volume in it next.",
    done_url=lambda san, group: reverse("portal:volume_group_detail", args=[group.pk]),
    blade=elastic_san_volume_groups,
)


elastic_san_delete = delete_view(
    SAN,
    noun="Elastic SAN",
    delete=services.delete_elastic_san,
    warning=lambda san: "An Elastic SAN that still has volume groups is not deleted: delete its volumes and volume groups first.",
)


# --- volume groups ------------------------------------------------------------------------------------------


@login_required
def volume_group_detail(request, pk):
    group = GROUP.get(request, pk)
    context = GROUP.context(request, group, volumes=visible(request.principal, group.volumes.all(), ops.VOLUME_READ))
    return render(request, "portal/inventory/volume_group_detail.html", context)


volume_group_delete = delete_view(
    GROUP,
    noun="volume group",
    delete=services.delete_volume_group,
    done_url=lambda group: reverse("portal:elastic_san_volume_groups", args=[group.elastic_san_id]),
    warning=lambda group: "A volume group that still has volumes is not deleted: delete its volumes first.",
)


def _create_volume(principal, group, data) -> Volume:
    attach = data["attach_path"] if data["source"] == "attach" else ""
    if data["source"] == "attach" and not attach:
        raise ValidationError({"attach_path": "Enter the image file to attach, or choose 'New empty volume'."})
    if data["source"] == "new" and not data["size_gib"]:
        raise ValidationError({"size_gib": "Enter the volume size in GiB."})
    return services.create_volume(
        principal, group, name=data["name"], size_gib=None if attach else data["size_gib"], attach_path=attach
    )


@login_required
def volume_create(request, pk):
    group = GROUP.get(request, pk)
    form = forms.VolumeForm(request.POST or None)
    with_attach_roots(form, "attach_path")

    def created(volume):
        messages.success(request, f"Volume '{volume.name}' created.")
        return redirect("portal:volume_detail", pk=volume.pk)

    return submit(
        form,
        create=lambda data: _create_volume(request.principal, group, data),
        created=created,
        invalid=lambda form: form_page(request, "portal/inventory/volume_create.html",
                                       GROUP.context(request, group, ""), form),
    )


# --- volumes --------------------------------------------------------------------------------------------------


def _volume_context(request, volume, blade="overview"):
    """The volume's page: what the principal may do, and whether a job or a backup holds it now."""
    running = volume.activity_running
    return VOLUME.context(
        request,
        volume,
        blade,
        stale=running and activity_stale(volume),
        # A backup reading the volume makes writes wait (its recovery point is one consistent image).
        backup_reading=volumes.held_by_backup(volume.image_path),
        waiting_for_backup=running and volume.activity_message == WAITING_FOR_BACKUP,
        write_action=ops.VOLUME_WRITE,
    )


@login_required
def volume_detail(request, pk):
    volume = VOLUME.get(request, pk)
    template = "portal/inventory/volume_detail.html"
    if request.htmx and request.htmx.target == "volume-data":
        template += "#volume-data"
    return render(request, template, _volume_context(request, volume))


@login_required
@require_POST
def volume_start_job(request, pk, activity):
    volume = VOLUME.get(request, pk)
    report_outcome(
        request,
        lambda: services.start_volume_job(request.principal, volume, activity),
        lambda _: f"{Volume.Activity(activity).label} started. This page updates as it runs.",
        level=messages.info,
    )
    return redirect("portal:volume_detail", pk=volume.pk)


volume_delete = delete_view(
    VOLUME,
    noun="volume",
    delete=services.delete_volume,
    done_url=lambda volume: reverse("portal:volume_group_detail", args=[volume.volume_group_id]),
    warning=lambda volume: (
        f"The attached image {volume.attached_path} is left in place."
        if volume.is_attached
        else f"Its image file and all {volume.size_gib} GiB of data on it are deleted."
    ),
    context=lambda request, volume: _volume_context(request, volume, ""),
)


@login_required
def snapshot_detail(request, pk):
    snapshot = SNAPSHOT.get(request, pk)
    return render(request, "portal/inventory/snapshot_detail.html", SNAPSHOT.context(request, snapshot))


snapshot_delete = delete_view(
    SNAPSHOT,
    noun="snapshot",
    delete=services.delete_snapshot,
    done_url=lambda snapshot: reverse("portal:resource_group_detail", args=[snapshot.resource_group_id]),
    warning=lambda snapshot: "A snapshot is an operational-tier recovery point outside the vault: vault immutability, "
                             "soft delete and multi-user authorization do not protect it. Once it is deleted, its "
                             "recovery point can no longer be restored.",
)


elastic_san_network = datasource_network_view(SAN, "portal/inventory/_san_base.html")
