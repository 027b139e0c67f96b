"""The multi-user authorization story in one browser, role-played by the trainer (issue 10).

GIVEN the lab (Resource Guard "rg-guard-contoso" owned and approved by the security admin, Reader on it
for the backup admin, an unlinked vault "bv-contoso-mua") WHEN the backup admin links the guard, tries
to remove MUA protection, requests access, the security admin approves, the backup admin tries again,
and the trainer moves the lab clock past the grant's end THEN each step shows in the pages as it should:
refused with Request access, pending, approved, allowed, expired and refused again.

Set MUA_SHOTS=/some/dir to keep a screenshot of every page the story passes through.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import play, sign_in

pytestmark = pytest.mark.browser

SHOTS = os.environ.get("MUA_SHOTS")


def shot(page, name):
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


@pytest.fixture
def mua_lab(seeded_lab):
    from portal.mua_lab import seed_mua
    from vaults.mua import seed_mua_vault

    guard = seed_mua(seeded_lab)
    vault = seed_mua_vault(seeded_lab)
    return seeded_lab, guard, vault


def open_mua_blade(page):
    nav = page.get_by_role("navigation", name="Main")
    nav.get_by_role("link", name="Backup vaults").click()
    page.get_by_role("link", name="bv-contoso-mua").click()
    page.get_by_role("navigation", name="Resource menu").get_by_role("link", name="Properties").click()
    page.locator("#update-mua").click()
    expect(page.get_by_role("heading", name="Multi-user authorization")).to_be_visible()


def try_to_unlink(page):
    open_mua_blade(page)
    page.get_by_label("Protect with Resource Guard").uncheck()
    page.get_by_role("button", name="Save").click()


def test_blocked_request_approve_use_expire(page, live_server, mua_lab):
    from security.models import AccessRequest, ActivityLogEntry, ResourceGuardProxy
    from security import mua

    lab, guard, vault = mua_lab
    sign_in(page, live_server, "trainer")
    play(page, "Backup admin")

    # 1. Link the guard: allowed, linking only adds protection.
    open_mua_blade(page)
    page.get_by_label("rg-guard-contoso (rg-security)").check()
    shot(page, "01-link")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".message-success")).to_contain_text("now protected by the Resource Guard 'rg-guard-contoso'")
    expect(page.locator("#mua-card")).to_contain_text("Protected by a Resource Guard")
    assert ResourceGuardProxy.objects.filter(guard=guard).count() == 1

    # 2. Remove MUA protection: refused by the guard, with the preview saying so before the click.
    open_mua_blade(page)
    expect(page.locator("#unlink-preview")).to_contain_text("would be refused for you")
    shot(page, "02-unlink-preview")
    page.get_by_label("Protect with Resource Guard").uncheck()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name="You don't have permission to do this")).to_be_visible()
    expect(page.locator(".azure-message")).to_contain_text("protected by the Resource Guard 'rg-guard-contoso'")
    expect(page.locator(".azure-message")).to_contain_text("'Remove MUA protection'")
    expect(page.locator("#mua-offer")).to_be_visible()
    shot(page, "03-refused")

    # 3. Request access for one hour.
    page.locator("#request-access").click()
    expect(page.get_by_role("heading", name="Request access")).to_be_visible()
    expect(page.locator("#request-access-form")).to_contain_text("Remove MUA protection on bv-contoso-mua")
    page.get_by_label("Justification").fill("Drill: remove MUA from bv-contoso-mua")
    page.get_by_label("Duration").select_option("1")
    shot(page, "04-request")
    page.get_by_role("button", name="Request access").click()
    expect(page.locator(".message-success")).to_contain_text("sent for approval to Sam Security")
    expect(page.locator("#my-requests tbody tr").first).to_contain_text("Pending approval")

    # 4. The security admin approves in Approvals.
    play(page, "Security admin")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Approvals").click()
    row = page.locator("#pending-approvals tbody tr", has_text="Ben Admin")
    expect(row).to_contain_text("Drill: remove MUA from bv-contoso-mua")
    expect(row).to_contain_text("for Remove MUA protection")
    shot(page, "05-approvals")
    row.get_by_label("Comment for Ben Admin").fill("Approved for the drill.")
    row.get_by_role("button", name="Approve").click()
    expect(page.locator(".message-success")).to_contain_text("Approved Ben Admin's request on 'rg-guard-contoso'")
    expect(page.locator("#no-pending")).to_be_visible()
    expect(page.locator("#decided-approvals")).to_contain_text("Active")

    # 5. The backup admin tries again: it goes through.
    play(page, "Backup admin")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="My access requests").click()
    first = page.locator("#my-requests tbody tr").first
    expect(first).to_contain_text("Active")
    expect(first).to_contain_text("Sam Security")
    expect(first).to_contain_text(re.compile(r"\d+ min left|1 h 0 min left"))
    shot(page, "06-my-requests-active")
    try_to_unlink(page)
    expect(page.locator(".message-success")).to_contain_text("MUA protection was removed from 'bv-contoso-mua'")
    expect(page.locator("#mua-card")).to_contain_text("Not protected")
    assert not mua.is_linked(vault.resource_id)
    use = ActivityLogEntry.objects.filter(operation=mua.PROXY_DELETE, status="Succeeded").latest("id")
    assert use.details["guards"]["MUA"]["approvedBy"] == "Sam Security"
    assert use.caller == "Terry Trainer as Backup admin" or "Ben Admin" in use.caller

    # Link it again (allowed), so the expired access can be shown refused on the same operation.
    open_mua_blade(page)
    page.get_by_label("rg-guard-contoso (rg-security)").check()
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#mua-card")).to_contain_text("Protected by a Resource Guard")

    # 6. The trainer moves the lab clock two hours on.
    play(page, None)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Lab clock").click()
    page.get_by_label("Move forward by").fill("2")
    page.get_by_label("Unit").select_option("hours")
    page.get_by_role("button", name="Move forward").click()
    expect(page.locator(".lab-clock-badge")).to_be_visible()

    # 7. The access has expired: shown as such, and the same operation is refused again.
    play(page, "Backup admin")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="My access requests").click()
    expect(page.locator("#my-requests tbody tr").first).to_contain_text("Expired")
    shot(page, "07-expired")
    try_to_unlink(page)
    expect(page.get_by_role("heading", name="You don't have permission to do this")).to_be_visible()
    expect(page.locator("#mua-offer")).to_be_visible()
    assert mua.is_linked(vault.resource_id)
    # The periodic task closes and logs it.
    assert mua.close_expired_grants() == 1
    assert AccessRequest.objects.get().state == AccessRequest.State.EXPIRED
