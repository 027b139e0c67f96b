"""Cross Region Restore in Chromium: the instance's page says why it offers no Restore to secondary region; the
trainer enables Cross Region Restore in the vault's Properties, filters Backup instances by Instance Region =
Secondary Region, opens the instance and starts Restore to secondary region from its page, restores the
PostgreSQL server's point to the secondary region (as files into a container of a storage account there), and
finds the job under Secondary Region in Backup jobs. Jobs (backup, replication, restore) run on a real Celery
worker thread.

Set CRR_SHOTS=/some/dir to keep the pages (the filtered Backup instances list and the instance page at 1440 and
1024 px).
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import at_widths, finished_job, screenshots, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.celery]

_shot = screenshots("CRR_SHOTS")


def shot(page, name, widths=(1400,)):
    at_widths(page, _shot, name, widths)


@pytest.fixture
def replicated_lab(protected_lab):
    """The seeded lab's PostgreSQL server backed up once and its point copied to the secondary region; a
    storage account with a container in the secondary region."""
    from portal.inventory import services as inv
    from protection import datasource_types
    from protection.backups import services as backups
    from protection.models import Job
    from tests.conftest import wait_until

    lab = protected_lab["lab"]
    instance = protected_lab["instances"][datasource_types.POSTGRES_FLEX]
    wait_until(lambda: type(instance).objects.filter(pk=instance.pk, protection_state="ProtectionConfigured").exists(),
               60, "protection to be configured")
    job = finished_job(backups.backup_now(lab.trainer, instance, retention_rule="Default").pk, 120)
    assert job.status in ("Completed", "CompletedWithWarnings"), (job.error_code, job.error_message)
    replication = wait_until(lambda: Job.objects.filter(operation="Replication", instance=instance).first(), 30,
                             "the replication job")
    assert finished_job(replication.pk, 120).status == "Completed"
    vault = protected_lab["vault"]
    account = inv.create_storage_account(lab.trainer, resource_group=lab.target_group, name="sacrrwest",
                                         region=vault.secondary_region)
    inv.create_container(lab.trainer, account, name="pg-secondary")
    return protected_lab | {"instance": instance, "account": account}


def test_enable_crr_filter_secondary_region_restore_and_see_the_job(page, live_server, replicated_lab):
    vault, instance = replicated_lab["vault"], replicated_lab["instance"]
    sign_in(page, live_server, "trainer")
    # Before Cross Region Restore is enabled, the instance's page says why it offers no restore to the secondary region.
    page.goto(f"{live_server.url}/backup/instances/{instance.pk}/")
    command = page.locator("#restore-secondary")
    expect(command).to_have_attribute("aria-disabled", "true")
    expect(command).to_have_attribute("title", re.compile("Cross Region Restore is disabled on the Backup vault"))

    # Properties > Cross Region Restore > Enable.
    page.goto(f"{live_server.url}/vaults/{vault.pk}/properties/cross-region-restore/")
    page.get_by_label("Enable").check()
    page.get_by_role("button", name="Update").click()
    expect(page.locator("#crr-card")).to_contain_text("Enabled")
    expect(page.locator("#secondary-storage-note")).to_contain_text("A real deployment needs separate storage")

    # Backup instances, Instance Region = Secondary Region.
    page.goto(f"{live_server.url}/backup/instances/")
    page.locator("#filter-region").select_option("Secondary")
    row = page.locator("#instances-grid").get_by_role("row").filter(has_text=instance.name)
    expect(row.get_by_role("link", name="Restore to secondary region")).to_be_visible()
    expect(row.locator(".replication-lag")).to_contain_text("behind")
    expect(page.locator("#instances-grid tbody tr")).to_have_count(1)  # only the PostgreSQL server
    shot(page, "crr-instances-secondary-region", widths=(1440, 1024))

    # The instance's own page offers it too (Azure: select the instance, then Restore to secondary region).
    row.get_by_role("link", name=instance.name).click()
    command = page.get_by_role("link", name="Restore to secondary region")
    expect(command).to_have_attribute("href", f"/backup/restore/?region=Secondary&instance={instance.pk}")
    shot(page, "crr-instance-page", widths=(1440, 1024))
    command.click()
    expect(page.locator("h1")).to_contain_text("Restore to secondary region")
    page.locator(".wizard-actions").get_by_role("button", name="Next: Restore parameters", exact=False).click()
    expect(page.locator("#secondary-region-note")).to_contain_text(vault.secondary_region.display_name)
    expect(page.get_by_label("Restore as files into a storage container")).to_be_checked()
    expect(page.get_by_label("Restore as a new database (Strongroom)")).to_have_count(0)
    page.get_by_label("Target storage container").select_option(label="sacrrwest / pg-secondary")
    page.locator("#validate-restore").click()
    pane = page.locator("#restore-validation")
    pane.get_by_role("button", name="Assign missing roles").click()
    expect(pane).to_contain_text("Validation successful")
    shot(page, "crr-parameters")
    page.locator(".wizard-actions").get_by_role("button", name="Review + restore", exact=True).click()
    page.locator("#wizard-submit").click()
    expect(page.locator("#job-status")).to_have_text("Completed", timeout=120_000)

    # Backup jobs, Instance Region = Secondary Region: the restore is there (and not under Primary Region).
    page.goto(f"{live_server.url}/backup/jobs/?region=Secondary")
    grid = page.locator("#jobs-grid")
    expect(grid.get_by_role("row").filter(has_text=instance.name)).to_contain_text("Secondary region")
    shot(page, "crr-jobs-secondary-region")
    page.locator("#filter-region").select_option("Primary")
    expect(page.locator("#jobs-grid .job-region")).to_have_count(0)
