"""The activity log's tamper evidence in Chromium: the Owner opens the Activity log, clicks Verify now and
sees the chain verified; someone with rights on the database edits an entry behind Strongroom's back (the
trigger off, as such an attacker would); Verify now names the broken entry and the alert is raised."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import screenshots, sign_in
from tests.security.test_activity_chain import TABLE, tamper

pytestmark = pytest.mark.browser
shot = screenshots("CHAIN_SHOTS")


def test_verify_now_then_an_edited_entry_is_found(page, live_server, seeded_lab):
    from security.models import ActivityLogEntry, Alert

    sign_in(page, live_server, "trainer")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Activity log").click()
    expect(page.locator("#chain-state")).to_be_visible()
    page.locator("#verify-chain").click()
    expect(page.locator(".messages")).to_contain_text("the chain is unbroken")
    expect(page.locator("#chain-state")).to_contain_text("Verified")
    shot(page, "activity-log-verified")

    victim = ActivityLogEntry.objects.order_by("sequence")[3]
    tamper(f"UPDATE {TABLE} SET message = %s WHERE id = %s", ["nothing to see here", victim.pk])
    page.locator("#verify-chain").click()
    expect(page.locator(".messages")).to_contain_text(re.compile(rf"broken at entry #{victim.sequence}"))
    expect(page.locator("#chain-state")).to_contain_text("Broken")
    shot(page, "activity-log-broken")
    assert Alert.objects.filter(name="Activity log tampered").count() == 1
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Alerts").click()
    expect(page.get_by_text("Activity log tampered").first).to_be_visible()
    finding = ActivityLogEntry.objects.filter(operation="Strongroom.ActivityLog/verify/action", status="Failed").get()
    assert finding.caller == "Strongroom system"  # the system's finding, not a role-play of it
