"""The pages of issue 14's point-in-time volumes and deferred leftovers, at 1440 and 1024 px: the volume
page says a backup is reading the volume and that "Write sample data" waits for it; a job page lists
the leftovers still under retention. Nothing overflows sideways. Set PIT_SHOTS=/some/dir to keep the
screenshots."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import sign_in

pytestmark = pytest.mark.browser
WIDTHS = (1440, 1024)


def check_layout(page, name):
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{name} overflows sideways by {overflow}px at {width}px"
        if os.environ.get("PIT_SHOTS"):
            Path(os.environ["PIT_SHOTS"]).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=f"{os.environ['PIT_SHOTS']}/{name}-{width}.png", full_page=True)


def test_volume_page_shows_the_backup_holding_it_and_the_waiting_write(page, live_server, seeded_lab):
    from portal.inventory import services as inv
    from portal.inventory import volumes
    from portal.inventory.models import Volume
    from security import clock
    from vaults.store import pit

    t = seeded_lab.trainer
    san = inv.create_elastic_san(t, resource_group=seeded_lab.lab_group, name="esan-pit", region=seeded_lab.region)
    group = inv.create_volume_group(t, san, name="vg-pit")
    volume = inv.create_volume(t, group, name="vol-pit", size_gib=1)
    # a backup reading the volume (holding it), and a "Write sample data" waiting for it
    inv.start_volume_job(t, volume, Volume.Activity.WRITE_SAMPLE_DATA, enqueue=False)
    Volume.objects.filter(pk=volume.pk).update(activity_status=Volume.ActivityStatus.IN_PROGRESS,
                                               activity_message=inv.WAITING_FOR_BACKUP, activity_heartbeat_at=clock.now())
    with volumes.open_image(volume.image_path) as fd, pit.hold_for_reading(fd):
        sign_in(page, live_server, "trainer")
        page.goto(live_server.url + _url("portal:volume_detail", volume.pk))
        expect(page.get_by_test_id("backup-reading")).to_contain_text("Writes wait until it has read the image")
        expect(page.get_by_test_id("waiting-for-backup")).to_be_visible()
        expect(page.get_by_text(inv.WAITING_FOR_BACKUP)).to_be_visible()
        check_layout(page, "volume-backup-reading")


def test_job_page_lists_leftovers_waiting_for_their_retention(page, live_server, seeded_lab):
    from protection.models import Job, JobCategory, JobOperation, JobStatus
    from security import clock
    from vaults import services as vault_services

    vault = vault_services.create_vault(seeded_lab.trainer, name="bv-pit", region=seeded_lab.region,
                                        resource_group=seeded_lab.lab_group)
    until = (clock.now() + dt.timedelta(days=400)).isoformat()
    job = Job.objects.create(
        vault=vault, operation=JobOperation.RETENTION, category=JobCategory.MANAGEMENT, status=JobStatus.COMPLETED_WITH_WARNINGS,
        initiated_by_name="Retention schedule", start_time=clock.now(), end_time=clock.now(),
        extended_info={"expired": 0, "gc": ["freed 0.0 MiB in 0.1s"], "leftoversDeferred": [
            {"snapshotId": "20261203T101500Z-0123456789ab", "retainUntil": until, "mode": "governance",
             "jobId": "0b7f3e52-5d0a-4a43-9d0e-2f3c7a1b6e19"}]})
    sign_in(page, live_server, "trainer")
    page.goto(live_server.url + _url("protection:job_detail", job.pk))
    expect(page.get_by_role("heading", name="Waiting for their retention to end")).to_be_visible()
    expect(page.get_by_test_id("leftovers-deferred")).to_contain_text("20261203T101500Z-0123456789ab")
    expect(page.get_by_test_id("leftovers-deferred")).to_contain_text("Governance")
    expect(page.get_by_test_id("leftovers-deferred")).to_contain_text(dt.datetime.fromisoformat(until).strftime("%Y-%m-%d %H:%M"))
    expect(page.get_by_role("heading", name="Items in the recovery point")).to_have_count(0)  # not a backup's items
    check_layout(page, "job-leftovers-deferred")


def _url(name, pk):
    from django.urls import reverse

    return reverse(name, args=[pk])
