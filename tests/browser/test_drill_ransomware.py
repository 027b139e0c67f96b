"""The ransomware drill in one browser, role-played by the trainer (issue 10).

GIVEN the lab's drill vault "bv-contoso-drill" (a backed-up finance account; immutability enabled and
locked; soft delete always-on; the Resource Guard "rg-guard-contoso" linked) WHEN the backup admin's
account — in the attacker's hands — tries to destroy the backups THEN every attempt is refused for its
own reason, shown before the click and on the refusal:

1. Delete backup data, remove MUA protection, shorten soft delete: refused by the Resource Guard (MUA).
2. The attacker talks the security admin into approving access on the guard; then:
   Delete backup data is refused by the immutable vault (locked), soft delete offers no way off
   (always-on), switching to a 7-day policy by immutability (shorter retention), and disabling immutability is
   not even offered (locked: nobody can).
3. Removing MUA protection now goes through — and raises the "MUA Disabled" alert on the vault's Alerts
   blade — but deleting the backup data is still refused by the locked immutable vault.

The recovery point and its data are intact at the end. Set DRILL_SHOTS=/some/dir for screenshots.
"""

from __future__ import annotations


import pytest
from playwright.sync_api import expect

from tests.browser.conftest import commands_loaded, play, play_as, screenshots

pytestmark = pytest.mark.browser

shot = screenshots("DRILL_SHOTS")


@pytest.fixture
def drill_lab(seeded_lab):
    from portal.mua.lab import seed_mua
    from protection.lab_drill import seed_drill

    guard = seed_mua(seeded_lab)
    vault, instance = seed_drill(seeded_lab)
    return seeded_lab, guard, vault, instance


def open_instance(page):
    nav = page.get_by_role("navigation", name="Main")
    nav.get_by_role("link", name="Backup vaults").click()
    page.get_by_role("link", name="bv-contoso-drill").click()
    page.get_by_role("navigation", name="Resource menu").get_by_role("link", name="Backup instances").click()
    page.locator("#instances-grid").get_by_role("link", name="contosofinance").click()
    expect(page.locator("#backup-actions")).to_be_visible()


def try_delete_backup_data(page):
    open_instance(page)
    page.locator("#delete-data").click()
    expect(page.locator("#delete-data-pane")).to_be_visible()
    page.get_by_label("Type the name of Backup Item").fill("contosofinance")
    page.get_by_label("Reason").select_option("Others")
    page.get_by_label("Comments").fill("cleanup")


def open_properties(page):
    nav = page.get_by_role("navigation", name="Main")
    nav.get_by_role("link", name="Backup vaults").click()
    page.get_by_role("link", name="bv-contoso-drill").click()
    page.get_by_role("navigation", name="Resource menu").get_by_role("link", name="Properties").click()


def expect_refused_by(page, guard_label, text):
    expect(page.get_by_role("heading", name="You don't have permission to do this")).to_be_visible()
    expect(page.locator(".denied-facts")).to_contain_text(guard_label)
    expect(page.locator(".azure-message")).to_contain_text(text)


def test_ransomware_drill(page, live_server, drill_lab):
    from protection.models import BackupInstance, RecoveryPoint
    from security import mua
    from security.models import ActivityLogEntry, Alert
    from vaults.storage import open_store

    lab, guard, vault, instance = drill_lab
    [point] = RecoveryPoint.objects.filter(instance=instance)
    play_as(page, live_server, "Backup admin")

    # The vault's security level says what protects it.
    open_properties(page)
    expect(page.locator("#security-level-card")).to_contain_text("Excellent")
    expect(page.locator("#immutability-card")).to_contain_text("Enabled and locked")
    expect(page.locator("#soft-delete-card")).to_contain_text("Enabled and always-on")
    shot(page, "01-properties")

    # 1a. Delete backup data: the button and the pane say MUA would refuse; the click is refused by MUA.
    open_instance(page)
    expect(page.locator("#delete-data-badge")).to_contain_text("refused by MUA")
    try_delete_backup_data(page)
    expect(page.locator("#delete-preview")).to_contain_text("would be refused for you by Multi-user authorization")
    shot(page, "02-delete-preview-mua")
    page.locator("#delete-data-submit").click()
    expect_refused_by(page, "Multi-user authorization", "'Delete backup instance' is protected by the Resource Guard 'rg-guard-contoso'")
    expect(page.locator("#mua-offer")).to_be_visible()
    shot(page, "03-delete-refused-mua")

    # 1b. Remove MUA protection: refused by MUA (mandatory).
    open_properties(page)
    page.locator("#update-mua").click()
    expect(page.locator("#unlink-preview")).to_contain_text("would be refused for you")
    page.get_by_label("Protect with Resource Guard").uncheck()
    page.get_by_role("button", name="Save").click()
    expect_refused_by(page, "Multi-user authorization", "'Remove MUA protection'")

    # 1c. Shorten soft delete's retention (always-on cannot be turned off at all): refused by MUA
    # (mandatory), previewed on the blade.
    open_properties(page)
    page.locator("#update-soft-delete").click()
    expect(page.locator("#reduce-soft-delete-preview")).to_contain_text("Multi-user authorization")
    expect(page.get_by_label("Disabled", exact=True)).to_have_count(0)
    page.get_by_label("Retention period (days)").fill("14")
    page.get_by_role("button", name="Update").click()
    expect_refused_by(page, "Multi-user authorization", "'Disable soft delete'")

    # 2. The attacker requests access on the guard; the security admin approves it.
    page.locator("#request-access").click()
    page.get_by_label("Justification").fill("Quarterly cleanup of old finance backups")
    page.get_by_label("Duration").select_option("1")
    page.get_by_role("button", name="Request access").click()
    expect(page.locator(".message-success")).to_contain_text("sent for approval to Sam Security")
    play(page, "Security admin")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Approvals").click()
    row = page.locator("#pending-approvals tbody tr", has_text="Ben Admin")
    row.get_by_label("Comment for Ben Admin").fill("OK for the cleanup.")
    row.get_by_role("button", name="Approve").click()
    expect(page.locator(".message-success")).to_contain_text("Approved Ben Admin's request")
    play(page, "Backup admin")

    # 2a. Delete backup data again: now refused by the locked immutable vault.
    try_delete_backup_data(page)
    expect(page.locator("#delete-preview")).to_contain_text("would be refused for you by Immutable vault")
    shot(page, "04-delete-preview-immutability")
    page.locator("#delete-data-submit").click()
    expect_refused_by(page, "Immutable vault", "immutable (immutability enabled and locked)")
    expect(page.locator("#mua-offer")).to_have_count(0)
    shot(page, "05-delete-refused-immutability")

    # 2b. Soft delete: MUA would now let the grant's holder through, but always-on offers no way off.
    open_properties(page)
    page.locator("#update-soft-delete").click()
    expect(page.locator("#reduce-soft-delete-preview")).to_have_count(0)
    expect(page.locator(".blade-form")).to_contain_text("always-on")
    expect(page.get_by_label("Disabled", exact=True)).to_have_count(0)

    # 2c. Switch to the 7-day policy: refused by immutability (shorter retention).
    open_instance(page)
    commands_loaded(page)
    page.locator("#change-policy").click()
    page.get_by_label("adls-7d").check()
    page.get_by_role("button", name="Save").click()
    expect_refused_by(page, "Immutable vault", "moving the backup instance to a policy with shorter retention")

    # 2d. Disable immutability: locked, so not offered; the blade says nobody can.
    open_properties(page)
    expect(page.locator("#immutability-settings")).to_have_count(0)
    page.goto(f"{live_server.url}/vaults/{vault.pk}/properties/immutability/")
    expect(page.locator("#disable-immutability-preview")).to_contain_text("cannot be disabled or unlocked by anyone")

    # 3. Remove MUA protection: goes through with the grant, and the alert fires.
    open_properties(page)
    page.locator("#update-mua").click()
    page.get_by_label("Protect with Resource Guard").uncheck()
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".message-success")).to_contain_text("MUA protection was removed")
    page.get_by_role("navigation", name="Resource menu").get_by_role("link", name="Alerts").click()
    expect(page.locator("#vault-alerts")).to_contain_text("MUA Disabled")
    shot(page, "06-alerts")
    try_delete_backup_data(page)
    page.locator("#delete-data-submit").click()
    expect_refused_by(page, "Immutable vault", "immutable (immutability enabled and locked)")

    # Nothing was lost, and the log tells the story.
    instance.refresh_from_db()
    assert instance.protection_state == "ProtectionConfigured" and BackupInstance.objects.filter(pk=instance.pk).exists()
    assert RecoveryPoint.objects.filter(pk=point.pk).exists()
    with open_store(vault) as store:
        assert all(store.verify(m["id"]).ok for m in point.manifests)
    refusals = ActivityLogEntry.objects.filter(principal=lab.personas["backup-admin"].principal, status="Failed")
    assert {e.details.get("guard") for e in refusals} >= {"MUA", "Immutability"}
    assert Alert.objects.filter(name="MUA Disabled", affected_resource_id=vault.resource_id).exists()
    assert not Alert.objects.filter(name="Delete Backup Data").exists()
    assert not mua.is_linked(vault.resource_id) and guard
