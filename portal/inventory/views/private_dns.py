"""Private DNS zone pages: zones, their A records (record sets) and virtual network links."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from portal.inventory import forms, services
from portal.inventory.models import DnsRecord, PrivateDnsZone, VirtualNetwork, VirtualNetworkLink
from portal.inventory.views.generic import Kind, create_view, delete_view, list_view, submit
from portal.shortcuts import can, get_visible_or_404, report_outcome, visible
from security import operations as ops

ZONE = Kind(
    PrivateDnsZone, "zone", ops.DNS_ZONE_READ, "portal:dns_zone_detail",
    delete=ops.DNS_ZONE_DELETE, related=("resource_group__subscription", "region"),
    write=ops.DNS_ZONE_WRITE, label="private DNS zone", plural="private DNS zones",
    list_url="portal:dns_zone_list", create_url="portal:dns_zone_create",
)

dns_zone_list = list_view(ZONE, template="portal/inventory/dns_zone_list.html")
dns_zone_create = create_view(
    ZONE,
    form_class=forms.PrivateDnsZoneForm,
    template="portal/inventory/dns_zone_create.html",
    create=services.create_private_dns_zone,
    created=lambda request, zone: messages.success(request, f"Private DNS zone '{zone.name}' created."),
)


def _vnets(request):
    return visible(request.principal, VirtualNetwork.objects.select_related("resource_group"), ops.VNET_READ)


@login_required
def dns_zone_detail(request, pk, record_form=None, link_form=None):
    zone = ZONE.get(request, pk)
    principal = request.principal
    records = visible(principal, zone.records.select_related("private_endpoint"), ops.DNS_RECORD_READ)
    links = visible(principal, zone.links.select_related("virtual_network__resource_group"), ops.DNS_LINK_READ)
    context = ZONE.context(
        request, zone, records=records, links=links,
        can_add_record=can(principal, ops.DNS_RECORD_WRITE, zone.resource_id),
        can_add_link=can(principal, ops.DNS_LINK_WRITE, zone.resource_id),
        can_delete_record=can(principal, ops.DNS_RECORD_DELETE, zone.resource_id),
        can_delete_link=can(principal, ops.DNS_LINK_DELETE, zone.resource_id),
        record_form=record_form or forms.DnsRecordForm(),
        link_form=link_form or forms.VirtualNetworkLinkForm(virtual_networks=_vnets(request)),
        show_record_form=record_form is not None or request.GET.get("new") == "record",
        show_link_form=link_form is not None or request.GET.get("new") == "link",
    )
    bad = record_form is not None or link_form is not None
    return render(request, "portal/inventory/dns_zone_detail.html", context, status=400 if bad else 200)


def _back(zone, anchor: str = ""):
    return redirect(reverse("portal:dns_zone_detail", args=[zone.pk]) + anchor)


@login_required
def dns_record_add(request, pk):
    if request.method != "POST":
        return redirect(reverse("portal:dns_zone_detail", args=[pk]) + "?new=record")
    zone = ZONE.get(request, pk)

    def created(record):
        messages.success(request, f"Record set '{record.name}' A {record.ip} added: {record.fqdn}.")
        return _back(zone, "#records")

    return submit(forms.DnsRecordForm(request.POST),
                  create=lambda data: services.add_a_record(request.principal, zone, name=data["name"], ip=data["ip"]),
                  created=created, invalid=lambda form: dns_zone_detail(request, pk, record_form=form))


@login_required
def dns_link_add(request, pk):
    if request.method != "POST":
        return redirect(reverse("portal:dns_zone_detail", args=[pk]) + "?new=link")
    zone = ZONE.get(request, pk)

    def created(link):
        messages.success(request, f"Virtual network link '{link.name}' to '{link.virtual_network.name}' added.")
        return _back(zone, "#links")

    return submit(forms.VirtualNetworkLinkForm(request.POST, virtual_networks=_vnets(request)),
                  create=lambda data: services.add_vnet_link(request.principal, zone, **data),
                  created=created, invalid=lambda form: dns_zone_detail(request, pk, link_form=form))


@login_required
@require_POST
def dns_record_delete(request, pk):
    record = get_visible_or_404(request.principal, DnsRecord.objects.select_related("zone"), ops.DNS_RECORD_READ, pk=pk)
    report_outcome(request, lambda: services.delete_a_record(request.principal, record),
                   lambda _: f"Record set '{record.name}' deleted.")
    return _back(record.zone, "#records")


@login_required
@require_POST
def dns_link_delete(request, pk):
    link = get_visible_or_404(request.principal, VirtualNetworkLink.objects.select_related("zone", "virtual_network"),
                              ops.DNS_LINK_READ, pk=pk)
    report_outcome(request, lambda: services.delete_vnet_link(request.principal, link),
                   lambda _: f"Virtual network link '{link.name}' deleted.")
    return _back(link.zone, "#links")


@login_required
def dns_record_detail(request, pk):
    """A record's own address (search, IAM): its zone's page, at the records."""
    record = get_visible_or_404(request.principal, DnsRecord.objects.select_related("zone"), ops.DNS_RECORD_READ, pk=pk)
    return _back(record.zone, "#records")


@login_required
def dns_link_detail(request, pk):
    link = get_visible_or_404(request.principal, VirtualNetworkLink.objects.select_related("zone"), ops.DNS_LINK_READ,
                              pk=pk)
    return _back(link.zone, "#links")


dns_zone_delete = delete_view(
    ZONE,
    noun="private DNS zone",
    delete=services.delete_private_dns_zone,
    warning=lambda zone: f"Its {zone.records.count()} record set(s) and {zone.links.count()} virtual network link(s) "
                         "are deleted with it: the virtual networks linked to it stop getting its answers.",
)
