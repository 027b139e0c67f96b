"""Backups in Chromium: the backup admin runs Backup now for a container account, a volume and the
PostgreSQL server of the seeded lab, watches the progress bars and the vault's tiles move, and sees
recovery points whose bytes are really in the store (the engine's verify passes on each); then stops
and resumes a backup, and follows a tile's number to the filtered jobs list.

Jobs run on a real Celery worker thread on Redis. Set BACKUP_SHOTS=/some/dir to keep a screenshot of
every page the flow passes through.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import play_as, screenshots

pytestmark = [pytest.mark.browser, pytest.mark.celery]

shot = screenshots("BACKUP_SHOTS")


@pytest.fixture
def backup_lab(protected_lab):
    """The protected lab, one item of each datasource type."""
    instances = protected_lab["instances"]
    assert len(instances) == 3
    return protected_lab


def _store_for(point):
    from protection.operational_store import open_operational_store
    from vaults.storage import open_store

    if point.datastore == "OperationalStore":
        from portal.models import ResourceGroup

        group = ResourceGroup.objects.get(resource_id__iexact=point.instance.snapshot_resource_group_id)
        return open_operational_store(group, create=False)
    return open_store(point.instance.vault)


def _backup_now(page, live_server, instance, name, status="Completed", warnings=()):
    page.goto(f"{live_server.url}/backup/instances/{instance.pk}/")
    expect(page.get_by_role("heading", name=instance.name)).to_be_visible()
    page.locator("#backup-now").click()
    pane = page.locator("#backup-now-pane")
    expect(pane.get_by_label("Default (retained")).to_be_checked()
    shot(page, f"{name}-backup-now-pane")
    pane.get_by_role("button", name="Backup now").click()
    started = page.locator("#backup-started")
    expect(started).to_contain_text("Backup started")
    expect(started.get_by_role("progressbar")).to_be_visible()
    # The progress fragment polls every second and stops once the job has ended.
    expect(page.locator("#job-status")).to_have_text(status, timeout=120_000)
    expect(page.locator("#job-percent")).to_have_text("100 %")
    shot(page, f"{name}-backup-completed")
    for text in warnings:
        expect(page.locator("#job-progress .callout-warning")).to_contain_text(text)
    if warnings:
        for width in (1440, 1024):
            page.set_viewport_size({"width": width, "height": 900})
            box = page.locator("#job-progress .callout-warning").bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= width  # the list wraps, nothing clipped
            shot(page, f"{name}-backup-warnings-{width}")
    page.reload()
    grid = page.locator("#recovery-points-grid")
    expect(grid.locator("tbody tr")).to_have_count(1)
    expect(page.locator("#instance-jobs-grid")).to_contain_text("Backup")


def test_backup_now_for_each_datasource_with_live_progress_and_tiles(page, live_server, backup_lab):
    """GIVEN the seeded lab's three protected items WHEN the backup admin runs Backup now on each THEN
    each job's progress bar reaches Completed, each instance lists its recovery point, the vault's tiles
    count the backups, and every point verifies in its store."""
    from protection import datasource_types
    from protection.models import Job, RecoveryPoint

    vault, instances = backup_lab["vault"], backup_lab["instances"]
    play_as(page, live_server, "Backup admin")
    page.goto(f"{live_server.url}/vaults/{vault.pk}/")
    tiles = page.locator("#vault-overview-tiles")
    expect(tiles.locator("#instances-tile-body")).to_contain_text("4 backup instances")  # three items plus the lab's large volume
    expect(tiles.locator("#jobs-tile-body")).to_contain_text("Configure protection")
    shot(page, "vault-overview-before")

    for kind, name in ((datasource_types.ADLS, "adls"), (datasource_types.ELASTIC_SAN, "esan")):
        _backup_now(page, live_server, instances[kind], name)
    # The shared cluster holds Strongroom's own database, `postgres` and test_* ones: the server's
    # backup names each database it skips, so it completes with warnings, never silently.
    _backup_now(page, live_server, instances[datasource_types.POSTGRES_FLEX], "pg", status="Completed with warnings",
                warnings=["Database 'postgres' was not backed up: it is the maintenance database.",
                          "was not backed up: it is Strongroom's own database."])

    # The tiles move: the Jobs tile counts three backups (it refreshes itself every 5 s).
    page.goto(f"{live_server.url}/vaults/{vault.pk}/")
    jobs_tile = page.locator("#jobs-tile-body")
    for short, status in (("adls", "Completed"), ("esan", "Completed"), ("pgflex", "CompletedWithWarnings")):
        expect(jobs_tile.locator(f'tr[data-row="{short}:Backup"] a[data-status="{status}"]')).to_have_text("1")
    shot(page, "vault-overview-after")

    # A number is a link to the jobs list with the same filters.
    jobs_tile.locator('tr[data-row="esan:Backup"] a[data-status="Completed"]').click()
    expect(page.get_by_role("heading", name="Backup jobs")).to_be_visible()
    expect(page.locator("#jobs-grid tbody tr")).to_have_count(1)
    expect(page.locator("#filter-type")).to_have_value("esan")
    shot(page, "jobs-list-filtered")

    for point in RecoveryPoint.objects.select_related("instance__vault"):
        with _store_for(point) as store:
            for manifest in point.manifests:
                assert store.verify(manifest["id"]).ok, (point.instance.name, manifest)
    assert RecoveryPoint.objects.count() == 3
    assert not Job.objects.filter(operation="Backup").exclude(status__in=["Completed", "CompletedWithWarnings"]).exists()


def test_stop_and_resume_backup_in_the_browser(page, live_server, backup_lab):
    from protection import datasource_types

    instance = backup_lab["instances"][datasource_types.ELASTIC_SAN]
    play_as(page, live_server, "Backup admin")
    page.goto(f"{live_server.url}/backup/instances/{instance.pk}/")
    page.locator("#stop-backup").click()
    pane = page.locator("#stop-backup-pane")
    pane.get_by_label("Retain forever").check()
    pane.get_by_label("Reason").select_option("Others")
    pane.get_by_label("Comments").fill("Paused for the lab")
    shot(page, "stop-backup-pane")
    pane.get_by_role("button", name="Stop backup").click()
    expect(page.locator("#protection-status")).to_contain_text("Protection stopped (retain forever)")
    expect(page.locator("#backup-now")).to_have_attribute("aria-disabled", "true")
    page.locator("#resume-backup").click()
    expect(page.locator("#protection-status")).to_contain_text("Protection configured")
    expect(page.locator(".messages")).to_contain_text(re.compile(r"resumed: the next backup is at"))


def test_the_reader_cannot_back_up(page, live_server, backup_lab):
    from protection import datasource_types

    instance = backup_lab["instances"][datasource_types.ADLS]
    play_as(page, live_server, "Reader")
    page.goto(f"{live_server.url}/backup/instances/{instance.pk}/")
    expect(page.locator("#backup-now")).to_have_attribute("aria-disabled", "true")
    expect(page.locator("#backup-now")).to_have_attribute("title", re.compile("does not have authorization"))
    expect(page.locator("#recovery-points")).to_contain_text("No recovery points in this time range")
