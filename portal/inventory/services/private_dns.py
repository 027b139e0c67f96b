"""Private DNS zones: their A records and their virtual network links.

A VNet's resolver (`portal.inventory.dns.resolve`, served by ``manage.py dns_responder``) answers from the
zones linked to that VNet, so adding or removing a record or a link changes what ``dig`` answers there at
once. Deleting a zone deletes its records and links with it.
"""

from __future__ import annotations

import ipaddress
import re

from django.core.exceptions import ValidationError

from portal.inventory.dns import normalize
from portal.inventory.models import DnsRecord, PrivateDnsZone, VirtualNetwork, VirtualNetworkLink
from portal.inventory.services.common import forget_assignments, new_resource_id
from portal.models import ResourceGroup
from security.audit import guarded, record_denial
from security.guards import GuardDenied, evaluate
from security.operations import (
    VNET_JOIN,
    DNS_LINK_DELETE,
    DNS_LINK_WRITE,
    DNS_RECORD_DELETE,
    DNS_RECORD_WRITE,
    DNS_ZONE_DELETE,
    DNS_ZONE_WRITE,
)

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)\Z")
_LINK_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,78}[A-Za-z0-9_])?\Z")
DEFAULT_TTL = 10  # seconds: a changed record is seen at once


def _labels_ok(name: str) -> bool:
    return all(_LABEL.match(label) for label in name.split("."))


def validate_zone_name(name: str) -> str:
    name = normalize(name)
    if len(name) > 253 or name.count(".") < 1 or not _labels_ok(name):
        raise ValidationError({"name": f"'{name}' is not a DNS zone name: two or more labels separated by dots "
                                       "(letters, digits and hyphens, 1 to 63 each), such as "
                                       "privatelink.blob.core.windows.net."})
    return name


def validate_record_name(zone: PrivateDnsZone, name: str) -> str:
    name = normalize(name)
    if name == zone.name or name.endswith("." + zone.name):
        relative = name[: -len(zone.name)].rstrip(".")
        raise ValidationError({"name": f"Write the name relative to the zone: '{relative or '@'}', not the full "
                                       f"name '{name}'." if relative else
                                       "Records at the zone's apex (@) are not offered: give the record a name."})
    if not name or len(name) + len(zone.name) + 1 > 253 or not _labels_ok(name):
        raise ValidationError({"name": f"'{name}' is not a record name: labels of letters, digits and hyphens "
                                       "(1 to 63 each) separated by dots, relative to the zone, such as "
                                       "'contosovault-ab-pod01-prot1'."})
    return name


def validate_ipv4(text: str) -> str:
    try:
        address = ipaddress.IPv4Address((text or "").strip())
    except ValueError:
        raise ValidationError({"ip": f"'{text}' is not an IPv4 address, such as 10.20.2.4."}) from None
    return str(address)


# --- zones -----------------------------------------------------------------------------------------------------


def create_private_dns_zone(principal, *, resource_group: ResourceGroup, name: str,
                            tags: dict | None = None) -> PrivateDnsZone:
    """A private DNS zone (a global resource in Azure: kept in its resource group's region here)."""
    name = normalize(name or "")
    target = new_resource_id(resource_group, PrivateDnsZone.RESOURCE_TYPE, name or "-")
    with guarded(principal, DNS_ZONE_WRITE, target) as op:
        validate_zone_name(name)
        if PrivateDnsZone.objects.filter(resource_group=resource_group, name__iexact=name).exists():
            raise ValidationError({"name": f"A private DNS zone named '{name}' already exists in {resource_group.name}."})
        zone = PrivateDnsZone.objects.create(name=name, resource_group=resource_group, region=resource_group.region,
                                             tags=tags or {})
        op.result_scope = zone.resource_id
    return zone


def delete_private_dns_zone(principal, zone: PrivateDnsZone) -> None:
    """Delete the zone with its record sets and virtual network links."""
    with guarded(principal, DNS_ZONE_DELETE, zone) as op:
        op.details["records"] = [f"{r.name} A {r.ip}" for r in zone.records.all()][:50]
        op.details["virtualNetworkLinks"] = [link.name for link in zone.links.all()]
        forget_assignments(op, zone.resource_id, "private DNS zone")
        zone.records.all().delete()
        zone.links.all().delete()
        zone.delete()


# --- A records -------------------------------------------------------------------------------------------------


def add_a_record(principal, zone: PrivateDnsZone, *, name: str, ip: str, ttl: int = DEFAULT_TTL,
                 private_endpoint=None) -> DnsRecord:
    """An A record ``name`` (relative to the zone) → ``ip``."""
    shown = normalize(name or "")
    target = f"{zone.resource_id}/A/{shown or '-'}"
    with guarded(principal, DNS_RECORD_WRITE, target, details={"ip": str(ip), "ttl": ttl}) as op:
        name = validate_record_name(zone, name or "")
        ip = validate_ipv4(ip)
        if not 1 <= int(ttl) <= 2147483647:
            raise ValidationError({"ttl": "The TTL is a number of seconds from 1."})
        existing = zone.records.filter(name__iexact=name).first()
        if existing is not None:
            raise ValidationError({"name": f"The record set '{name}' already exists ({existing.ip}). Delete it first "
                                           "to point the name elsewhere."})
        record = DnsRecord.objects.create(zone=zone, name=name, ip=ip, ttl=int(ttl), private_endpoint=private_endpoint)
        op.details["fqdn"] = record.fqdn
        op.result_scope = record.resource_id
    return record


def delete_a_record(principal, record: DnsRecord) -> None:
    with guarded(principal, DNS_RECORD_DELETE, record, details={"fqdn": record.fqdn, "ip": record.ip}):
        record.delete()


# --- virtual network links -------------------------------------------------------------------------------------


def add_vnet_link(principal, zone: PrivateDnsZone, *, name: str, virtual_network: VirtualNetwork) -> VirtualNetworkLink:
    """Link the zone to a VNet: that VNet's resolver answers from the zone from now on."""
    name = (name or "").strip()
    target = f"{zone.resource_id}/virtualNetworkLinks/{name or '-'}"
    # As in Azure, the link also needs the right to join the VNet: reading it is not enough to change what its
    # resolver answers. Asked first, outside the link's transaction, so the refusal stays in the activity log.
    joining = evaluate(principal, VNET_JOIN, virtual_network)
    if not joining.allowed:
        record_denial(principal, joining, {"zone": zone.resource_id})
        raise GuardDenied(joining)
    with guarded(principal, DNS_LINK_WRITE, target, details={"virtualNetwork": virtual_network.resource_id}) as op:
        if not _LINK_NAME.match(name):
            raise ValidationError({"name": f"The link name '{name}' is not valid: 1 to 80 letters, numbers, "
                                           "underscores, periods and hyphens, starting with a letter or a number."})
        if zone.links.filter(name__iexact=name).exists():
            raise ValidationError({"name": f"A virtual network link named '{name}' already exists in this zone."})
        if zone.links.filter(virtual_network=virtual_network).exists():
            raise ValidationError({"virtual_network": f"The zone is already linked to '{virtual_network.name}'."})
        link = VirtualNetworkLink.objects.create(zone=zone, name=name, virtual_network=virtual_network)
        op.result_scope = link.resource_id
    return link


def delete_vnet_link(principal, link: VirtualNetworkLink) -> None:
    with guarded(principal, DNS_LINK_DELETE, link, details={"virtualNetwork": link.virtual_network.resource_id}):
        link.delete()
