"""An hourly Azure Disk policy in Chromium (reference §5.3): the trainer (Owner) opens Create Backup Policy,
picks Azure Disk, and on the "Backup policy" tab sets every 4 hours from 08:00 with Default 7 days and a
"first successful backup taken daily" rule of 30 days; every hour would keep 720 snapshots and is refused
with what fits; the policy is created and its page shows the schedule in words.

Set DISK_SHOTS=/some/dir to keep the Backup policy tab at 1440 and 1024 px (docs/screenshots/
disk-policy-hourly.png is the 1440 px one)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import screenshots, sign_in

pytestmark = pytest.mark.browser

_shot = screenshots("DISK_SHOTS")
WIDTHS = (1440, 1024)


def shot(page, name):
    """Both widths; at neither may the page scroll sideways."""
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        _shot(page, f"{name}-{width}")
        assert page.evaluate("document.scrollingElement.scrollWidth") <= width, f"{name} scrolls sideways at {width}"
    page.set_viewport_size({"width": 1400, "height": 900})


def test_an_hourly_disk_policy_in_the_wizard(page, live_server, lab_vault):
    from protection import datasource_types
    from protection.models import BackupPolicy

    sign_in(page, live_server, "trainer")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Protection policies").click()
    page.locator("#create-policy").click()
    expect(page.get_by_role("heading", name="Create Backup Policy")).to_be_visible()
    page.get_by_label("Policy name").fill("disk-every-4h")
    page.get_by_label("Azure Disk", exact=True).check()
    page.get_by_label("Vault", exact=True).select_option(value=str(lab_vault.pk))
    page.locator(".wizard-actions").get_by_role("button", name=re.compile(r"^Next: ")).click()  # titled before the type is posted
    expect(page.locator(".wizard-tabs [aria-current=step]")).to_have_text("Backup policy")
    expect(page.get_by_label("Hourly")).to_be_checked()
    expect(page.get_by_label("Every", exact=True)).to_have_value("4")
    expect(page.get_by_label("Start time (UTC)")).to_have_value("08:00")
    expect(page.locator(".notes")).to_contain_text("Premium SSD v2 and Ultra disks can be backed up every 12 hours")

    # Every 4 hours, Default 7 days, and the first successful backup taken daily kept 30 days.
    page.get_by_label("Default retention", exact=True).fill("7")
    page.get_by_text("+ Add retention rule").click()
    page.get_by_label("First successful backup taken daily").check()
    page.get_by_label("Daily retention", exact=True).fill("30")
    expect(page.get_by_label("Monthly retention", exact=True)).to_have_count(0)
    shot(page, "disk-policy-hourly")

    # Every hour for 30 days would keep 720 snapshots: refused, saying what fits.
    page.get_by_label("Every", exact=True).select_option("1")
    page.get_by_label("Default retention", exact=True).fill("30")
    page.locator(".wizard-actions").get_by_role("button", name="Review + create", exact=True).click()
    errors = page.locator(".form-errors")
    expect(errors).to_contain_text("could keep up to 720 recovery points at once")
    expect(errors).to_contain_text("Azure Disk allows at most 450 across all rules")
    expect(errors).to_contain_text("keep them at most 18 days")
    expect(page.get_by_label("First successful backup taken daily")).to_be_checked()  # the added rule stays shown
    page.get_by_label("Every", exact=True).select_option("4")
    page.get_by_label("Default retention", exact=True).fill("7")
    page.locator(".wizard-actions").get_by_role("button", name="Review + create", exact=True).click()
    expect(page.locator("#wizard-validation")).to_contain_text("Validation passed")
    expect(page.locator(".wizard-body")).to_contain_text("every 4 hours from 08:00 (UTC)")
    page.get_by_role("button", name="Create", exact=True).click()

    expect(page.get_by_role("heading", name="disk-every-4h")).to_be_visible()
    summary = page.locator("#policy-summary")
    expect(summary).to_contain_text("Backup: every 4 hours from 08:00 (UTC)")
    expect(summary).to_contain_text("Retention Daily (first successful backup of each day): 30 days")
    expect(summary).to_contain_text("Retention Default (every other backup): 7 days")
    expect(summary).to_contain_text("of 450 recovery points are kept at any time")
    expect(page.locator("#essentials")).to_contain_text("Azure Disk")
    policy = BackupPolicy.objects.get(name="disk-every-4h")
    assert policy.datasource_type == datasource_types.AZURE_DISK
    assert policy.parsed.intervals[0].iso().endswith("T08:00:00+00:00/PT4H")
    shot(page, "disk-policy-detail")
