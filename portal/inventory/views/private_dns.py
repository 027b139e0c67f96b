"""Private DNS zone pages: zones, their A records (record sets) and virtual network links."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from portal.inventory import forms, services
from portal.inventory.models import DnsRecord, PrivateDnsZone, VirtualNetwork, VirtualNetworkLink
from portal.inventory.views.generic import Kind, add_child_view, create_view, delete_view, list_view
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


def _zone_url(pk, anchor: str = "") -> str:
    return reverse("portal:dns_zone_detail", args=[pk]) + anchor


def _back(zone, anchor: str = ""):
    return redirect(_zone_url(zone.pk, anchor))


dns_record_add = add_child_view(
    ZONE,
    form_class=forms.DnsRecordForm,
    create=services.add_a_record,
    message="Record set '{child.name}' A {child.ip} added: {child.fqdn}.",
    done_url=lambda zone, record: _zone_url(zone.pk, "#records"),
    blade=dns_zone_detail,
    form_name="record_form",
    ask_url=lambda pk: _zone_url(pk, "?new=record"),
)

dns_link_add = add_child_view(
    ZONE,
    form_class=forms.VirtualNetworkLinkForm,
    form_kwargs=lambda request: {"virtual_networks": _vnets(request)},
    create=services.add_vnet_link,
    message="Virtual network link '{child.name}' to '{child.virtual_network.name}' added.",
    done_url=lambda zone, link: _zone_url(zone.pk, "#links"),
    blade=dns_zone_detail,
    form_name="link_form",
    ask_url=lambda pk: _zone_url(pk, "?new=link"),
)


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
