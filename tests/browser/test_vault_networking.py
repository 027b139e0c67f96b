"""The private endpoint story in Chromium (issue 19): the vault owner denies public network access; the backup
admin's (a Backup Contributor's) Backup now fails with the network's reason; they create a private endpoint in
the datasource's VNet with the wizard (Pending: they cannot approve it); the owner approves it; the backup
succeeds; the owner removes the connection and the next backup fails again.

Set NETWORKING_SHOTS=/some/dir to keep screenshots of the blade and the wizard at 1440 and 1024 px.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import play, play_as, screenshots

pytestmark = [pytest.mark.browser, pytest.mark.celery]

shot = screenshots("NETWORKING_SHOTS")


@pytest.fixture
def network_lab(seeded_lab, worker):
    """The seeded lab's inventory and vault, with a first private endpoint in a hub VNet made before anything
    is protected (a vault's first endpoint needs that), then protection; the source account reaches the vault
    from a workload VNet that has no endpoint yet, and the backup admin may create endpoints there (Network
    Contributor on the lab resource group)."""
    import secrets

    from portal.inventory import postgres
    from portal.inventory.lab import seed_inventory
    from protection import datasource_types
    from protection.lab import seed_protection
    from security import roles
    from tests.browser.conftest import local_postgres
    from tests.vaults._network_fixtures import grant, make_vnet
    from vaults.lab import seed_vaults
    from vaults.networking import services as net

    params = local_postgres()
    lab = seeded_lab
    inventory = seed_inventory(lab, sample_database_name=f"sr_browser_{secrets.token_hex(3)}")
    vault = seed_vaults(lab)
    hub = make_vnet(lab, name="vnet-hub", prefix="10.10.0.0/16", subnet_prefix="10.10.1.0/24")
    net.create_private_endpoint(lab.trainer, name="pe-hub", resource_group=lab.lab_group, vault=vault, subnet=hub,
                                integrate_dns=True, tags={})
    instances = {i.datasource_type: i for i in seed_protection(lab)}
    workload = make_vnet(lab, name="vnet-workload", prefix="10.20.0.0/16", subnet_prefix="10.20.1.0/24")
    instance = instances[datasource_types.ADLS]
    from portal.inventory.models import StorageAccount

    StorageAccount.objects.filter(resource_id__iexact=instance.datasource_resource_id).update(network_subnet=workload)
    admin = lab.personas["backup-admin"].principal
    grant(lab, admin, roles.NETWORK_CONTRIBUTOR, lab.lab_group.resource_id)
    yield {"lab": lab, "vault": vault, "instance": instance, "workload": workload}
    postgres.drop_database(params, inventory.sample_database.name)


@pytest.fixture
def resolver():
    """A DNS responder of this test's own (port 0: a free one), as `make run` starts one."""
    from portal.inventory import dns_server

    responder, stop, thread = dns_server.start_in_thread(0, refresh=0.05)
    yield responder
    stop.set()
    thread.join(10)


def _dig(responder, vnet, name) -> list[str]:
    """``dig @<the VNet's resolver> -p <port> <name>``: the A addresses answered."""
    import dns.message
    import dns.query
    import dns.rdatatype

    from tests.conftest import wait_until

    host, port = wait_until(lambda: responder.address_of(vnet), 10, "the VNet's resolver", every=0.02)
    reply = dns.query.udp(dns.message.make_query(name, "A"), host, port=port, timeout=5)
    return [r.address for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A for r in rrset]


def _networking(page, live_server, vault, tab="public"):
    page.goto(f"{live_server.url}/vaults/{vault.pk}/networking/?tab={tab}")
    expect(page.locator("#tab-" + tab)).to_have_attribute("aria-current", "page")


def _both_widths(page, name):
    for width in (1440, 1024):
        page.set_viewport_size({"width": width, "height": 900})
        shot(page, f"{name}-{width}")
    page.set_viewport_size({"width": 1400, "height": 900})


def _backup_now(page, live_server, instance):
    page.goto(f"{live_server.url}/backup/instances/{instance.pk}/")
    page.locator("#backup-now").click()
    pane = page.locator("#backup-now-pane")
    expect(pane).to_be_visible()
    return pane


def test_deny_public_access_then_a_pending_endpoint_approved_lets_backups_through(page, live_server, network_lab,
                                                                                   resolver):
    from portal.inventory.models import PrivateEndpoint
    from vaults.networking.names import data_fqdn

    vault, instance = network_lab["vault"], network_lab["instance"]
    workload_vnet = network_lab["workload"].virtual_network
    vault_name = data_fqdn(vault)
    public = _dig(resolver, workload_vnet, vault_name)
    assert len(public) == 1 and public[0].startswith("203.0.113."), public  # no endpoint: the public answer

    # The owner (the trainer, Owner at the root) denies public network access.
    play_as(page, live_server, "Backup admin")
    play(page, None)
    _networking(page, live_server, vault)
    _both_widths(page, "public-access")
    page.get_by_label("Deny").check()
    page.locator("#apply-public-access").click()
    expect(page.locator("#public-access-state")).to_have_text("Deny")

    # The backup admin's Backup now fails with the network's reason.
    play(page, "Backup admin")
    pane = _backup_now(page, live_server, instance)
    expect(pane.locator("#backup-now-preview")).to_contain_text("vnet-workload")
    pane.get_by_role("button", name="Backup now").click()
    errors = page.locator("#backup-now-errors")
    expect(errors).to_contain_text("PrivateEndpointNotApproved")
    expect(errors).to_contain_text("vnet-workload")
    expect(errors).to_contain_text(vault.name)
    shot(page, "backup-now-refused")

    # They create a private endpoint in the workload VNet with the wizard: Pending.
    _networking(page, live_server, vault, "private")
    _both_widths(page, "private-access-before")
    page.locator("#create-private-endpoint").click()
    expect(page.get_by_role("heading", name="Create a private endpoint")).to_be_visible()
    page.locator(".wizard-actions").get_by_role("button", name="Review + create").click()
    expect(page.locator("#wizard-validation")).to_contain_text("Validation failed")
    expect(page.locator(".errorlist")).to_contain_text("Enter a name for the private endpoint.")
    _both_widths(page, "wizard-basics-errors")
    page.get_by_label("Name", exact=True).fill("pe-workload")
    page.get_by_label("Resource group").select_option(label="rg-backup-lab")
    page.get_by_role("button", name="Next: Resource >").click()
    expect(page.get_by_label("AzureBackup — the vault")).to_be_checked()
    page.get_by_label("Request message").fill("Backups of vnet-workload")
    _both_widths(page, "wizard-resource")
    page.get_by_role("button", name="Next: Virtual Network >").click()
    workload = network_lab["workload"]
    page.get_by_label("Virtual network").select_option(value=str(workload.virtual_network.pk))
    page.get_by_label("Subnet").select_option(value=str(workload.pk))
    expect(page.locator("#field-network-subnet")).to_contain_text("Dynamically allocate IP address")
    _both_widths(page, "wizard-network")
    page.get_by_role("button", name="Next: DNS >").click()
    expect(page.get_by_label("Yes")).to_be_checked()
    _both_widths(page, "wizard-dns")
    page.locator(".wizard-actions").get_by_role("button", name="Review + create").click()
    expect(page.locator(".wizard-body")).to_contain_text("Pending until an Owner or Contributor")
    _both_widths(page, "wizard-review")
    page.locator("#wizard-submit").click()
    row = page.locator("#pe-connections tr[data-state]", has_text="pe-workload")
    expect(row.locator("[data-connection-state]")).to_have_text("Pending")
    expect(row).not_to_contain_text("Approve")  # they cannot approve it themselves

    # The owner approves it (with a description).
    play(page, None)
    _networking(page, live_server, vault, "private")
    row = page.locator("#pe-connections tr[data-state]", has_text="pe-workload")
    row.get_by_role("link", name="Approve").click()
    page.get_by_label("Description").fill("Approved for the workload backups")
    page.locator("#confirm-decision").click()
    row = page.locator("#pe-connections tr[data-state]", has_text="pe-workload")
    expect(row.locator("[data-connection-state]")).to_have_text("Approved")
    # dig @<vnet-workload's resolver> <the vault's name>: the endpoint's private IP now.
    endpoint = PrivateEndpoint.objects.get(name="pe-workload")
    private = _dig(resolver, workload_vnet, vault_name)
    assert len(private) == 1 and private[0] in endpoint.private_ips, (private, endpoint.private_ips)
    page.locator("#pe-connections details summary").last.click()
    expect(page.locator("#pe-connections details").last).to_contain_text("this endpoint")
    _both_widths(page, "private-access-approved")

    # The backup goes through now.
    play(page, "Backup admin")
    pane = _backup_now(page, live_server, instance)
    pane.get_by_role("button", name="Backup now").click()
    expect(page.locator("#job-status")).to_have_text("Completed", timeout=120_000)

    # The owner removes the connection: the next backup fails again.
    play(page, None)
    _networking(page, live_server, vault, "private")
    row = page.locator("#pe-connections tr[data-state]", has_text="pe-workload")
    row.get_by_role("link", name="Remove").click()
    page.get_by_label("Description").fill("Moving the workload")
    page.locator("#confirm-decision").click()
    expect(page.locator("#pe-connections")).not_to_contain_text("pe-workload")
    assert _dig(resolver, workload_vnet, vault_name) == public  # its records went with it
    play(page, "Backup admin")
    pane = _backup_now(page, live_server, instance)
    pane.get_by_role("button", name="Backup now").click()
    expect(page.locator("#backup-now-errors")).to_contain_text("PrivateEndpointNotApproved")


def test_an_endpoint_page_and_its_deletion_leave_the_vault_connection_disconnected(page, live_server, network_lab):
    """The owner opens Private endpoints, the hub endpoint's page (Approved, its IPs), deletes it by typing its name;
    the vault's Private access tab then shows its connection Disconnected."""
    vault = network_lab["vault"]
    play_as(page, live_server, "Backup admin")
    play(page, None)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Private endpoints").click()
    page.get_by_role("link", name="pe-hub").click()
    expect(page.locator("main")).to_contain_text("Approved")
    expect(page.locator("main")).to_contain_text("10.10.1.4")
    _both_widths(page, "private-endpoint-detail")
    page.get_by_role("link", name="Delete").first.click()
    page.get_by_label("Type the private endpoint name to confirm").fill("pe-hub")
    _both_widths(page, "private-endpoint-delete")
    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_text("Deleted private endpoint 'pe-hub'.")).to_be_visible()
    expect(page.get_by_role("link", name="pe-hub")).to_have_count(0)
    _networking(page, live_server, vault, "private")
    row = page.locator("#pe-connections tr[data-state]", has_text="pe-hub")
    expect(row.locator("[data-connection-state]")).to_have_text("Disconnected")
    _both_widths(page, "private-access-disconnected")
