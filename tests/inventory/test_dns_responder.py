"""The DNS responder over real UDP: a responder serving in a thread of this test (every socket on a port of
its own: port 0, read back), queried with dnspython as ``dig`` would. The rows are committed
(transactional_db) so that the responder's thread sees them."""

from __future__ import annotations

import uuid

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from portal.inventory import dns as names
from portal.inventory import dns_server, services
from tests.conftest import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

ZONE = "privatelink.blob.core.windows.net"


@pytest.fixture
def responder(transactional_db):
    responder, stop, thread = dns_server.start_in_thread(0, refresh=0.05)
    yield responder
    stop.set()
    thread.join(10)
    assert not thread.is_alive()


def _vnet(lab):
    return services.create_virtual_network(lab.trainer, resource_group=lab.lab_group, name=f"vnet-{uuid.uuid4().hex[:6]}",
                                           region=lab.region, address_prefixes="10.20.0.0/16",
                                           subnet_name="snet-endpoints", subnet_prefix="10.20.2.0/25")


def _served(responder, vnet):
    return wait_until(lambda: responder.address_of(vnet), 10, f"the resolver of {vnet.name}", every=0.02)


def ask(address, name, rdtype="A"):
    host, port = address
    return dns.query.udp(dns.message.make_query(name, rdtype), host, port=port, timeout=5)


def _a(response) -> list[str]:
    return sorted(r.address for rrset in response.answer if rrset.rdtype == dns.rdatatype.A for r in rrset)


def _cnames(response) -> list[str]:
    return [r.target.to_text() for rrset in response.answer if rrset.rdtype == dns.rdatatype.CNAME for r in rrset]


def test_each_vnet_answers_on_its_own_resolver_address(lab, responder):
    vnet = _vnet(lab)
    host, port = _served(responder, vnet)
    assert host == names.resolver_address(vnet) and port > 0


def test_public_then_private_then_public_again_as_records_come_and_go(lab, responder):
    vnet = _vnet(lab)
    address = _served(responder, vnet)
    asked = "contosodata.blob.core.windows.net"
    public = ask(address, asked)
    assert public.rcode() == dns.rcode.NOERROR and public.flags & dns.flags.QR
    assert _cnames(public) == [f"contosodata.{ZONE}."]
    [public_ip] = _a(public)
    assert public_ip.startswith("203.0.113.")
    zone = services.create_private_dns_zone(lab.trainer, resource_group=lab.lab_group, name=ZONE)
    services.add_vnet_link(lab.trainer, zone, name="link-lab", virtual_network=vnet)
    record = services.add_a_record(lab.trainer, zone, name="contosodata", ip="10.20.2.4")
    private = ask(address, asked)
    assert _cnames(private) == [f"contosodata.{ZONE}."] and _a(private) == ["10.20.2.4"]
    assert all(rrset.ttl == dns_server.TTL for rrset in private.answer)
    assert _a(ask(address, f"contosodata.{ZONE}")) == ["10.20.2.4"]  # the privatelink name itself
    services.delete_a_record(lab.trainer, record)
    assert _a(ask(address, asked)) == [public_ip]


def test_a_zone_answers_only_in_the_vnets_linked_to_it(lab, responder):
    linked, other = _vnet(lab), _vnet(lab)
    zone = services.create_private_dns_zone(lab.trainer, resource_group=lab.lab_group, name="corp.contoso.internal")
    services.add_a_record(lab.trainer, zone, name="db", ip="10.20.1.9")
    services.add_vnet_link(lab.trainer, zone, name="link-a", virtual_network=linked)
    assert _a(ask(_served(responder, linked), "db.corp.contoso.internal")) == ["10.20.1.9"]
    foreign = ask(_served(responder, other), "db.corp.contoso.internal")
    assert foreign.rcode() == dns.rcode.NXDOMAIN and not foreign.answer


def test_foreign_names_are_nxdomain_and_other_types_are_answered_as_such(lab, responder):
    address = _served(responder, _vnet(lab))
    assert ask(address, "www.example.org").rcode() == dns.rcode.NXDOMAIN
    aaaa = ask(address, "contosodata.blob.core.windows.net", "AAAA")
    assert aaaa.rcode() == dns.rcode.NOERROR and not _a(aaaa)
    assert ask(address, "www.example.org", "AAAA").rcode() == dns.rcode.NXDOMAIN
    assert ask(address, "contosodata.blob.core.windows.net", "MX").rcode() == dns.rcode.NOTIMP


def test_a_deleted_vnet_stops_answering_and_a_new_one_starts(lab, responder):
    vnet = _vnet(lab)
    _served(responder, vnet)
    services.delete_subnet(lab.trainer, vnet.subnets.get())
    services.delete_virtual_network(lab.trainer, vnet)
    wait_until(lambda: responder.address_of(vnet) is None, 10, "the deleted VNet's resolver to close", every=0.02)
    assert _served(responder, _vnet(lab))


def test_the_answer_is_the_one_the_data_path_gets(lab, responder):
    vnet = _vnet(lab)
    zone = services.create_private_dns_zone(lab.trainer, resource_group=lab.lab_group, name=ZONE)
    services.add_vnet_link(lab.trainer, zone, name="link-lab", virtual_network=vnet)
    services.add_a_record(lab.trainer, zone, name="contosodata", ip="10.20.2.6")
    for name in ("contosodata.blob.core.windows.net", "other.blob.core.windows.net"):
        assert tuple(_a(ask(_served(responder, vnet), name))) == names.resolve(vnet, name).addresses


def test_garbage_gets_no_answer_and_the_responder_keeps_serving(lab, responder):
    import socket

    address = _served(responder, _vnet(lab))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"\x00\x01not dns", address)
    assert ask(address, "www.example.org").rcode() == dns.rcode.NXDOMAIN
