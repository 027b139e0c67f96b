"""Backup vault flows in Chromium: create through the wizard (every tab, and Basics straight to
Review + create), change soft delete, enable and lock immutability, delete an empty vault.

Set VAULT_SHOTS=/some/dir to keep a screenshot of every page the flows pass through.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import play_as, screenshots, sign_in

pytestmark = pytest.mark.browser

shot = screenshots("VAULT_SHOTS")


def open_wizard(page, live_server):
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Backup vaults").click()
    expect(page.get_by_role("heading", name="Backup vaults", exact=True)).to_be_visible()
    page.get_by_role("link", name="+ Create", exact=True).click()
    expect(page.get_by_role("heading", name="Create Backup vault")).to_be_visible()


def test_create_a_vault_through_every_tab(page, live_server, seeded_lab):
    """GIVEN the backup admin WHEN they fill every tab of the wizard THEN the vault exists with those
    settings and its overview shows them."""
    from vaults.models import BackupVault

    play_as(page, live_server, "Backup admin")
    open_wizard(page, live_server)
    expect(page.locator(".wizard-tabs [aria-current=step]")).to_have_text("Basics")
    expect(page.get_by_label("Geo-redundant")).to_be_checked()  # the default is preselected

    page.get_by_label("Resource group", exact=True).select_option(label="rg-backup-lab")
    page.get_by_label("Backup vault name").fill("bv_wrong")
    expect(page.locator("#name-availability")).to_contain_text("must be 2 to 50 characters")
    page.get_by_label("Backup vault name").fill("bv-browser")
    expect(page.locator("#name-availability")).to_contain_text("The name 'bv-browser' is available.")
    shot(page, "wizard-basics")
    page.get_by_role("button", name=re.compile(r"^Next: Vault Properties")).click()

    expect(page.locator(".wizard-tabs [aria-current=step]")).to_have_text("Vault Properties")
    expect(page.get_by_label("Enable System Identity")).to_be_checked()
    expect(page.get_by_label("Enabled", exact=True)).to_be_checked()
    expect(page.locator(".always-on-note")).to_contain_text("cannot be undone")
    page.get_by_label("Retention period (days)").fill("30")
    shot(page, "wizard-properties")
    page.get_by_role("button", name=re.compile(r"^Next: Tags")).click()

    page.get_by_label("Name 1").fill("env")
    page.get_by_label("Value 1").fill("lab")
    shot(page, "wizard-tags")
    page.get_by_role("button", name=re.compile(r"^Next: Review \+ create")).click()

    expect(page.locator("#wizard-validation")).to_contain_text("Validation passed")
    expect(page.locator(".review-section").first).to_contain_text("bv-browser")
    expect(page.locator(".wizard-body")).to_contain_text("Enabled, 30 days")
    shot(page, "wizard-review")
    page.get_by_role("button", name="Create", exact=True).click()

    expect(page.get_by_role("heading", name="bv-browser")).to_be_visible()
    expect(page.locator("#essentials")).to_contain_text("Geo-redundant")
    expect(page.locator("#secondary-region")).to_contain_text("West US")
    expect(page.locator("#security-level")).to_contain_text("Good")
    expect(page.locator("#vault-overview-tiles")).to_be_visible()
    shot(page, "vault-overview")
    page.locator(".notifications-dropdown summary").click()  # the trainer at the keyboard gets the notification
    expect(page.locator("#notifications-panel")).to_contain_text("Create Backup vault 'bv-browser'")
    shot(page, "vault-notification")
    vault = BackupVault.objects.get(name="bv-browser")
    assert (vault.soft_delete_retention_days, vault.tags) == (30, {"env": "lab"})
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Backup vaults").click()
    expect(page.locator("#vaults-grid")).to_contain_text("bv-browser")
    shot(page, "vault-list")


def test_basics_straight_to_review_and_create(page, live_server, seeded_lab):
    """GIVEN Basics WHEN a bad name goes to Review + create THEN Basics is marked and shows the error;
    WHEN fixed THEN Review + create shows the defaults and Create makes the vault."""
    from vaults.models import BackupVault

    play_as(page, live_server, "Backup admin")
    open_wizard(page, live_server)
    page.get_by_label("Resource group", exact=True).select_option(label="rg-backup-lab")
    page.get_by_label("Backup vault name").fill("-bad-name")
    page.locator(".wizard-actions").get_by_role("button", name="Review + create").click()
    expect(page.locator("#wizard-validation")).to_contain_text("Validation failed")
    expect(page.locator(".wizard-tabs .has-error")).to_contain_text("Basics")
    expect(page.locator("#field-basics-name .errorlist")).to_contain_text("start with a letter")
    shot(page, "wizard-basics-error")

    page.get_by_label("Backup vault name").fill("bv-quick")
    page.locator(".wizard-actions").get_by_role("button", name="Review + create").click()
    expect(page.locator("#wizard-validation")).to_contain_text("Validation passed")
    expect(page.locator(".wizard-tabs .has-error")).to_have_count(0)
    expect(page.locator(".wizard-body")).to_contain_text("Enabled, 14 days")
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.get_by_role("heading", name="bv-quick")).to_be_visible()
    assert BackupVault.objects.get(name="bv-quick").soft_delete_state == "On"


def test_change_soft_delete(page, live_server, lab_vault):
    sign_in(page, live_server, "trainer")
    page.goto(f"{live_server.url}/vaults/{lab_vault.pk}/")
    page.get_by_role("link", name="Properties", exact=True).first.click()
    shot(page, "vault-properties")
    page.locator("#update-soft-delete").click()
    expect(page.locator("#always-on-warning")).to_contain_text("Irreversible")
    shot(page, "vault-soft-delete")
    page.get_by_label("Retention period (days)").fill("200")
    page.get_by_role("button", name="Update").click()
    expect(page.locator("#retention-errors")).to_contain_text("between 14 and 180 days")
    page.get_by_label("Retention period (days)").fill("60")
    page.get_by_role("button", name="Update").click()
    expect(page.locator("#soft-delete-card")).to_contain_text("Enabled, 60 days retention")
    lab_vault.refresh_from_db()
    assert lab_vault.soft_delete_retention_days == 60


def test_enable_then_lock_immutability(page, live_server, lab_vault):
    sign_in(page, live_server, "trainer")
    page.goto(f"{live_server.url}/vaults/{lab_vault.pk}/properties/")
    page.locator("#immutability-settings").click()
    page.get_by_label("Enable vault immutability").check()
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#immutability-card")).to_contain_text("Enabled")
    page.locator("#immutability-settings").click()
    shot(page, "vault-immutability")
    page.get_by_label("Lock immutability (irreversible)").check()
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#confirm-errors")).to_contain_text("Type the vault name 'bv-contoso-lab'")
    page.get_by_label("Lock immutability (irreversible)").check()
    page.get_by_label(re.compile("Type the vault name to confirm locking")).fill("bv-contoso-lab")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#immutability-card")).to_contain_text("Enabled and locked")
    expect(page.locator("#immutability-settings")).to_have_count(0)
    lab_vault.refresh_from_db()
    assert lab_vault.immutability_state == "Locked"


def test_identity_blade(page, live_server, lab_vault):
    sign_in(page, live_server, "trainer")
    page.goto(f"{live_server.url}/vaults/{lab_vault.pk}/identity/")
    expect(page.locator("#principal-id")).to_have_text(str(lab_vault.identity_id))
    expect(page.locator("#identity-off-warning")).to_contain_text("backups and restores of this vault fail")
    shot(page, "vault-identity")
    page.get_by_label("Off").check()
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".messages")).to_contain_text("System-assigned identity: Off.")
    lab_vault.refresh_from_db()
    assert not lab_vault.identity_enabled


def test_delete_an_empty_vault(page, live_server, lab_vault):
    from vaults import storage
    from vaults.models import BackupVault

    store = storage.store_path(lab_vault)
    assert store.exists()
    sign_in(page, live_server, "trainer")
    page.goto(f"{live_server.url}/vaults/{lab_vault.pk}/")
    page.locator("#delete-vault").click()
    shot(page, "vault-delete")
    page.get_by_label(re.compile("Type the vault name")).fill("bv-contoso-la")
    page.get_by_role("button", name="Delete").click()
    expect(page.locator("#confirm-errors")).to_contain_text("exactly")
    page.get_by_label(re.compile("Type the vault name")).fill("bv-contoso-lab")
    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("heading", name="Backup vaults", exact=True)).to_be_visible()
    expect(page.locator(".messages")).to_contain_text("Backup vault 'bv-contoso-lab' was deleted.")
    shot(page, "vault-list-empty")
    assert not BackupVault.objects.exists()
    assert not store.exists()
