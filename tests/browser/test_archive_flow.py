"""The archive tier in Chromium: the backup admin moves a PostgreSQL recovery point (made old by moving the lab
clock) to Vault-archive, then restores it with rehydration — High priority, the Rehydrate job, the lab clock moved
past the priority's delay, the Restore job that follows — and sees the restored database.

Jobs run on a real Celery worker thread on Redis; the scheduled check that starts the restore is called as beat
would. Set ARCHIVE_SHOTS=/some/dir to keep a screenshot of every page the flow passes through (the recovery
points list with tiers at 1440 and 1024 px).
"""

from __future__ import annotations

import datetime as dt
import secrets

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import finished_job, play_as, screenshots

pytestmark = [pytest.mark.browser, pytest.mark.celery]

shot = screenshots("ARCHIVE_SHOTS")


@pytest.fixture
def old_pg_point(protected_lab):
    """The seeded PostgreSQL instance backed up once under its Monthly rule (12 months), then 100 days of lab time."""
    from protection import datasource_types
    from protection.backups import services as backups
    from security import services as security_services

    from protection.models import BackupInstance, ProtectionState
    from tests.conftest import wait_until

    lab = protected_lab["lab"]
    instance = protected_lab["instances"][datasource_types.POSTGRES_FLEX]
    wait_until(lambda: BackupInstance.objects.filter(pk=instance.pk, protection_state=ProtectionState.CONFIGURED).exists(),
               60, "protection to be configured", every=0.2)
    job = finished_job(backups.backup_now(lab.trainer, instance, retention_rule="Monthly").pk, 120)
    assert job.status in ("Completed", "CompletedWithWarnings"), (job.error_code, job.error_message)
    point = instance.recovery_points.get()
    security_services.move_lab_clock(lab.trainer, forward=dt.timedelta(days=100))
    job = finished_job(backups.backup_now(lab.trainer, instance, retention_rule="Default").pk, 120)  # a fresh one too
    assert job.status in ("Completed", "CompletedWithWarnings"), (job.error_code, job.error_message)
    yield protected_lab, instance, point
    security_services.move_lab_clock(lab.trainer, reset=True)


def _points_list(page, live_server, instance, point):
    page.goto(f"{live_server.url}/backup/instances/{instance.pk}/")
    page.locator("#rp-start").fill(point.recovery_point_time.date().isoformat())
    page.locator("#rp-start").dispatch_event("change")
    return page.locator(f"#recovery-points-grid tr[data-recovery-point='{point.pk}']")


def test_move_to_archive_then_rehydrate_and_restore(page, live_server, old_pg_point):
    from protection.restores import rehydration
    from security import services as security_services

    protected_lab, instance, point = old_pg_point
    source = protected_lab["inventory"].sample_database.name
    new_name = f"sr_rsarch_{secrets.token_hex(3)}"
    protected_lab["databases"].append(new_name)
    play_as(page, live_server, "Backup admin")

    row = _points_list(page, live_server, instance, point)
    expect(row).to_contain_text("Vault-standard")
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Move to archive").click()
    expect(page.locator("#tiering-summary")).to_be_visible()
    expect(page.locator("#job-status")).to_have_text("Completed", timeout=120_000)
    shot(page, "tiering-job")

    row = _points_list(page, live_server, instance, point)
    expect(row.locator(".rp-tier")).to_contain_text("Vault-archive")
    expect(row.locator(".rp-tier")).to_contain_text("Restore needs rehydration")
    grid = page.locator("#recovery-points-grid")
    expect(grid.locator("tbody tr")).to_have_count(2)
    # The fresh point says why it may not move yet.
    expect(grid.locator("tbody tr").first).to_contain_text(
        "Move to archive: Only points at least 3 months old can move to archive (this one is 0 days old).")
    for width in (1440, 1024):
        page.set_viewport_size({"width": width, "height": 900})
        shot(page, f"recovery-points-tiers-{width}")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.locator("#rp-tier").select_option("ArchiveStore")
    expect(grid.locator("tbody tr")).to_have_count(1)
    row = page.locator(f"#recovery-points-grid tr[data-recovery-point='{point.pk}']")

    row.get_by_role("link", name="Rehydrate and restore").click()
    page.locator(".wizard-tabs").get_by_role("button", name="Select recovery point").click()
    expect(page.locator("#rehydration")).to_be_visible()
    page.get_by_label("High (restorable after 1 hour)").check()
    page.get_by_label("Rehydration duration (days)").fill("10")
    shot(page, "rehydration-fields")
    page.locator(".wizard-actions").get_by_role("button", name="Next", exact=False).first.click()
    expect(page.get_by_label("Restore as a new database (Strongroom)")).to_be_checked()
    page.get_by_label("Database", exact=True).select_option(source)
    page.get_by_label("New database name").fill(new_name)
    page.locator("#validate-restore").click()
    pane = page.locator("#restore-validation")
    expect(pane.locator("#missing-roles")).to_be_visible()
    pane.get_by_role("button", name="Assign missing roles").click()
    expect(pane).to_contain_text("Validation successful")
    page.locator(".wizard-actions").get_by_role("button", name="Review + restore", exact=True).click()
    review = page.locator("main")
    expect(review).to_contain_text("Rehydration priority")
    expect(review).to_contain_text("10 days")
    shot(page, "rehydration-review")
    page.locator("#wizard-submit").click()

    # The Rehydrate job: the archive copy back into Vault-standard; restorable an hour later on the lab clock.
    expect(page.locator("#rehydration-summary")).to_contain_text("High")
    expect(page.locator("#job-status")).to_have_text("Completed", timeout=120_000)
    page.reload()
    expect(page.locator("#rehydration-restore")).to_contain_text("starts once the point is restorable")
    shot(page, "rehydrate-job")
    security_services.move_lab_clock(protected_lab["lab"].trainer, forward=dt.timedelta(minutes=61))
    assert rehydration.settle()["restoresStarted"] == 1  # what beat's retention run does every 10 minutes
    page.reload()
    page.locator("#rehydration-restore").get_by_role("link", name="the Restore job").click()
    expect(page.locator("#after-rehydration")).to_be_visible()
    expect(page.locator("#job-status")).to_have_text("Completed", timeout=120_000)
    expect(page.locator("#restored-tables")).to_contain_text("sales.customers")
    shot(page, "restore-after-rehydration")
