"""Private DNS zones, A records and virtual network links: the services' rules, and what `dns.resolve`
answers in a VNet as they change."""

from __future__ import annotations

import uuid

import pytest
from django.core.exceptions import ValidationError

from portal.inventory import dns, services
from portal.inventory.models import DnsRecord, PrivateDnsZone, VirtualNetworkLink
from security import operations as ops
from security.guards import GuardDenied
from security.models import ActivityLogEntry

pytestmark = pytest.mark.django_db

BLOB_ZONE = "privatelink.blob.core.windows.net"


@pytest.fixture
def vnet(lab):
    return services.create_virtual_network(lab.trainer, resource_group=lab.lab_group, name=f"vnet-{uuid.uuid4().hex[:6]}",
                                           region=lab.region, address_prefixes="10.20.0.0/16",
                                           subnet_name="snet-endpoints", subnet_prefix="10.20.2.0/25")


@pytest.fixture
def zone(lab):
    return services.create_private_dns_zone(lab.trainer, resource_group=lab.lab_group, name=BLOB_ZONE)


def test_a_linked_zone_answers_privately_and_the_answer_follows_records_and_links(lab, vnet, zone):
    public = dns.resolve(vnet, "contosodata.blob.core.windows.net")
    assert not public.private and public.cnames == (f"contosodata.{BLOB_ZONE}",)
    assert public.addresses[0].startswith("203.0.113.")
    record = services.add_a_record(lab.trainer, zone, name="contosodata", ip="10.20.2.4")
    assert not dns.resolve(vnet, "contosodata.blob.core.windows.net").private  # not linked yet
    link = services.add_vnet_link(lab.trainer, zone, name="link-lab", virtual_network=vnet)
    private = dns.resolve(vnet, "contosodata.blob.core.windows.net")
    assert private.private and private.addresses == ("10.20.2.4",) and private.zone == BLOB_ZONE
    assert dns.resolve(None, "contosodata.blob.core.windows.net").addresses == public.addresses  # the internet
    services.delete_a_record(lab.trainer, record)
    assert not dns.resolve(vnet, "contosodata.blob.core.windows.net").private
    services.add_a_record(lab.trainer, zone, name="contosodata", ip="10.20.2.5")
    services.delete_vnet_link(lab.trainer, link)
    assert not dns.resolve(vnet, "contosodata.blob.core.windows.net").private
    logged = set(ActivityLogEntry.objects.values_list("operation", flat=True))
    assert {ops.DNS_ZONE_WRITE, ops.DNS_RECORD_WRITE, ops.DNS_RECORD_DELETE, ops.DNS_LINK_WRITE,
            ops.DNS_LINK_DELETE} <= logged


@pytest.mark.parametrize("name, expected", [
    ("localhost", "two or more labels"),
    ("bad_zone.example", "two or more labels"),
    ("-x.example.com", "two or more labels"),
])
def test_zone_names_are_dns_names(lab, name, expected):
    with pytest.raises(ValidationError, match=expected):
        services.create_private_dns_zone(lab.trainer, resource_group=lab.lab_group, name=name)


def test_zone_names_are_unique_in_a_group_and_stored_lowercase(lab, zone):
    assert zone.name == BLOB_ZONE
    with pytest.raises(ValidationError, match="already exists"):
        services.create_private_dns_zone(lab.trainer, resource_group=lab.lab_group, name=BLOB_ZONE.upper() + ".")


@pytest.mark.parametrize("name, ip, expected", [
    ("vault1", "10.20.2.300", "not an IPv4 address"),
    ("vault1", "fd00::1", "not an IPv4 address"),
    (f"vault1.{BLOB_ZONE}", "10.20.2.4", "Write the name relative to the zone: 'vault1'"),
    (BLOB_ZONE, "10.20.2.4", "apex"),
    ("bad_name", "10.20.2.4", "not a record name"),
    ("", "10.20.2.4", "not a record name"),
])
def test_records_are_checked(lab, zone, name, ip, expected):
    with pytest.raises(ValidationError, match=expected):
        services.add_a_record(lab.trainer, zone, name=name, ip=ip)
    assert not DnsRecord.objects.exists()


def test_a_record_name_is_taken_once_per_zone(lab, zone):
    services.add_a_record(lab.trainer, zone, name="vault1", ip="10.20.2.4")
    with pytest.raises(ValidationError, match=r"already exists \(10.20.2.4\)"):
        services.add_a_record(lab.trainer, zone, name="VAULT1", ip="10.20.2.5")


def test_a_zone_links_a_vnet_once(lab, zone, vnet):
    services.add_vnet_link(lab.trainer, zone, name="link-a", virtual_network=vnet)
    with pytest.raises(ValidationError, match="already linked"):
        services.add_vnet_link(lab.trainer, zone, name="link-b", virtual_network=vnet)
    with pytest.raises(ValidationError, match="already exists"):
        services.add_vnet_link(lab.trainer, zone, name="LINK-A", virtual_network=vnet)
    with pytest.raises(ValidationError, match="not valid"):
        services.add_vnet_link(lab.trainer, zone, name="bad link", virtual_network=vnet)


def test_deleting_a_zone_deletes_its_records_and_links(lab, zone, vnet):
    services.add_a_record(lab.trainer, zone, name="vault1", ip="10.20.2.4")
    services.add_vnet_link(lab.trainer, zone, name="link-a", virtual_network=vnet)
    services.delete_private_dns_zone(lab.trainer, zone)
    assert not PrivateDnsZone.objects.exists() and not DnsRecord.objects.exists()
    assert not VirtualNetworkLink.objects.exists()
    entry = ActivityLogEntry.objects.get(operation=ops.DNS_ZONE_DELETE)
    assert entry.details["records"] == ["vault1 A 10.20.2.4"] and entry.details["virtualNetworkLinks"] == ["link-a"]


def test_a_reader_changes_no_zone(lab, zone, vnet):
    reader = lab.personas["reader"].principal
    record = services.add_a_record(lab.trainer, zone, name="vault1", ip="10.20.2.4")
    link = services.add_vnet_link(lab.trainer, zone, name="link-a", virtual_network=vnet)
    for call in (
        lambda: services.create_private_dns_zone(reader, resource_group=lab.lab_group, name="privatelink.example.com"),
        lambda: services.add_a_record(reader, zone, name="vault2", ip="10.20.2.5"),
        lambda: services.delete_a_record(reader, record),
        lambda: services.add_vnet_link(reader, zone, name="link-b", virtual_network=vnet),
        lambda: services.delete_vnet_link(reader, link),
        lambda: services.delete_private_dns_zone(reader, zone),
    ):
        with pytest.raises(GuardDenied):
            call()
    assert zone.records.count() == 1 and zone.links.count() == 1
