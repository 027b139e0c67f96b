"""Networks in the browser: the trainer creates a virtual network with a first subnet (after a range outside
its address space is refused beside the field), puts a storage account in the subnet from the account's
Networking setting, and reads the VNet's DNS resolver line; the line's ``dig`` asks a real responder, which
answers. Set NETWORK_SHOTS=/some/dir to keep the pages at 1440 and 1024 px."""

from __future__ import annotations

import dns.message
import dns.query
import dns.rdatatype
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import screenshots, sign_in

pytestmark = pytest.mark.browser

_shot = screenshots("NETWORK_SHOTS")
WIDTHS = (1440, 1024)


def shot(page, name):
    """Both widths; at 1024 px no page may scroll sideways."""
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        _shot(page, f"{width}-{name}")
        assert page.evaluate("document.scrollingElement.scrollWidth") <= width, f"{name} scrolls sideways at {width}"
    page.set_viewport_size({"width": 1400, "height": 900})


def test_a_vnet_with_a_subnet_a_storage_account_in_it_and_the_resolver_line(page, live_server, seeded_lab, settings):
    from portal.inventory import dns as names
    from portal.inventory import dns_server
    from portal.inventory import services as inv
    from portal.inventory.models import StorageAccount, VirtualNetwork

    lab = seeded_lab
    account = inv.create_storage_account(lab.trainer, resource_group=lab.lab_group, name="sanetbrowser",
                                         region=lab.region)
    responder, stop, thread = dns_server.start_in_thread(0, refresh=0.05)
    try:
        sign_in(page, live_server, "trainer")
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Virtual networks").click()
        expect(page.get_by_text("No virtual networks to show")).to_be_visible()
        shot(page, "vnet-list-empty")
        page.get_by_role("link", name="Create virtual network").click()
        page.get_by_label("Virtual network name").fill("vnet-browser")
        page.get_by_label("IPv4 address space").fill("10.40.0.0/16")
        page.get_by_label("Subnet name").fill("snet-workload")
        page.get_by_label("Subnet address range").fill("10.41.1.0/24")
        page.get_by_role("button", name="Review + create").click()
        expect(page.get_by_role("alert")).to_contain_text("is not inside the virtual network's address space")
        shot(page, "vnet-create-error")
        page.get_by_label("Subnet address range").fill("10.40.1.0/24")
        page.get_by_role("button", name="Review + create").click()
        expect(page.get_by_text("Virtual network 'vnet-browser' created.")).to_be_visible()
        vnet = VirtualNetwork.objects.get(name="vnet-browser")

        page.goto(f"{live_server.url}/storage-accounts/{account.pk}/")
        networking = page.locator("#networking")
        expect(networking).to_contain_text("Public network")
        networking.get_by_role("link", name="Change network").click()
        page.get_by_label("Network").select_option(label="vnet-browser / snet-workload (10.40.1.0/24)")
        shot(page, "storage-networking")
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_text("'sanetbrowser' now reaches Backup vaults from subnet")).to_be_visible()
        expect(page.locator("#networking")).to_contain_text("vnet-browser")
        assert StorageAccount.objects.get(pk=account.pk).network_subnet.name == "snet-workload"
        shot(page, "storage-account-in-subnet")

        page.locator("#networking").get_by_role("link", name="vnet-browser").click()
        expect(page.get_by_role("heading", name="vnet-browser")).to_be_visible()
        expect(page.locator("#devices")).to_be_visible()
        expect(page.get_by_role("cell", name="sanetbrowser")).to_be_visible()
        line = page.locator("#dig-line").inner_text()
        address = names.resolver_address(vnet)
        assert line == f"dig @{address} -p {settings.STRONGROOM_DNS_PORT} sanetbrowser.blob.core.windows.net", line
        shot(page, "vnet-detail")

        # The line's question, asked of a real responder (on a port of this test's own).
        from tests.conftest import wait_until

        host, bound = wait_until(lambda: responder.address_of(vnet), 10, "the VNet's resolver", every=0.02)
        assert host == address
        reply = dns.query.udp(dns.message.make_query(line.split()[-1], "A"), host, port=bound, timeout=5)
        addresses = [r.address for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A for r in rrset]
        assert len(addresses) == 1 and addresses[0].startswith("203.0.113.")  # the public answer: no zone yet

        # A private DNS zone with the account's record, linked to the VNet: the same question, the private answer.
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Private DNS zones").click()
        page.get_by_role("link", name="Create private DNS zone").click()
        page.get_by_label("Name").fill("privatelink.blob.core.windows.net")
        page.get_by_role("button", name="Review + create").click()
        expect(page.get_by_text("Private DNS zone 'privatelink.blob.core.windows.net' created.")).to_be_visible()
        page.get_by_role("toolbar").get_by_role("link", name="+ Record set").click()
        page.get_by_label("Name").fill("sanetbrowser")
        page.get_by_label("IP address").fill("10.40.1.999")
        page.get_by_role("button", name="OK").click()
        expect(page.get_by_role("alert")).to_contain_text("not an IPv4 address")
        page.get_by_label("IP address").fill("10.40.1.4")
        page.get_by_role("button", name="OK").click()
        page.get_by_role("toolbar").get_by_role("link", name="+ Virtual network link").click()
        page.get_by_label("Link name").fill("link-browser")
        page.get_by_role("combobox", name="Virtual network").select_option(label="vnet-browser (rg-backup-lab)")
        page.get_by_role("button", name="OK").click()
        expect(page.get_by_text("Virtual network link 'link-browser' to 'vnet-browser' added.")).to_be_visible()
        expect(page.locator("#records")).to_be_visible()
        shot(page, "dns-zone-detail")
        reply = dns.query.udp(dns.message.make_query(line.split()[-1], "A"), host, port=bound, timeout=5)
        addresses = [r.address for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A for r in rrset]
        assert addresses == ["10.40.1.4"]
    finally:
        stop.set()
        thread.join(10)
