"""The Networking blade and the Create a private endpoint wizard, through the test client."""

from __future__ import annotations

import pytest
from django.urls import reverse

from security import roles
from tests.conftest import WizardDriver
from tests.vaults._network_fixtures import make_vnet, network_requester
from vaults.models import PrivateEndpointConnection, PublicNetworkAccess
from vaults.models import PrivateEndpointConnectionState as State
from vaults.networking import guard
from vaults.networking import services as net

pytestmark = pytest.mark.django_db


@pytest.fixture
def subnet(lab):
    return make_vnet(lab, name="vnet-views")


class EndpointWizard(WizardDriver):
    def __init__(self, client, vault):
        self.client = client
        self.url = reverse("vaults:private_endpoint_create", args=[vault.pk])
        self.prefix = f"pe_create_{vault.pk}"
        self.response = client.get(self.url)
        assert self.response.status_code == 200


def test_public_access_tab_applies_deny(signed_in_client, trainer, vault):
    client = signed_in_client(trainer)
    url = reverse("vaults:vault_networking", args=[vault.pk])
    page = client.get(url)
    assert page.status_code == 200 and "Allow from all networks" in page.content.decode() and ">Networking<" in page.content.decode()
    response = client.post(url, {"public_network_access": "Disabled"})
    assert response.status_code == 302
    vault.refresh_from_db()
    assert vault.public_network_access == PublicNetworkAccess.DISABLED
    bad = client.post(url, {"public_network_access": "Maybe"})
    assert bad.status_code == 400 and "Choose Allow from all networks or Deny." in bad.content.decode()


def test_a_reader_sees_the_blade_but_cannot_apply(signed_in_client, principal_with, vault):
    reader = principal_with(roles.READER)
    client = signed_in_client(reader)
    url = reverse("vaults:vault_networking", args=[vault.pk])
    page = client.get(url).content.decode()
    assert 'id="apply-public-access"' not in page and "public-access-readonly" in page
    assert client.post(url, {"public_network_access": "Disabled"}).status_code == 403


def test_private_access_tab_lists_connections_with_dns_configuration(signed_in_client, trainer, vault, subnet):
    net.create_private_endpoint(trainer, name="pe-custom-dns", resource_group=subnet.virtual_network.resource_group,
                                vault=vault, subnet=subnet, integrate_dns=False, tags={})
    page = signed_in_client(trainer).get(reverse("vaults:vault_networking", args=[vault.pk]) + "?tab=private")
    html = page.content.decode()
    assert "pe-custom-dns" in html and "vnet-views" in html and "snet-workload" in html and "10.20.1.4" in html
    assert "AzureBackup" in html and "hosts-" in html and "not this endpoint" in html
    assert "10.20.1.4 " in html and "privatelink.blob.core.windows.net" in html


def test_wizard_creates_a_pending_endpoint_for_a_backup_contributor_and_the_owner_approves(
        lab, signed_in_client, trainer, vault, subnet, principal_with, client):
    person = network_requester(lab, principal_with, subnet)
    wizard = EndpointWizard(signed_in_client(person), vault)
    wizard.post(goto="review")  # nothing filled in: the tabs with errors are marked
    assert wizard.current == "basics" and "Enter a name for the private endpoint." in wizard.html
    wizard.post({"name": "pe-from-wizard", "subscription": lab.lab_subscription.pk,
                 "resource_group": subnet.virtual_network.resource_group.pk})
    assert wizard.current == "resource" and "AzureBackup" in wizard.html
    wizard.post({"group_id": "AzureBackup", "request_message": "Please approve"})
    assert wizard.current == "network" and "Dynamically allocate IP address" in wizard.html
    other = make_vnet(lab, name="vnet-other", prefix="10.80.0.0/16", subnet_prefix="10.80.1.0/24")
    wizard.post({"virtual_network": subnet.virtual_network.pk, "subnet": other.pk})
    assert wizard.current == "network" and "choose a subnet of &#x27;vnet-views&#x27;" in wizard.html
    wizard.post({"virtual_network": subnet.virtual_network.pk, "subnet": subnet.pk})
    assert wizard.current == "dns"
    wizard.post({"integrate_dns": "yes"}, goto="review")
    assert wizard.current == "review" and "Pending until an Owner or Contributor" in wizard.html
    response = wizard.post()
    assert response.status_code == 302
    connection = PrivateEndpointConnection.objects.get(vault=vault)
    assert connection.state == State.PENDING and connection.description == "Please approve"

    owner = signed_in_client(trainer)
    url = reverse("vaults:private_endpoint_connection_action", args=[vault.pk, connection.pk, "approve"])
    assert owner.get(url).status_code == 200
    too_long = owner.post(url, {"description": "x" * 141})
    assert too_long.status_code == 400
    assert owner.post(url, {"description": "OK"}).status_code == 302
    connection.refresh_from_db()
    assert connection.state == State.APPROVED
    assert owner.get(reverse("vaults:private_endpoint_connection_action", args=[vault.pk, connection.pk, "dance"])).status_code == 404


def test_wizard_shows_the_first_endpoint_rule_on_review_and_on_create(signed_in_client, trainer, vault, subnet):
    from vaults.services import mark_protection_attempted

    mark_protection_attempted(vault)
    wizard = EndpointWizard(signed_in_client(trainer), vault)
    wizard.post({"name": "pe-late", "subscription": subnet.virtual_network.resource_group.subscription_id,
                 "resource_group": subnet.virtual_network.resource_group.pk})
    wizard.post({"group_id": "AzureBackup"})
    wizard.post({"virtual_network": subnet.virtual_network.pk, "subnet": subnet.pk}, goto="review")
    assert guard.FIRST_ENDPOINT_CODE in wizard.html and "Create a new Backup vault" in wizard.html
    response = wizard.post()
    assert response.status_code == 200 and "Create failed" in response.content.decode()
    assert not PrivateEndpointConnection.objects.exists()
