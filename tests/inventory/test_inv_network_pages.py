"""The networking pages: virtual networks (list, create with a first subnet, detail with the resolver line,
add and delete subnets, delete), private DNS zones (records, links) and each datasource's Networking
setting. Bad input comes back as form errors (400), never a 500; refusals as the explained 403."""

from __future__ import annotations

import uuid

import pytest
from django.urls import reverse

from portal.inventory import dns, services
from portal.inventory.models import DnsRecord, PrivateDnsZone, Subnet, VirtualNetwork, VirtualNetworkLink

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner(client, lab):
    client.force_login(lab.trainer.user)
    return client


@pytest.fixture
def vnet(lab):
    return services.create_virtual_network(lab.trainer, resource_group=lab.lab_group, name=f"vnet-{uuid.uuid4().hex[:6]}",
                                           region=lab.region, address_prefixes="10.20.0.0/16",
                                           subnet_name="snet-workload", subnet_prefix="10.20.1.0/24")


def _create_form(lab, **fields):
    data = {"resource_group": lab.lab_group.pk, "name": "vnet-page", "region": lab.region.pk,
            "address_prefixes": "10.50.0.0/16", "subnet_name": "default", "subnet_prefix": "10.50.0.0/24"}
    data.update(fields)
    return data


def test_create_then_list_then_detail_shows_the_resolver_line(owner, lab, settings):
    settings.STRONGROOM_DNS_PORT = 5399
    response = owner.post(reverse("portal:vnet_create"), _create_form(lab))
    vnet = VirtualNetwork.objects.get(name="vnet-page")
    assert response.status_code == 302 and response.url == reverse("portal:vnet_detail", args=[vnet.pk])
    assert vnet.subnets.get().address_prefix == "10.50.0.0/24"
    listing = owner.get(reverse("portal:vnet_list")).content.decode()
    assert "vnet-page" in listing and "10.50.0.0/16" in listing
    page = owner.get(reverse("portal:vnet_detail", args=[vnet.pk])).content.decode()
    address = dns.resolver_address(vnet)
    assert f"dig @{address} -p 5399 contoso.blob.core.windows.net" in page
    assert "10.50.0.0/24" in page and "251" in page  # 256 - 5 reserved: the free addresses


@pytest.mark.parametrize("fields, field, words", [
    ({"address_prefixes": "10.50.0.0"}, "address_prefixes", "no prefix length"),
    ({"address_prefixes": "not-a-cidr"}, "address_prefixes", "not a CIDR range"),
    ({"subnet_prefix": "10.60.0.0/24"}, "subnet_prefix", "not inside"),
    ({"subnet_prefix": "10.50.0.0/30"}, "subnet_prefix", "too small"),
    ({"name": "-bad"}, "name", "not valid"),
    ({"region": "nowhere"}, "region", "valid choice"),
])
def test_bad_input_comes_back_beside_its_field(owner, lab, fields, field, words):
    response = owner.post(reverse("portal:vnet_create"), _create_form(lab, **fields))
    assert response.status_code == 400
    assert words in " ".join(response.context["form"].errors[field])
    assert not VirtualNetwork.objects.exists()


def test_subnets_are_added_on_the_vnet_page_and_errors_stay_there(owner, lab, vnet):
    url = reverse("portal:subnet_create", args=[vnet.pk])
    bad = owner.post(url, {"name": "snet-b", "address_prefix": "10.20.1.0/25"})
    assert bad.status_code == 400 and "overlaps subnet &#x27;snet-workload&#x27;" in bad.content.decode()
    assert owner.post(url, {"name": "", "address_prefix": ""}).status_code == 400
    good = owner.post(url, {"name": "snet-b", "address_prefix": "10.20.2.0/25"})
    assert good.status_code == 302 and vnet.subnets.filter(name="snet-b").exists()
    assert owner.get(url).status_code == 302  # a GET leads to the form on the VNet page


def test_a_subnet_in_use_says_so_before_and_is_refused_with_the_reason(owner, lab, vnet):
    subnet = vnet.subnets.get()
    account = services.create_storage_account(lab.trainer, resource_group=lab.lab_group, name="sa" + uuid.uuid4().hex[:8],
                                              region=lab.region)
    services.set_datasource_network(lab.trainer, account, subnet)
    url = reverse("portal:subnet_delete", args=[subnet.pk])
    assert f"storage account &#x27;{account.name}&#x27;" in owner.get(url).content.decode()
    refused = owner.post(url, {"confirm_name": subnet.name})
    assert refused.status_code == 403 and "InUseSubnetCannotBeDeleted" in refused.content.decode()
    assert Subnet.objects.filter(pk=subnet.pk).exists()
    detail = owner.get(reverse("portal:subnet_detail", args=[subnet.pk])).content.decode()
    assert account.name in detail
    services.set_datasource_network(lab.trainer, account, None)
    assert owner.post(url, {"confirm_name": subnet.name}).status_code == 302
    response = owner.post(reverse("portal:vnet_delete", args=[vnet.pk]), {"confirm_name": vnet.name})
    assert response.status_code == 302 and not VirtualNetwork.objects.exists()


def test_a_datasource_networking_page_moves_it_and_its_overview_says_where_it_is(owner, lab, vnet):
    account = services.create_storage_account(lab.trainer, resource_group=lab.lab_group, name="sa" + uuid.uuid4().hex[:8],
                                              region=lab.region)
    subnet = vnet.subnets.get()
    detail = reverse("portal:storage_account_detail", args=[account.pk])
    assert "Public network" in owner.get(detail).content.decode()
    url = reverse("portal:storage_account_network", args=[account.pk])
    page = owner.get(url).content.decode()
    assert f"{vnet.name} / snet-workload (10.20.1.0/24)" in page
    assert owner.post(url, {"network": "999999"}).status_code == 400  # not a subnet offered
    assert owner.post(url, {"network": str(subnet.pk)}).status_code == 302
    account.refresh_from_db()
    assert account.network_subnet == subnet
    overview = owner.get(detail).content.decode()
    assert vnet.name in overview and "snet-workload" in overview
    vnet_page = owner.get(reverse("portal:vnet_detail", args=[vnet.pk])).content.decode()
    assert account.name in vnet_page  # a connected device
    assert f"{account.name}.blob.core.windows.net" in vnet_page  # the name the dig line asks for
    assert owner.post(url, {"network": ""}).status_code == 302
    account.refresh_from_db()
    assert account.network_subnet is None


@pytest.mark.parametrize("kind", ["elastic_san", "postgres_server"])
def test_the_other_datasources_have_the_setting_too(owner, lab, vnet, kind):
    if kind == "elastic_san":
        obj = services.create_elastic_san(lab.trainer, resource_group=lab.lab_group, name="esan-net", region=lab.region)
    else:
        obj = services.create_postgres_server(lab.trainer, resource_group=lab.lab_group, name="pg-net", region=lab.region,
                                              host="127.0.0.1", port=1, admin_user="postgres")
    assert "Networking" in owner.get(reverse(f"portal:{kind}_detail", args=[obj.pk])).content.decode()
    subnet = vnet.subnets.get()
    assert owner.post(reverse(f"portal:{kind}_network", args=[obj.pk]), {"network": str(subnet.pk)}).status_code == 302
    obj.refresh_from_db()
    assert obj.network_subnet == subnet


def test_a_reader_sees_the_pages_and_is_refused_the_changes(client, lab, vnet):
    client.force_login(lab.personas["reader"].principal.user)
    assert client.get(reverse("portal:vnet_detail", args=[vnet.pk])).status_code == 200
    response = client.post(reverse("portal:subnet_create", args=[vnet.pk]), {"name": "s2", "address_prefix": "10.20.9.0/24"})
    assert response.status_code == 403
    client.force_login(lab.personas["outsider"].principal.user)
    assert client.get(reverse("portal:vnet_detail", args=[vnet.pk])).status_code == 404
    assert "vnet-" not in client.get(reverse("portal:vnet_list")).content.decode()


def test_private_dns_zone_pages(owner, lab, vnet):
    response = owner.post(reverse("portal:dns_zone_create"), {"resource_group": lab.lab_group.pk,
                                                               "name": "privatelink.blob.core.windows.net"})
    zone = PrivateDnsZone.objects.get()
    assert response.status_code == 302
    assert owner.post(reverse("portal:dns_zone_create"), {"resource_group": lab.lab_group.pk,
                                                          "name": "nodots"}).status_code == 400
    records = reverse("portal:dns_record_create", args=[zone.pk])
    bad = owner.post(records, {"name": "vault1", "ip": "10.20.2.999"})
    assert bad.status_code == 400 and "not an IPv4 address" in bad.content.decode()
    assert owner.post(records, {"name": "vault1", "ip": "10.20.2.4"}).status_code == 302
    links = reverse("portal:dns_link_create", args=[zone.pk])
    assert owner.post(links, {"name": "link-a", "virtual_network": ""}).status_code == 400
    assert owner.post(links, {"name": "link-a", "virtual_network": str(vnet.pk)}).status_code == 302
    page = owner.get(reverse("portal:dns_zone_detail", args=[zone.pk])).content.decode()
    assert "vault1.privatelink.blob.core.windows.net" in page and "10.20.2.4" in page and vnet.name in page
    assert "privatelink.blob.core.windows.net" in owner.get(reverse("portal:dns_zone_list")).content.decode()
    # The VNet's page now asks its resolver for the zone's record.
    vnet_page = owner.get(reverse("portal:vnet_detail", args=[vnet.pk])).content.decode()
    assert "vault1.privatelink.blob.core.windows.net" in vnet_page
    record, link = DnsRecord.objects.get(), VirtualNetworkLink.objects.get()
    assert owner.get(reverse("portal:dns_record_detail", args=[record.pk])).status_code == 302
    assert owner.get(reverse("portal:dns_link_detail", args=[link.pk])).status_code == 302
    assert owner.post(reverse("portal:dns_record_delete", args=[record.pk])).status_code == 302
    assert owner.post(reverse("portal:dns_link_delete", args=[link.pk])).status_code == 302
    assert not DnsRecord.objects.exists() and not VirtualNetworkLink.objects.exists()
    assert owner.post(reverse("portal:dns_zone_delete", args=[zone.pk]), {"confirm_name": zone.name}).status_code == 302
    assert not PrivateDnsZone.objects.exists()


def test_search_finds_vnets_and_zones(owner, lab, vnet):
    page = owner.get(reverse("portal:search") + f"?q={vnet.name}").content.decode()
    assert reverse("portal:vnet_detail", args=[vnet.pk]) in page
    assert "Virtual networks" in owner.get(reverse("portal:search") + "?q=virtual").content.decode()


def test_private_endpoints_are_connected_devices_with_their_ips(owner, lab, vnet):
    from portal.inventory.models import PrivateEndpoint

    subnet = vnet.subnets.get()
    # The endpoint's row as the vault-networking services make it (test setup: its own pages are elsewhere).
    PrivateEndpoint.objects.create(name="pe-devices", resource_group=lab.lab_group, region=lab.region, subnet=subnet,
                                   target_resource_id="/x", target_sub_resource="AzureBackup",
                                   ip_configurations=[{"fqdn": "a", "ip": "10.20.1.4"}, {"fqdn": "b", "ip": "10.20.1.5"}])
    page = owner.get(reverse("portal:vnet_detail", args=[vnet.pk])).content.decode()
    assert "pe-devices" in page and "10.20.1.4, 10.20.1.5" in page and "249" in page  # 251 usable - 2 in use
    delete_page = owner.get(reverse("portal:subnet_delete", args=[subnet.pk])).content.decode()
    assert "private endpoint &#x27;pe-devices&#x27;" in delete_page


def test_the_create_forms_offer_the_network(owner, lab, vnet):
    subnet = vnet.subnets.get()
    page = owner.get(reverse("portal:storage_account_create")).content.decode()
    assert "Public network" in page and f"{vnet.name} / snet-workload (10.20.1.0/24)" in page
    response = owner.post(reverse("portal:storage_account_create"), {
        "resource_group": lab.lab_group.pk, "name": "sanetcreate", "region": lab.region.pk, "sku": "Standard_LRS",
        "data": "new", "network_subnet": str(subnet.pk)})
    assert response.status_code == 302
    from portal.inventory.models import StorageAccount

    assert StorageAccount.objects.get(name="sanetcreate").network_subnet == subnet
    bad = owner.post(reverse("portal:elastic_san_create"), {
        "resource_group": lab.lab_group.pk, "name": "esan-netcreate", "region": lab.region.pk, "sku": "Premium_LRS",
        "base_size_tib": "1", "extended_capacity_size_tib": "0", "network_subnet": "2" + "0" * 25})
    assert bad.status_code == 400 and "network_subnet" in bad.context["form"].errors


def test_the_vnet_page_shows_only_the_zone_links_the_person_may_read(client, lab, vnet):
    """GIVEN a zone in the target group linked to the VNet WHEN someone who reads only the lab group opens the VNet
    THEN neither the zone nor its record is named; the trainer sees both."""
    from security import roles
    from security import services as security_services
    from security.models import RoleDefinition

    zone = services.create_private_dns_zone(lab.trainer, resource_group=lab.target_group, name="privatelink.secret.example")
    services.add_a_record(lab.trainer, zone, name="hidden", ip="10.20.1.9")
    services.add_vnet_link(lab.trainer, zone, name="link-secret", virtual_network=vnet)
    user = type(lab.trainer.user).objects.create_user(f"reader-{uuid.uuid4().hex[:6]}", password="x" * 12)
    reader = security_services.principal_for_user(user)
    security_services.assign_role(lab.trainer, assignee=reader, role=RoleDefinition.objects.get(name=roles.READER),
                                  scope=lab.lab_group.resource_id)
    client.force_login(user)
    response = client.get(reverse("portal:vnet_detail", args=[vnet.pk]))
    page = response.content.decode()
    assert response.status_code == 200 and vnet.name in page and "Private DNS zones linked" in page
    assert "privatelink.secret.example" not in page and "link-secret" not in page
    client.force_login(lab.trainer.user)
    page = client.get(reverse("portal:vnet_detail", args=[vnet.pk])).content.decode()
    assert "privatelink.secret.example</a>" in page and "hidden.privatelink.secret.example" in page
