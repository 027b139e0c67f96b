"""Private endpoints as inventory resources: the guarded delete (portal's service, the vault's connection left
Disconnected, its A records gone, the subnet free again), their pages (list, detail, delete), search, and a
deleted vault leaving its endpoint Disconnected."""

from __future__ import annotations

import uuid

import pytest
from django.urls import reverse

from portal import resources
from portal.inventory import services as inventory
from portal.inventory.models import DnsRecord, PrivateEndpoint, Subnet
from security import operations as ops
from security import roles
from security.guards import GuardDenied
from security.models import ActivityLogEntry
from tests.vaults._network_fixtures import make_vnet
from vaults import services as vault_services
from vaults.models import PrivateEndpointConnection
from vaults.models import PrivateEndpointConnectionState as State
from vaults.networking import names
from vaults.networking import services as net

pytestmark = pytest.mark.django_db


@pytest.fixture
def subnet(lab):
    return make_vnet(lab)


@pytest.fixture
def connection(trainer, vault, subnet):
    return net.create_private_endpoint(trainer, name=f"pe-{uuid.uuid4().hex[:6]}",
                                       resource_group=subnet.virtual_network.resource_group, vault=vault,
                                       group_id=names.PRIMARY, subnet=subnet, integrate_dns=True, tags={},
                                       request_message="")


@pytest.fixture
def owner(client, trainer):
    client.force_login(trainer.user)
    return client


def test_the_inventory_delete_disconnects_removes_records_and_frees_the_subnet(trainer, connection, subnet):
    endpoint = connection.private_endpoint
    assert connection.state == State.APPROVED and DnsRecord.objects.filter(private_endpoint=endpoint).count() == 10

    disconnected = inventory.delete_private_endpoint(trainer, endpoint)

    assert disconnected == [connection.name]
    connection.refresh_from_db()
    assert connection.state == State.DISCONNECTED and connection.private_endpoint is None
    assert not PrivateEndpoint.objects.filter(pk=endpoint.pk).exists()
    assert not DnsRecord.objects.filter(name__icontains=str(connection.vault.uuid)).exists()
    entry = ActivityLogEntry.objects.filter(operation=ops.PRIVATE_ENDPOINT_DELETE, status="Succeeded").latest("pk")
    assert entry.details["dnsRecordsDeleted"] == 10 and entry.details["connectionsDisconnected"] == [connection.name]
    inventory.delete_subnet(trainer, subnet)  # nothing holds it any more
    assert not Subnet.objects.filter(pk=subnet.pk).exists()


def test_the_vaults_delete_is_the_same_service(trainer, connection):
    net.delete_private_endpoint(trainer, connection.private_endpoint)
    connection.refresh_from_db()
    assert connection.state == State.DISCONNECTED
    assert ActivityLogEntry.objects.filter(operation=ops.PRIVATE_ENDPOINT_DELETE, status="Succeeded").count() == 1


def test_a_reader_is_refused(connection, principal_with):
    reader = principal_with(roles.READER)
    with pytest.raises(GuardDenied):
        inventory.delete_private_endpoint(reader, connection.private_endpoint)
    connection.refresh_from_db()
    assert connection.state == State.APPROVED and connection.private_endpoint is not None


def test_it_is_a_resource_type_found_by_search_and_resource_ids(owner, connection):
    endpoint = connection.private_endpoint
    assert resources.label_of(endpoint.resource_id) == "Private endpoint"
    assert resources.url_of(endpoint.resource_id) == reverse("portal:private_endpoint_detail", args=[endpoint.pk])
    page = owner.get(reverse("portal:search") + f"?q={endpoint.name}").content.decode()
    assert reverse("portal:private_endpoint_detail", args=[endpoint.pk]) in page
    assert "Private endpoints" in owner.get(reverse("portal:search") + "?q=private endpoint").content.decode()
    group = owner.get(reverse("portal:resource_group_detail", args=[endpoint.resource_group.pk])).content.decode()
    assert endpoint.name in group
    iam = owner.get(reverse("portal:iam") + f"?scope={endpoint.resource_id}")
    assert iam.status_code == 200 and endpoint.name in iam.content.decode()


def test_list_detail_and_delete_pages(owner, connection, vault, subnet):
    endpoint = connection.private_endpoint
    listing = owner.get(reverse("portal:private_endpoint_list")).content.decode()
    assert endpoint.name in listing and reverse("portal:private_endpoint_detail", args=[endpoint.pk]) in listing

    detail = owner.get(reverse("portal:private_endpoint_detail", args=[endpoint.pk])).content.decode()
    assert "Approved" in detail and names.PRIMARY in detail
    assert reverse("vaults:vault_detail", args=[vault.pk]) in detail  # the target, linked
    assert reverse("portal:subnet_detail", args=[subnet.pk]) in detail
    first = endpoint.ip_configurations[0]
    assert first["fqdn"] in detail and first["ip"] in detail

    networking = owner.get(reverse("vaults:vault_networking", args=[vault.pk]) + "?tab=private").content.decode()
    assert reverse("portal:private_endpoint_detail", args=[endpoint.pk]) in networking

    url = reverse("portal:private_endpoint_delete", args=[endpoint.pk])
    assert endpoint.name in owner.get(url).content.decode()
    wrong = owner.post(url, {"confirm_name": "not-it"})
    assert wrong.status_code == 400 and PrivateEndpoint.objects.filter(pk=endpoint.pk).exists()
    assert owner.post(url, {}).status_code == 400
    done = owner.post(url, {"confirm_name": endpoint.name})
    assert done.status_code == 302 and done.url == reverse("portal:private_endpoint_list")
    assert not PrivateEndpoint.objects.filter(pk=endpoint.pk).exists()
    connection.refresh_from_db()
    assert connection.state == State.DISCONNECTED
    assert owner.get(reverse("portal:private_endpoint_detail", args=[endpoint.pk])).status_code == 404
    assert owner.get(reverse("portal:private_endpoint_list")).status_code == 200


def test_a_reader_sees_the_pages_and_is_refused_the_delete(client, connection, principal_with):
    endpoint = connection.private_endpoint
    client.force_login(principal_with(roles.READER).user)
    assert client.get(reverse("portal:private_endpoint_detail", args=[endpoint.pk])).status_code == 200
    url = reverse("portal:private_endpoint_delete", args=[endpoint.pk])
    assert client.post(url, {"confirm_name": endpoint.name}).status_code == 403
    assert PrivateEndpoint.objects.filter(pk=endpoint.pk).exists()


def test_an_outsider_finds_nothing(client, connection, principal_with):
    endpoint = connection.private_endpoint
    client.force_login(principal_with(None).user)
    assert client.get(reverse("portal:private_endpoint_detail", args=[endpoint.pk])).status_code == 404
    assert client.post(reverse("portal:private_endpoint_delete", args=[endpoint.pk]),
                       {"confirm_name": endpoint.name}).status_code == 404
    assert endpoint.name not in client.get(reverse("portal:private_endpoint_list")).content.decode()


def test_a_deleted_vault_leaves_its_endpoint_disconnected(owner, trainer, vault, connection):
    endpoint = connection.private_endpoint
    vault_services.delete_vault(trainer, vault)
    assert not PrivateEndpointConnection.objects.filter(pk=connection.pk).exists()
    assert PrivateEndpoint.objects.filter(pk=endpoint.pk).exists()
    detail = owner.get(reverse("portal:private_endpoint_detail", args=[endpoint.pk])).content.decode()
    assert "Disconnected" in detail and reverse("vaults:vault_detail", args=[vault.pk]) not in detail
    inventory.delete_private_endpoint(trainer, endpoint)
    assert not PrivateEndpoint.objects.filter(pk=endpoint.pk).exists()
