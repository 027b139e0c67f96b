"""Virtual networks, subnets and each datasource's network: every rule of the services (names, CIDR checks,
overlap, the smallest subnet, Azure's reserved addresses, refusals to delete what is in use, the right to
join a subnet), each logged in the activity log."""

from __future__ import annotations

import uuid

import pytest
from django.core.exceptions import ValidationError

from portal.inventory import services
from portal.inventory.models import PrivateEndpoint, Subnet, VirtualNetwork
from security.guards import GuardDenied
from security.models import ActivityLogEntry
from security import operations as ops

pytestmark = pytest.mark.django_db


def _name(prefix="vnet") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def _vnet(lab, prefixes="10.20.0.0/16", **kw):
    return services.create_virtual_network(lab.trainer, resource_group=lab.lab_group, name=_name(), region=lab.region,
                                           address_prefixes=prefixes, **kw)


def _errors(exc_info) -> str:
    return " ".join(exc_info.value.messages)


def test_create_with_a_first_subnet_gets_the_next_resolver_number_and_is_logged(lab):
    first = _vnet(lab, subnet_name="snet-a", subnet_prefix="10.20.1.0/24")
    second = _vnet(lab, "10.30.0.0/16, 10.31.0.0/16")
    assert first.address_prefixes == ["10.20.0.0/16"] and second.address_prefixes == ["10.30.0.0/16", "10.31.0.0/16"]
    assert second.resolver_number == first.resolver_number + 1
    assert [(s.name, s.address_prefix) for s in first.subnets.all()] == [("snet-a", "10.20.1.0/24")]
    entry = ActivityLogEntry.objects.filter(operation=ops.VNET_WRITE, scope__iexact=first.resource_id).get()
    assert entry.status == "Succeeded"


@pytest.mark.parametrize("prefixes, expected", [
    ("", "at least one address space"),
    ("10.20.0.0", "no prefix length"),
    ("10.20.1.5/16", "host bits set: did you mean 10.20.0.0/16"),
    ("fd00::/48", "IPv6"),
    ("ten.twenty/16", "not a CIDR range"),
    ("10.0.0.0/16, 10.0.128.0/17", "overlaps 10.0.0.0/16"),
])
def test_address_spaces_are_checked(lab, prefixes, expected):
    with pytest.raises(ValidationError) as exc:
        _vnet(lab, prefixes)
    assert expected in _errors(exc)
    assert not VirtualNetwork.objects.exists()


@pytest.mark.parametrize("name", ["a", "-vnet", "vnet-", "vnet lab", "v" * 65])
def test_vnet_names_follow_azure(lab, name):
    with pytest.raises(ValidationError, match="not valid"):
        services.create_virtual_network(lab.trainer, resource_group=lab.lab_group, name=name, region=lab.region,
                                        address_prefixes="10.0.0.0/16")


def test_vnet_names_are_unique_in_a_group_whatever_the_case(lab):
    vnet = _vnet(lab)
    with pytest.raises(ValidationError, match="already exists"):
        services.create_virtual_network(lab.trainer, resource_group=lab.lab_group, name=vnet.name.upper(),
                                        region=lab.region, address_prefixes="10.1.0.0/16")


@pytest.mark.parametrize("prefix, expected", [
    ("10.21.0.0/24", "not inside the virtual network's address space (10.20.0.0/16)"),
    ("10.20.1.0/30", "too small: the smallest subnet is a /29"),
    ("10.20.0.0/23", "overlaps subnet 'snet-a' (10.20.1.0/24)"),
    ("10.20.1.128/25", "overlaps subnet 'snet-a'"),
    ("10.20.2.7/24", "host bits set: did you mean 10.20.2.0/24"),
    ("10.20.2.0", "no prefix length"),
])
def test_subnet_ranges_are_checked(lab, prefix, expected):
    vnet = _vnet(lab, subnet_name="snet-a", subnet_prefix="10.20.1.0/24")
    with pytest.raises(ValidationError) as exc:
        services.add_subnet(lab.trainer, vnet, name="snet-b", address_prefix=prefix)
    assert expected in _errors(exc)
    assert vnet.subnets.count() == 1
    failed = ActivityLogEntry.objects.filter(operation=ops.SUBNET_WRITE, status="Failed").get()
    assert failed.sub_status == "BadRequest"


def test_a_first_subnet_outside_the_space_is_refused_with_nothing_made(lab):
    with pytest.raises(ValidationError) as exc:
        _vnet(lab, subnet_name="snet-a", subnet_prefix="192.168.0.0/24")
    assert "not inside" in _errors(exc) and "subnet_prefix" in exc.value.message_dict
    assert not VirtualNetwork.objects.exists()


def test_subnets_in_a_second_address_space_and_adjacent_ranges_are_fine(lab):
    vnet = _vnet(lab, "10.20.0.0/16, 172.16.0.0/24", subnet_name="snet-a", subnet_prefix="10.20.1.0/24")
    services.add_subnet(lab.trainer, vnet, name="snet-b", address_prefix="10.20.2.0/24")
    services.add_subnet(lab.trainer, vnet, name="snet-c", address_prefix="172.16.0.0/29")
    with pytest.raises(ValidationError, match="already exists"):
        services.add_subnet(lab.trainer, vnet, name="SNET-A", address_prefix="10.20.3.0/24")
    assert sorted(vnet.subnets.values_list("name", flat=True)) == ["snet-a", "snet-b", "snet-c"]


def test_azure_keeps_five_addresses_and_endpoints_use_more(lab):
    vnet = _vnet(lab, subnet_name="snet-small", subnet_prefix="10.20.1.0/29")
    subnet = vnet.subnets.get()
    assert services.free_addresses(subnet) == 3  # 8 - 5 reserved
    PrivateEndpoint.objects.create(name="pe-x", resource_group=lab.lab_group, region=lab.region, subnet=subnet,
                                   target_resource_id="/x", target_sub_resource="AzureBackup",
                                   ip_configurations=[{"fqdn": "a", "ip": "10.20.1.4"}, {"fqdn": "b", "ip": "10.20.1.5"}])
    assert services.free_addresses(subnet) == 1


def _datasources(lab):
    account = services.create_storage_account(lab.trainer, resource_group=lab.lab_group, name="sa" + uuid.uuid4().hex[:10],
                                              region=lab.region)
    san = services.create_elastic_san(lab.trainer, resource_group=lab.lab_group, name=_name("esan"), region=lab.region)
    server = services.create_postgres_server(lab.trainer, resource_group=lab.lab_group, name=_name("pg"),
                                             region=lab.region, host="127.0.0.1", port=1, admin_user="postgres")
    return account, san, server


def test_each_datasource_moves_into_a_subnet_and_back_and_each_move_is_logged(lab):
    vnet = _vnet(lab, subnet_name="snet-workload", subnet_prefix="10.20.1.0/24")
    subnet = vnet.subnets.get()
    for datasource in _datasources(lab):
        services.set_datasource_network(lab.trainer, datasource, subnet)
        datasource.refresh_from_db()
        assert datasource.network_subnet == subnet
        services.set_datasource_network(lab.trainer, datasource, None)
        datasource.refresh_from_db()
        assert datasource.network_subnet is None
    entries = ActivityLogEntry.objects.filter(details__networkAfter=subnet.resource_id)
    assert entries.count() == 3


def test_a_datasource_cannot_join_a_vnet_of_another_region(lab):
    from portal.models import Region

    other = Region.objects.exclude(pk=lab.region.pk).first()
    vnet = services.create_virtual_network(lab.trainer, resource_group=lab.lab_group, name=_name(), region=other,
                                           address_prefixes="10.9.0.0/16", subnet_name="s", subnet_prefix="10.9.0.0/24")
    account, _, _ = _datasources(lab)
    with pytest.raises(ValidationError, match="same region"):
        services.set_datasource_network(lab.trainer, account, vnet.subnets.get())
    account.refresh_from_db()
    assert account.network_subnet is None


def _person(lab, role_scopes):
    from django.contrib.auth import get_user_model

    from security import services as security_services
    from security.models import RoleDefinition

    user = get_user_model().objects.create_user(_name("user"), password="x")
    principal = security_services.principal_for_user(user)
    for role, scope in role_scopes:
        security_services.assign_role(lab.trainer, assignee=principal, role=RoleDefinition.objects.get(name=role),
                                      scope=scope)
    return principal


def test_joining_a_subnet_needs_the_join_action_on_it_as_well_as_the_datasource_write(lab):
    from portal import services as portal_services

    network_group = portal_services.create_resource_group(lab.trainer, subscription=lab.lab_subscription,
                                                          name=_name("rg-net"), region=lab.region)
    vnet = services.create_virtual_network(lab.trainer, resource_group=network_group, name=_name(), region=lab.region,
                                           address_prefixes="10.20.0.0/16", subnet_name="s", subnet_prefix="10.20.1.0/24")
    subnet = vnet.subnets.get()
    account, _, _ = _datasources(lab)
    # Contributor on the datasource's group only: may write the account, may not join the other group's subnet.
    storage_only = _person(lab, [("Contributor", lab.lab_group.resource_id)])
    with pytest.raises(GuardDenied) as exc:
        services.set_datasource_network(storage_only, account, subnet)
    assert exc.value.decision.operation == ops.SUBNET_JOIN
    account.refresh_from_db()
    assert account.network_subnet is None
    assert ActivityLogEntry.objects.filter(operation=ops.SUBNET_JOIN, status="Failed").exists()
    # Network Contributor on the network's group only: may join, may not write the account.
    network_only = _person(lab, [("Network Contributor", network_group.resource_id)])
    with pytest.raises(GuardDenied) as exc:
        services.set_datasource_network(network_only, account, subnet)
    assert exc.value.decision.operation == ops.STORAGE_ACCOUNT_WRITE
    # Both: allowed. Back to the public network needs no join.
    both = _person(lab, [("Contributor", lab.lab_group.resource_id), ("Network Contributor", network_group.resource_id)])
    services.set_datasource_network(both, account, subnet)
    services.set_datasource_network(storage_only, account, None)
    account.refresh_from_db()
    assert account.network_subnet is None


def test_a_subnet_in_use_cannot_be_deleted_nor_its_vnet_and_the_refusal_names_what_uses_it(lab):
    vnet = _vnet(lab, subnet_name="snet-workload", subnet_prefix="10.20.1.0/24")
    subnet = vnet.subnets.get()
    account, san, _ = _datasources(lab)
    services.set_datasource_network(lab.trainer, account, subnet)
    services.set_datasource_network(lab.trainer, san, subnet)
    for delete, target in ((services.delete_subnet, subnet), (services.delete_virtual_network, vnet)):
        with pytest.raises(GuardDenied) as exc:
            delete(lab.trainer, target)
        decision = exc.value.decision
        assert decision.code == "InUseSubnetCannotBeDeleted"
        assert f"storage account '{account.name}'" in decision.reason and f"Elastic SAN '{san.name}'" in decision.reason
    assert Subnet.objects.filter(pk=subnet.pk).exists()
    services.set_datasource_network(lab.trainer, account, None)
    services.set_datasource_network(lab.trainer, san, None)
    PrivateEndpoint.objects.create(name="pe-held", resource_group=lab.lab_group, region=lab.region, subnet=subnet,
                                   target_resource_id="/x", target_sub_resource="AzureBackup")
    with pytest.raises(GuardDenied, match="private endpoint 'pe-held'"):
        services.delete_subnet(lab.trainer, subnet)
    PrivateEndpoint.objects.filter(name="pe-held").delete()
    services.delete_subnet(lab.trainer, subnet)
    services.delete_virtual_network(lab.trainer, vnet)
    assert not VirtualNetwork.objects.filter(pk=vnet.pk).exists()


def test_deleting_a_vnet_takes_its_subnets_and_zone_links(lab):
    vnet = _vnet(lab, subnet_name="snet-a", subnet_prefix="10.20.1.0/24")
    zone = services.create_private_dns_zone(lab.trainer, resource_group=lab.lab_group, name="privatelink.blob.core.windows.net")
    services.add_vnet_link(lab.trainer, zone, name="link-a", virtual_network=vnet)
    services.delete_virtual_network(lab.trainer, vnet)
    assert not Subnet.objects.exists() and not zone.links.exists()
    entry = ActivityLogEntry.objects.get(operation=ops.VNET_DELETE)
    assert entry.details["dnsLinksRemoved"] == [f"{zone.name}/link-a"]


def test_resolver_numbers_are_not_reused_while_their_vnet_exists(lab):
    a, b = _vnet(lab), _vnet(lab, "10.30.0.0/16")
    services.delete_virtual_network(lab.trainer, a)
    c = _vnet(lab, "10.40.0.0/16")
    assert c.resolver_number not in (b.resolver_number,) and c.resolver_number > b.resolver_number


def test_a_reader_cannot_create_or_delete_networks(lab):
    reader = lab.personas["reader"].principal
    with pytest.raises(GuardDenied):
        services.create_virtual_network(reader, resource_group=lab.lab_group, name=_name(), region=lab.region,
                                        address_prefixes="10.0.0.0/16")
    vnet = _vnet(lab, subnet_name="s", subnet_prefix="10.20.1.0/24")
    for call in (lambda: services.add_subnet(reader, vnet, name="t", address_prefix="10.20.2.0/24"),
                 lambda: services.delete_subnet(reader, vnet.subnets.get()),
                 lambda: services.delete_virtual_network(reader, vnet)):
        with pytest.raises(GuardDenied):
            call()


def test_datasources_are_created_in_a_subnet_with_the_right_to_join_it(lab):
    from portal import services as portal_services

    network_group = portal_services.create_resource_group(lab.trainer, subscription=lab.lab_subscription,
                                                          name=_name("rg-net"), region=lab.region)
    vnet = services.create_virtual_network(lab.trainer, resource_group=network_group, name=_name(), region=lab.region,
                                           address_prefixes="10.20.0.0/16", subnet_name="s", subnet_prefix="10.20.1.0/24")
    subnet = vnet.subnets.get()
    account = services.create_storage_account(lab.trainer, resource_group=lab.lab_group, name="sa" + uuid.uuid4().hex[:8],
                                              region=lab.region, network_subnet=subnet)
    san = services.create_elastic_san(lab.trainer, resource_group=lab.lab_group, name=_name("esan"), region=lab.region,
                                      network_subnet=subnet)
    server = services.create_postgres_server(lab.trainer, resource_group=lab.lab_group, name=_name("pg"),
                                             region=lab.region, host="127.0.0.1", port=1, admin_user="postgres",
                                             network_subnet=subnet)
    assert account.network_subnet == san.network_subnet == server.network_subnet == subnet
    # Contributor on the datasources' group, nothing on the network's: refused at the join, nothing made.
    storage_only = _person(lab, [("Contributor", lab.lab_group.resource_id)])
    name = "sa" + uuid.uuid4().hex[:8]
    with pytest.raises(GuardDenied) as exc:
        services.create_storage_account(storage_only, resource_group=lab.lab_group, name=name, region=lab.region,
                                        network_subnet=subnet)
    assert exc.value.decision.operation == ops.SUBNET_JOIN
    from portal.inventory.models import StorageAccount

    assert not StorageAccount.objects.filter(name=name).exists()
    assert ActivityLogEntry.objects.filter(operation=ops.SUBNET_JOIN, status="Failed").exists()
    # A subnet of another region is refused beside the field.
    from portal.models import Region

    other = Region.objects.exclude(pk=lab.region.pk).first()
    with pytest.raises(ValidationError) as exc:
        services.create_elastic_san(lab.trainer, resource_group=lab.lab_group, name=_name("esan"), region=other,
                                    network_subnet=subnet)
    assert "same region" in " ".join(exc.value.message_dict["network_subnet"])
