"""The "Enhanced policy and tiering" lab in Chromium: a trainee opens it from Home, starts it (a sandbox with
the lab's vault bv-tiering and its managed disk disk-data), follows step 1's instructions in the policy
wizard (Azure Disk, Backup policy tab: Hourly every 4 hours, + Add retention rule, First successful backup
taken daily) and Check my work turns the step Done, with the next step's instructions shown.

Set LABS_SHOTS=/some/dir for a screenshot of the lab page after step 1 (1440 px).
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import screenshots, sign_in
from tests.browser.test_labs import PASSWORD, check_my_work_until_done, current_run, lab_people, open_lab_from_home  # noqa: F401

pytestmark = pytest.mark.browser

TITLE = "Enhanced policy and tiering"
shot = screenshots("LABS_SHOTS")


def test_a_trainee_creates_the_hourly_disk_policy_the_lab_asks_for(page, live_server, lab_people, worker):  # noqa: F811
    from vaults.models import BackupVault

    sign_in(page, live_server, "tina", PASSWORD)
    open_lab_from_home(page, live_server, TITLE)
    page.locator("#start-lab").click(timeout=90_000)  # the sandbox is made before the page answers
    expect(page.locator(".messages")).to_contain_text("is ready. Follow step 1 below.", timeout=60_000)
    run = current_run(lab_people["tina"], "enhanced-policy-tiering")
    current = page.locator(".lab-step-current")
    expect(current).to_contain_text("Create an hourly Azure Disk policy")
    expect(current).to_contain_text(f"rg-lab-{run.sandbox.code}")
    vault = BackupVault.objects.get(name="bv-tiering", resource_group__name=f"rg-lab-{run.sandbox.code}")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Protection policies").click()
    page.locator("#create-policy").click()
    page.get_by_label("Policy name").fill("disk-hourly")
    page.get_by_label("Azure Disk", exact=True).check()
    page.get_by_label("Vault", exact=True).select_option(value=str(vault.pk))
    page.locator(".wizard-actions").get_by_role("button", name=re.compile(r"^Next: ")).click()
    expect(page.locator(".wizard-tabs [aria-current=step]")).to_have_text("Backup policy")
    expect(page.get_by_label("Hourly")).to_be_checked()
    page.get_by_label("Every", exact=True).select_option("4")
    page.get_by_label("Default retention", exact=True).fill("7")
    page.get_by_text("+ Add retention rule").click()
    page.get_by_label("First successful backup taken daily").check()
    page.get_by_label("Daily retention", exact=True).fill("30")
    page.locator(".wizard-actions").get_by_role("button", name="Review + create", exact=True).click()
    expect(page.locator("#wizard-validation")).to_contain_text("Validation passed")
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.get_by_role("heading", name="disk-hourly")).to_be_visible()

    open_lab_from_home(page, live_server, TITLE)
    check_my_work_until_done(page, 1, "Create an hourly Azure Disk policy")
    expect(page.locator(".lab-step").nth(0)).to_contain_text("/PT4H")
    expect(page.locator(".lab-step-current")).to_contain_text("Snapshot resource group")
    page.set_viewport_size({"width": 1440, "height": 900})
    shot(page, "lab-enhanced-policy-step-2")
