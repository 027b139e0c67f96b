"""Elastic SAN in the browser: create an Elastic SAN, a volume group and a volume, write sample data
and read the volume's checksum. The jobs the page queues are run here, as a worker would run them."""

from __future__ import annotations

import os

import pytest
from playwright.sync_api import expect

from tests._image_checksum import content_checksum_of_file
from tests.browser.conftest import at_widths, screenshots, sign_in

pytestmark = pytest.mark.browser
shot = screenshots("VOLUME_SHOTS")


def test_write_sample_data_on_a_volume_and_read_its_checksum(page, live_server, seeded_lab, monkeypatch):
    """GIVEN a signed-in trainer
    WHEN they create an Elastic SAN, a volume group and a 1 GiB volume, then start "Write sample data"
    and "Compute checksum"
    THEN the page shows each job queued, then succeeded (polling), the allocated size growing, and
    the checksum of the real image file."""
    from portal.inventory import tasks
    from portal.inventory.models import Volume

    queued = []
    monkeypatch.setattr(tasks.run_volume_job, "delay", lambda *args: queued.append(args))
    sign_in(page, live_server, "trainer")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Elastic SANs").click()
    page.get_by_role("link", name="Create Elastic SAN").click()
    page.get_by_label("Elastic SAN name").fill("esan-browser")
    page.get_by_role("button", name="Review + create").click()
    expect(page.get_by_text("No volume groups yet")).to_be_visible()
    page.get_by_role("link", name="+ Volume group").first.click()
    page.get_by_label("Name").fill("vg-browser")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_text("No volumes in this group")).to_be_visible()
    page.get_by_role("link", name="+ Create volume").first.click()
    page.get_by_label("Name").fill("vol-browser")
    page.get_by_label("Size (GiB)").fill("1")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", name="vol-browser")).to_be_visible()
    volume = Volume.objects.get(name="vol-browser")
    assert os.stat(volume.image_path).st_blocks * 512 < 1 << 20  # sparse

    page.get_by_role("button", name="Write sample data").click()
    status = page.locator("#volume-data")
    expect(status).to_contain_text("Queued")
    expect(page.get_by_role("button", name="Write sample data")).to_be_disabled()
    assert len(queued) == 1
    tasks.run_volume_job(*queued[0])  # the worker's part
    expect(status).to_contain_text("Succeeded", timeout=15_000)  # the page polls and notices
    expect(status.get_by_test_id("allocated")).to_contain_text("MB of 1 GiB")

    page.get_by_role("button", name="Compute checksum").click()
    expect(status).to_contain_text("Queued")
    tasks.run_volume_job(*queued[1])
    expected = content_checksum_of_file(volume.image_path)
    expect(status.get_by_test_id("checksum")).to_have_text(expected, timeout=15_000)
    expect(status).to_contain_text("Computed")
    at_widths(page, shot, "volume-page")  # the long checksum wraps inside its tile
    page.get_by_role("link", name="vg-browser").first.click()
    expect(page.get_by_role("cell", name="blocks-sha256:", exact=False)).to_be_visible()
    at_widths(page, shot, "volume-group")  # the list shows the checksum's start

    # A snapshot of the volume (a recovery point in the snapshot resource group) shows it whole too
    from django.urls import reverse

    from portal.inventory import services

    snapshot = services.create_snapshot(seeded_lab.trainer, volume, resource_group=seeded_lab.target_group,
                                        name="AzureBackup_browser_20261206T000000Z", checksum=expected)
    page.goto(live_server.url + reverse("portal:snapshot_detail", args=[snapshot.pk]))
    expect(page.locator("dd.checksum")).to_have_text(expected)
    at_widths(page, shot, "snapshot-page")
