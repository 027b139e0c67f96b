"""Restores in Chromium: the backup admin restores each datasource type of the seeded lab and sees the
result in the portal — the restored container's blobs, the new volume's checksum equal to the recovery
point's, the new database's tables — and verifies a recovery point.

Jobs run on a real Celery worker thread on Redis. Set RESTORE_SHOTS=/some/dir to keep a screenshot of
every page the flows pass through.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import commands_loaded, finished_job, play, play_as, screenshots

pytestmark = [pytest.mark.browser, pytest.mark.celery]

shot = screenshots("RESTORE_SHOTS")


@pytest.fixture
def restore_lab(protected_lab):
    """The seeded lab's inventory, vault and protected items, each backed up once (on the worker)."""
    from protection.backups import services as backups

    for instance in protected_lab["instances"].values():
        job = finished_job(backups.backup_now(protected_lab["lab"].trainer, instance, retention_rule="Default").pk, 120)
        assert job.status in ("Completed", "CompletedWithWarnings"), (job.error_code, job.error_message)
    return protected_lab


def _validate_and_assign(page):
    page.locator("#validate-restore").click()
    pane = page.locator("#restore-validation")
    expect(pane.locator("#missing-roles")).to_be_visible()
    shot(page, "validate-missing-roles")
    pane.get_by_role("button", name="Assign missing roles").click()
    expect(pane).to_contain_text("Validation successful")
    expect(pane.locator("#assigned-roles")).to_be_visible()


def _review_and_restore(page, name):
    page.locator(".wizard-actions").get_by_role("button", name="Review + restore", exact=True).click()
    expect(page.locator("#wizard-validation")).to_contain_text("Validation passed")
    shot(page, f"{name}-review")
    page.locator("#wizard-submit").click()
    expect(page.locator("#job-status")).to_have_text("Completed", timeout=120_000)
    expect(page.locator("#job-percent")).to_have_text("100 %")
    expect(page.locator("#restore-summary")).to_be_visible()
    shot(page, f"{name}-job-completed")


def test_restore_a_container_account_and_see_its_blobs(page, live_server, restore_lab):
    from portal.inventory.lab import TARGET_ACCOUNT
    from protection import datasource_types

    instance = restore_lab["instances"][datasource_types.ADLS]
    play_as(page, live_server, "Backup admin")
    page.goto(f"{live_server.url}/backup/instances/{instance.pk}/")
    # Browse the recovery point first (the restore permission lists its files) ...
    point = instance.recovery_points.get()
    page.locator(f"#browse-{point.pk}").click()
    page.locator("#point-containers").get_by_role("link", name="documents").click()
    grid = page.locator("#browse-grid")
    files = grid.locator("tr[data-entry]").filter(has=page.locator("td:nth-child(4) :text('Download')"))
    expect(grid.locator("tr[data-entry]").first).to_be_visible()  # the container's listing, not the page before it
    if files.count() == 0:  # everything is in folders: open the first one
        grid.locator("tr[data-entry] a").first.click()
    # ... but the backup admin cannot read these blobs live, so cannot download them from a backup either.
    expect(grid.locator("[aria-disabled=true]", has_text="Download").first).to_be_visible()
    expect(grid.get_by_role("link", name="Download")).to_have_count(0)
    shot(page, "adls-browse-point")
    play(page, None)  # the trainer (Owner: the account key reads the blobs) downloads one
    first_file = grid.locator("tr[data-entry]").filter(has=page.get_by_role("link", name="Download")).first
    name = first_file.get_attribute("data-entry")
    with page.expect_download() as download:
        first_file.get_by_role("link", name="Download").click()
    from portal.inventory.models import StorageAccount

    source = StorageAccount.objects.get(resource_id=instance.datasource_resource_id)
    matches = [p for p in (source.data_path / "documents").rglob(name) if p.is_file()]
    assert matches and Path(download.value.path()).read_bytes() == matches[0].read_bytes()
    play(page, "Backup admin")
    page.goto(f"{live_server.url}/backup/instances/{instance.pk}/")
    commands_loaded(page)
    page.locator("#restore").click()
    expect(page.get_by_role("heading", name="Restore")).to_be_visible()
    expect(page.locator("#restore-points-grid input[type=radio]").first).to_be_checked()  # the latest
    shot(page, "adls-select-point")
    page.get_by_role("button", name="Next: Restore parameters").click()
    expect(page.get_by_label("Restore all backed-up containers")).to_be_checked()
    page.get_by_label("Target storage account").select_option(label=f"{TARGET_ACCOUNT} (eastus)")
    shot(page, "adls-parameters")
    _validate_and_assign(page)
    _review_and_restore(page, "adls")
    page.locator("#restored-link-1").click()
    expect(page.get_by_role("heading", name="documents")).to_be_visible()
    # The backup admin holds no blob data role (as in Azure): the trainer looks at the blobs.
    play(page, None)
    expect(page.locator("main")).to_contain_text(".txt")
    shot(page, "adls-restored-container")

    target = StorageAccount.objects.get(name=TARGET_ACCOUNT)
    for container in source.containers.all():
        a, b = source.data_path / container.name, target.data_path / container.name
        assert sorted(p.relative_to(a) for p in a.rglob("*")) == sorted(p.relative_to(b) for p in b.rglob("*"))
        for path in a.rglob("*"):
            if path.is_file():
                assert path.read_bytes() == (b / path.relative_to(a)).read_bytes()
                assert path.stat().st_mtime_ns == (b / path.relative_to(a)).stat().st_mtime_ns


def test_recover_a_volume_from_home_and_compare_checksums(page, live_server, restore_lab):
    from protection import datasource_types
    from protection.restores import layout

    instance = restore_lab["instances"][datasource_types.ELASTIC_SAN]
    point = instance.recovery_points.get()
    play_as(page, live_server, "Backup admin")
    shot(page, "home-recover")
    page.locator("#recover").click()
    page.get_by_label("Datasource type").select_option(label="Elastic SAN (Preview)")
    page.locator("#recover-continue").click()
    page.get_by_label("Backup instance").select_option(value=str(instance.pk))
    shot(page, "esan-basics")
    page.get_by_role("button", name="Next: Select recovery point").click()
    page.get_by_role("button", name="Next: Restore parameters").click()
    expect(page.get_by_label("Volume name")).to_have_value(f"{instance.datasource_name}-restore")
    page.get_by_label("Volume name").fill("vol-data-restored")
    shot(page, "esan-parameters")
    _validate_and_assign(page)
    _review_and_restore(page, "esan")
    expected = layout.volume_checksum(point)
    expect(page.locator("#summary-checksum")).to_have_text(expected)
    page.locator("#restored-link-1").click()
    expect(page.get_by_role("heading", name="vol-data-restored")).to_be_visible()
    expect(page.get_by_test_id("checksum")).to_have_text(expected)
    shot(page, "esan-restored-volume")


def test_restore_a_database_and_see_its_tables_then_verify(page, live_server, restore_lab):
    from protection import datasource_types

    instance = restore_lab["instances"][datasource_types.POSTGRES_FLEX]
    point = instance.recovery_points.get()
    source = restore_lab["inventory"].sample_database.name
    new_name = f"sr_rsnew_{secrets.token_hex(3)}"
    restore_lab["databases"].append(new_name)
    play_as(page, live_server, "Backup admin")
    # Browse the recovery point first: the database's table of contents.
    page.goto(f"{live_server.url}/backup/recovery-points/{point.pk}/")
    page.locator("#point-databases").get_by_role("row", name=source).get_by_role("link", name="View").click()
    expect(page.locator("#toc-grid")).to_contain_text("TABLE DATA")
    shot(page, "pg-table-of-contents")
    page.get_by_role("link", name="Recovery point", exact=False).first.click()
    page.locator("#restore-from-point").click()
    expect(page.get_by_label("Restore as a new database (Strongroom)")).to_be_checked()
    page.get_by_label("Database", exact=True).select_option(source)
    page.get_by_label("New database name").fill(new_name)
    shot(page, "pg-parameters")
    _validate_and_assign(page)
    _review_and_restore(page, "pg")
    tables = page.locator("#restored-tables")
    for table in ("sales.customers", "sales.orders", "inventory.products", "inventory.stock", "hr.employees"):
        expect(tables).to_contain_text(table)
    page.locator("#restored-link-1").click()
    expect(page.locator("main")).to_contain_text(new_name)
    shot(page, "pg-restored-database")

    # Verify the recovery point from its page: the job ends Healthy and the point says so.
    page.goto(f"{live_server.url}/backup/recovery-points/{point.pk}/")
    page.locator("#verify-point").click()
    expect(page.locator("#job-status")).to_have_text("Completed", timeout=120_000)
    expect(page.locator("#verify-summary")).to_contain_text("Healthy")
    page.goto(f"{live_server.url}/backup/recovery-points/{point.pk}/")
    expect(page.locator("#point-health")).to_contain_text("Healthy")
    shot(page, "pg-point-verified")
