"""Training labs in the browser (issue 16).

GIVEN a trainee (Lab Trainee) on a fresh installation WHEN they open "Create a Backup vault" from the Home
page, start it and follow only what the lab page says (Backup vaults > + Create, Protection policies >
+ Create Policy, the vault's Delete), pressing Check my work THEN each step turns Done from what they
really did (a Celery worker runs the checks; the page polls) and the lab ends complete.
AND a trainee whose sandbox holds locked immutable data resets it: a fresh sandbox takes its place, the
old one is retired (hidden from them) and kept for its data, listed for the instructor.

Set LABS_SHOTS=/some/dir for screenshots at 1440 and 1024 px.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import screenshots, sign_in

pytestmark = pytest.mark.browser

shot = screenshots("LABS_SHOTS")
PASSWORD = "lab-trainee-pw"


def both_widths(page, name):
    for width in (1440, 1024):
        page.set_viewport_size({"width": width, "height": 900})
        shot(page, f"{name}-{width}")
    page.set_viewport_size({"width": 1400, "height": 900})


@pytest.fixture
def lab_people(seeded_lab, django_user_model, settings):
    """A trainee (Lab Trainee at '/') and an instructor (Lab Instructor), committed for the live server."""
    from security import roles, scopes
    from security import services as security_services
    from security.models import RoleDefinition

    settings.STRONGROOM_LAB_MODE = True
    people = {}
    for username, first, role in (("tina", "Tina", roles.LAB_TRAINEE), ("ivan", "Ivan", roles.LAB_INSTRUCTOR)):
        user = django_user_model.objects.create_user(username, password=PASSWORD, first_name=first, last_name="Lab")
        principal = security_services.principal_for_user(user)
        security_services.assign_role(seeded_lab.trainer, assignee=principal, scope=scopes.ROOT,
                                      role=RoleDefinition.objects.get(name=role))
        people[username] = principal
    yield people
    from labs.models import Sandbox
    from labs.sandboxes import drop_pg_login

    for login in Sandbox.objects.exclude(pg_login="").values_list("pg_login", flat=True):
        drop_pg_login(login)


def current_run(principal, slug):
    from labs.models import LabRun

    return LabRun.objects.select_related("sandbox").get(trainee=principal, lab=slug, active=True)


def open_lab_from_home(page, live_server, title):
    page.goto(f"{live_server.url}/")
    page.locator(".labs-panel").get_by_role("link", name=title).click()
    expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible()


def check_my_work_until_done(page, step_number, title):
    page.locator("#check-work").click()
    expect(page.locator(".messages")).to_contain_text("Checking your work")
    expect(page.locator(".lab-step").nth(step_number - 1)).to_contain_text("Done", timeout=30_000)
    expect(page.locator(".lab-step").nth(step_number - 1)).to_contain_text(title)


def test_a_trainee_completes_the_vault_lab_by_clicking(page, live_server, lab_people, worker):
    from vaults.models import BackupVault

    title = "Create a Backup vault"
    sign_in(page, live_server, "tina", PASSWORD)
    expect(page.locator(".labs-panel")).to_contain_text(title)
    both_widths(page, "home-with-labs")
    open_lab_from_home(page, live_server, title)
    both_widths(page, "lab-before-start")
    page.locator("#start-lab").click(timeout=90_000)  # the sandbox is made before the page answers
    expect(page.locator(".messages")).to_contain_text("is ready. Follow step 1 below.", timeout=60_000)
    code = current_run(lab_people["tina"], "vault-basics").sandbox.code
    expect(page.locator(".lab-step-current")).to_contain_text(f"rg-lab-{code}")
    both_widths(page, "lab-step-1")

    # Step 1 (and 2, in the same wizard): Backup vaults > + Create, as the instructions say.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Backup vaults").click()
    page.get_by_role("link", name="+ Create", exact=True).click()
    page.get_by_label("Resource group", exact=True).select_option(label=f"rg-lab-{code}")
    page.get_by_label("Backup vault name").fill("bv-training")
    page.get_by_label("Locally-redundant").check()
    page.get_by_role("button", name=re.compile(r"^Next: Vault Properties")).click()
    page.get_by_label("Retention period (days)").fill("30")
    page.locator(".wizard-actions").get_by_role("button", name="Review + create").click()
    expect(page.locator("#wizard-validation")).to_contain_text("Validation passed")
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.get_by_role("heading", name="bv-training")).to_be_visible()

    open_lab_from_home(page, live_server, title)
    check_my_work_until_done(page, 2, "Keep deleted backups for 30 days")
    expect(page.locator(".lab-step").nth(0)).to_contain_text("Done")
    expect(page.locator(".lab-step-current")).to_contain_text("Create a policy with Weekly and Monthly retention rules")

    # Step 3: the policy, first with the Monthly rule forgotten: the check says what is missing.
    vault = BackupVault.objects.get(name="bv-training")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Protection policies").click()
    page.locator("#create-policy").click()
    page.get_by_label("Policy name").fill("adls-weekly-monthly")
    page.get_by_label("Azure Data Lake Storage").check()
    page.get_by_label("Vault", exact=True).select_option(value=str(vault.pk))
    page.locator(".wizard-actions").get_by_role("button", name=re.compile(r"^Next: Schedule \+ retention")).click()
    page.locator(".rule-label", has_text="Weekly").get_by_role("checkbox").check()
    page.get_by_label("Weekly retention", exact=True).fill("12")
    page.locator(".wizard-actions").get_by_role("button", name="Review + create", exact=True).click()
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.get_by_role("heading", name="adls-weekly-monthly")).to_be_visible()
    open_lab_from_home(page, live_server, title)
    page.locator("#check-work").click()
    expect(page.locator(".lab-missing")).to_contain_text("Monthly", timeout=30_000)
    expect(page.locator(".lab-hint").first).to_be_visible()  # a hint after the failed check
    both_widths(page, "lab-step-3-not-yet")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Protection policies").click()
    page.get_by_role("link", name="adls-weekly-monthly").first.click()
    page.locator("#edit-policy").click()
    page.locator(".rule-label", has_text="Monthly").get_by_role("checkbox").check()
    page.get_by_label("Monthly retention", exact=True).fill("12")
    page.get_by_role("button", name="Update", exact=True).click()
    expect(page.locator(".messages")).to_be_visible()
    open_lab_from_home(page, live_server, title)
    check_my_work_until_done(page, 3, "Create a policy with Weekly and Monthly retention rules")

    # Step 4: try to delete the vault; the refusal in the activity log completes the lab by itself.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Backup vaults").click()
    page.get_by_role("link", name="bv-training").click()
    page.locator("#delete-vault").click()
    page.get_by_label(re.compile("Type the vault name")).fill("bv-training")
    page.get_by_role("button", name="Delete").click()
    expect(page.locator("body")).to_contain_text("existing backup instances or backup policies")
    open_lab_from_home(page, live_server, title)
    expect(page.locator("#lab-complete")).to_be_visible(timeout=30_000)
    expect(page.locator(".lab-meter")).to_contain_text("4 of 4 steps done")
    both_widths(page, "lab-complete")
    assert BackupVault.objects.filter(name="bv-training").exists()


def test_a_trainee_resets_a_sandbox_with_locked_data_and_the_old_one_is_kept(page, live_server, lab_people, worker):
    from labs.models import Sandbox
    from vaults.models import BackupVault

    sign_in(page, live_server, "tina", PASSWORD)
    open_lab_from_home(page, live_server, "Ransomware drill")
    page.locator("#start-lab").click(timeout=90_000)  # the sandbox is made before the page answers
    expect(page.locator(".messages")).to_contain_text("is ready. Follow step 1 below.", timeout=90_000)
    old = current_run(lab_people["tina"], "ransomware-drill").sandbox
    vault_name = f"bv-drill-{old.code}"

    # Step 1 as the lab page says: Properties > Immutable vault > Settings, enable, then lock (irreversible).
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Backup vaults").click()
    page.get_by_role("link", name=vault_name).click()
    page.locator(".blade-menu").get_by_role("link", name="Properties").click()
    page.locator("#immutability-settings").click()
    page.get_by_label("Enable vault immutability").check()
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#immutability-card")).to_contain_text("Enabled")
    page.locator("#immutability-settings").click()
    page.get_by_label("Lock immutability (irreversible)").check()
    page.get_by_label(re.compile("Type the vault name to confirm locking")).fill(vault_name)
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#immutability-card")).to_contain_text("Enabled and locked")

    # Reset sandbox: a fresh one at once; the old one leaves the trainee's view and is kept for its data.
    open_lab_from_home(page, live_server, "Ransomware drill")
    both_widths(page, "lab-ransomware-step")
    page.once("dialog", lambda dialog: dialog.dismiss())  # Cancel keeps the sandbox (static/strongroom.js asks)
    page.locator("#reset-sandbox").click()
    expect(page.locator("#sandbox-title")).to_contain_text(old.code)
    assert current_run(lab_people["tina"], "ransomware-drill").sandbox.code == old.code
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#reset-sandbox").click(timeout=90_000)  # a new sandbox is made before the page answers
    expect(page.locator(".messages")).to_contain_text(f"Your old sandbox {old.code} is retired", timeout=90_000)
    new = current_run(lab_people["tina"], "ransomware-drill").sandbox
    assert new.code != old.code
    expect(page.locator("#sandbox-title")).to_contain_text(new.code)
    expect(page.locator(".lab-step").first).to_contain_text("Now")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Backup vaults").click()
    expect(page.get_by_role("link", name=f"bv-drill-{new.code}")).to_be_visible()
    expect(page.get_by_role("link", name=vault_name)).to_have_count(0)

    old.refresh_from_db()
    assert old.status == Sandbox.Status.RETIRED
    assert BackupVault.objects.get(name=vault_name).immutability_state == "Locked"  # nothing went around the guard

    # The lab's owner (the instructor) sees it kept, with the reason.
    page.context.clear_cookies()
    sign_in(page, live_server, "ivan", PASSWORD)
    from tests.conftest import wait_until

    def kept_with_reason():  # the take-down runs on the worker; the page is read again until it has
        page.goto(f"{live_server.url}/labs/")
        text = page.locator("#retired-title").locator("xpath=..").inner_text()
        return old.code in text and "mmutab" in text

    wait_until(kept_with_reason, 60, "the retired sandbox to be listed with its reason", every=1)
    both_widths(page, "labs-instructor")
