"""Flows a walk-through of the product documents found broken (issue 13), in Chromium:

* choosing always-on soft delete (irreversible) asks for the "I understand this is irreversible" tick,
  and without it the vault keeps its setting;
* a job page whose job ends while it is open shows End time and Duration without a reload, and stops
  polling;
* typing "Backup vaults" in the top bar's search offers the service page first (the document's first step).

Set WALKTHROUGH_SHOTS=/some/dir to keep screenshots at 1440 and 1024 px.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import sign_in

pytestmark = pytest.mark.browser

SHOTS = os.environ.get("WALKTHROUGH_SHOTS")


def shot(page, name):
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        for width in (1440, 1024):
            page.set_viewport_size({"width": width, "height": 900})
            page.screenshot(path=str(Path(SHOTS) / f"{width}-{name}.png"), full_page=True)
        page.set_viewport_size({"width": 1400, "height": 900})


def test_always_on_soft_delete_needs_the_irreversible_tick(page, live_server, lab_vault):
    sign_in(page, live_server, "trainer")
    page.goto(f"{live_server.url}/vaults/{lab_vault.pk}/")
    page.get_by_role("link", name="Properties", exact=True).first.click()
    page.locator("#update-soft-delete").click()
    page.get_by_label("Enabled and always-on").check()
    tick = page.get_by_label("I understand this is irreversible")
    expect(tick).not_to_be_checked()
    shot(page, "soft-delete-always-on")
    page.get_by_role("button", name="Update").click()
    expect(page.locator("#acknowledge-errors")).to_contain_text("I understand this is irreversible")
    shot(page, "soft-delete-always-on-refused")
    lab_vault.refresh_from_db()
    assert lab_vault.soft_delete_state == "On"
    page.get_by_label("Enabled and always-on").check()
    page.get_by_label("I understand this is irreversible").check()
    page.get_by_role("button", name="Update").click()
    expect(page.locator("#soft-delete-card")).to_contain_text("Enabled and always-on")
    lab_vault.refresh_from_db()
    assert lab_vault.soft_delete_state == "AlwaysOn"


def test_a_job_page_shows_the_end_when_the_job_completes(page, live_server, lab_vault):
    """The job is a row the test moves from In progress to Completed (as a worker would): the open page
    must follow without a reload."""
    from protection.models import Job, JobCategory, JobOperation, JobStatus
    from security import clock

    start = clock.now()
    job = Job.objects.create(vault=lab_vault, instance_name="bi-live-job", operation=JobOperation.BACKUP,
                             category=JobCategory.BACKUP, status=JobStatus.IN_PROGRESS, start_time=start,
                             initiated_by_name="test", bytes_total=1000, bytes_done=400)
    sign_in(page, live_server, "trainer")
    page.goto(f"{live_server.url}/backup/jobs/{job.pk}/")
    expect(page.locator("#job-status")).to_have_text("In progress")
    expect(page.locator("#job-end-time")).to_have_text("—")
    expect(page.locator("#job-duration")).to_have_text("Running (see Progress)")
    requests = []
    page.on("request", lambda r: requests.append(r.url) if "/progress/" in r.url else None)
    end = start + dt.timedelta(minutes=2, seconds=5)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.COMPLETED, end_time=end, bytes_done=1000)
    expect(page.locator("#job-status")).to_have_text("Completed", timeout=15_000)
    expect(page.locator("#job-end-time")).to_have_text(end.strftime("%Y-%m-%d %H:%M:%S") + " UTC")
    expect(page.locator("#job-duration")).to_have_text("0:02:05")
    shot(page, "job-completed-live")
    # Polling has stopped: no progress request goes out any more.
    seen = len(requests)
    page.wait_for_timeout(2500)
    assert len(requests) == seen


def test_typing_backup_vaults_offers_the_service(page, live_server, seeded_lab):
    sign_in(page, live_server, "backup-admin")
    page.locator("#global-search").fill("Backup vaults")
    popup = page.locator("#search-popup")
    expect(popup.get_by_role("heading", name="Services")).to_be_visible()
    shot(page, "search-backup-vaults")
    popup.get_by_role("link", name="Backup vaults").first.click()
    expect(page.get_by_role("heading", name="Backup vaults", exact=True)).to_be_visible()


def test_the_datasources_tab_shows_an_account_protected_elsewhere_before_the_click(page, live_server, seeded_lab,
                                                                                  lab_vault):
    """One datasource, one vault: the account the lab vault protects is shown in a second vault's
    Datasources tab as not selectable, with Azure's code in the Backup readiness column."""
    from portal.inventory import services as inv
    from protection import datasource_types
    from protection.policies import services as policy_services
    from tests.protection._protection_fixtures import protect, spec
    from vaults import services as vault_services

    tenancy = seeded_lab
    t = tenancy.trainer
    account = inv.create_storage_account(t, resource_group=tenancy.lab_group, name="saprotectedonce", region=tenancy.region)
    inv.create_container(t, account, name="documents")
    first = policy_services.create_policy(t, vault=lab_vault, name="adls-first", datasource_type=datasource_types.ADLS,
                                          spec=spec(datasource_types.ADLS))
    protect(tenancy, lab_vault, first, account, name="bi-protected-once")
    second = vault_services.create_vault(t, name="bv-second-vault", region=tenancy.region, resource_group=tenancy.lab_group)
    policy_services.create_policy(t, vault=second, name="adls-second", datasource_type=datasource_types.ADLS,
                                  spec=spec(datasource_types.ADLS))
    sign_in(page, live_server, "trainer")
    page.goto(f"{live_server.url}/backup/configure/start/")
    page.get_by_label("Datasource type").select_option(label="Azure Data Lake Storage")
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Vault", exact=True).select_option(value=str(second.pk))
    page.locator(".wizard-actions").get_by_role("button", name="Next: Backup policy").click()
    page.locator("#policy-choices label", has_text="adls-second").click()
    page.locator(".wizard-actions").get_by_role("button", name="Next: Datasources").click()
    row = page.locator(f"#row-sa{account.pk}")
    expect(row.locator(".readiness")).to_contain_text("Datasource already protected")
    expect(row.locator(".readiness")).to_contain_text("UserErrorDppDatasourceAlreadyProtected")
    expect(row.locator(f"#why-sa{account.pk}")).to_contain_text(
        f"Datasource is already protected under the Backup vault {lab_vault.resource_id}")
    expect(page.get_by_label("Select saprotectedonce")).to_be_disabled()
    shot(page, "configure-already-protected")
