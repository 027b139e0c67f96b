"""The multi-user authorization story in one browser, role-played by the trainer (issue 10).

GIVEN the lab (Resource Guard "rg-guard-contoso" owned and approved by the security admin, Reader on it
for the backup admin, an unlinked vault "bv-contoso-mua") WHEN the backup admin links the guard, tries
to remove MUA protection, requests access, the security admin approves, the backup admin tries again,
and the trainer moves the lab clock past the grant's end THEN each step shows in the pages as it should:
refused with Request access, pending, approved, allowed, expired and refused again — and still expired
and refused after the trainer resets the lab clock to real time (issue 13).

Set MUA_SHOTS=/some/dir to keep a screenshot of every page the story passes through.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import play, play_as, screenshots

pytestmark = pytest.mark.browser

shot = screenshots("MUA_SHOTS")


@pytest.fixture
def mua_lab(seeded_lab):
    from portal.mua.lab import seed_mua
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
    play_as(page, live_server, "Backup admin")

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
    assert use.details["guards"]["MUA"]["requester"] == "Ben Admin"
    assert use.principal_id == lab.personas["backup-admin"].principal.pk

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

    # 8. "Reset to real time" (back inside the granted hour) does not bring the access back.
    play(page, None)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Lab clock").click()
    for width in (1440, 1024):
        page.set_viewport_size({"width": width, "height": 900})
        shot(page, f"08-lab-clock-{width}")
    page.set_viewport_size({"width": 1400, "height": 900})
    page.get_by_role("button", name="Reset to real time").click()
    expect(page.locator(".lab-clock-badge")).to_have_count(0)
    play(page, "Backup admin")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="My access requests").click()
    expect(page.locator("#my-requests tbody tr").first).to_contain_text("Expired")
    try_to_unlink(page)
    expect(page.get_by_role("heading", name="You don't have permission to do this")).to_be_visible()
    assert mua.is_linked(vault.resource_id)


def test_security_admin_creates_a_guard_and_edits_its_operations(page, live_server, seeded_lab):
    """GIVEN the security admin WHEN they create a guard through every tab (Restore ticked, no approvers)
    THEN the guard page warns about automatic approval; WHEN they disable one optional operation THEN it
    is saved, and the mandatory ones offer no Disable at all."""
    from security import mua
    from security.models import ResourceGuard

    play_as(page, live_server, "Security admin")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Resource Guards").click()
    page.locator("#create-guard").click()
    expect(page.get_by_role("heading", name="Create Resource Guard")).to_be_visible()
    page.get_by_label("Resource group").select_option(label="rg-security (Security)")
    page.get_by_label("Name").fill("rg-guard-browser")
    page.get_by_label("Description").fill("Ask Sam in #security.")
    shot(page, "10-wizard-basics")
    page.get_by_role("button", name=re.compile(r"^Next: Protected operations")).click()
    expect(page.locator("#wizard-operations")).to_contain_text("Mandatory")
    expect(page.get_by_label("Disable soft delete")).to_be_disabled()
    expect(page.get_by_label("Disable soft delete")).to_be_checked()
    expect(page.get_by_label("Delete backup instance")).to_be_checked()
    expect(page.get_by_label("Restore", exact=True)).not_to_be_checked()
    page.get_by_label("Restore", exact=True).check()
    shot(page, "11-wizard-operations")
    page.get_by_role("button", name=re.compile(r"^Next: Approvers")).click()
    expect(page.get_by_label("Sam Security (security-admin)")).to_be_checked()  # the creator, by default
    page.get_by_label("Sam Security (security-admin)").uncheck()
    page.get_by_role("button", name="Review + create").first.click()
    expect(page.locator("#wizard-validation")).to_contain_text("Validation passed")
    expect(page.locator(".review-section", has_text="Protected operations")).to_contain_text("Restore")
    expect(page.locator(".review-section", has_text="Approvers")).to_contain_text("approved automatically")
    shot(page, "12-wizard-review")
    page.locator("#wizard-submit").click()

    expect(page.locator(".message-success")).to_contain_text("Resource Guard 'rg-guard-browser' was created.")
    expect(page.locator("#auto-approval-warning")).to_contain_text("approved automatically")
    guard = ResourceGuard.objects.get(name="rg-guard-browser")
    assert mua.RESTORE not in guard.vault_critical_operation_exclusions
    assert guard.approvers.count() == 0
    shot(page, "13-guard-overview")

    page.get_by_role("navigation", name="Resource menu").get_by_role("link", name="Properties").click()
    row = page.locator("#operations-form tr", has_text="Delete backup instance")
    row.get_by_label("Disable").check()
    mandatory = page.locator("#operations-form tr", has_text="Remove MUA protection")
    expect(mandatory).to_contain_text("Mandatory")
    expect(mandatory.get_by_label("Disable")).to_have_count(0)
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".message-success")).to_contain_text("Protected operations of 'rg-guard-browser' were saved.")
    expect(page.locator("#operations-form tr", has_text="Delete backup instance")).to_contain_text("Not protected")
    shot(page, "14-guard-operations")
    guard.refresh_from_db()
    assert mua.DELETE_INSTANCE in guard.vault_critical_operation_exclusions

    page.get_by_role("navigation", name="Resource menu").get_by_role("link", name="Approvers").click()
    page.get_by_label("Sam Security (security-admin)").check()
    page.get_by_role("button", name="Save approvers").click()
    expect(page.locator(".message-success")).to_contain_text("Approvers of 'rg-guard-browser' were saved.")
    expect(page.locator("#auto-approval-warning")).to_have_count(0)
    shot(page, "15-guard-approvers")
