"""Azure Disk in Chromium, as the backup admin: configure protection for a managed disk with a Daily disk
policy (the snapshot resource group refused when it is the disk's own, then Assign missing roles), Backup
now, the recovery point (an incremental snapshot, operational tier), and a restore to a new disk whose
bytes equal the source's.

Jobs run on a real Celery worker thread on Redis. Set DISK_SHOTS=/some/dir to keep a screenshot of every
page the flow passes through.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import at_widths, commands_loaded, play_as, screenshots

pytestmark = [pytest.mark.browser, pytest.mark.celery]

shot = screenshots("DISK_SHOTS")

# How many lines the first 12 characters of an element's text take up on screen.
_LINES_OF_THE_FIRST_CHARACTERS = """el => {
  const range = document.createRange();
  range.setStart(el.firstChild, 0);
  range.setEnd(el.firstChild, 12);
  return new Set([...range.getClientRects()].map(r => Math.round(r.top))).size;
}"""


@pytest.fixture
def disk_lab(seeded_lab, worker):
    """The lab vault, a 1 GiB disk with 4 MiB of sample data in the lab resource group, and a Daily disk policy."""
    from portal.inventory.disks import services as disks
    from protection import datasource_types
    from protection.policies import services as policies
    from vaults.lab import seed_vaults

    lab = seeded_lab
    vault = seed_vaults(lab)
    disk = disks.create_disk(lab.trainer, resource_group=lab.lab_group, name="disk-app", region=lab.region, size_gib=1)
    disks.write_sample_data(lab.trainer, disk)
    policy = policies.create_policy(lab.trainer, vault=vault, name="disk-daily", datasource_type=datasource_types.AZURE_DISK,
                                    spec=policies.default_spec(datasource_types.AZURE_DISK))
    yield {"lab": lab, "vault": vault, "disk": disk, "policy": policy}
    from portal.inventory import volumes
    from portal.inventory.disks.models import ManagedDisk

    for made in ManagedDisk.objects.all():
        volumes.remove_image(made.image_path)


def _next(page, title):
    page.locator(".wizard-actions").get_by_role("button", name=re.compile(rf"^Next: {re.escape(title)}")).click()
    expect(page.locator(".wizard-tabs [aria-current=step]")).to_have_text(title)


def _configure(page, live_server, lab, vault, disk):
    page.goto(f"{live_server.url}/backup/configure/?vault={vault.pk}&type=disk")
    _next(page, "Backup policy")
    page.locator("#policy-choices label", has_text="disk-daily").click()
    _next(page, "Datasources")
    row = page.locator(f"#row-disk{disk.pk}")
    expect(row).to_contain_text("1 GiB")
    page.get_by_label("Select disk-app").check()
    # The disk's own resource group is refused, with the reason.
    page.get_by_label("Snapshot resource group").select_option(label=lab.lab_group.name)
    page.locator(".wizard-actions").get_by_role("button", name="Review + configure", exact=True).click()
    expect(page.locator("#wizard-validation")).to_contain_text("Validation failed")
    page.locator(".wizard-tabs").get_by_text("Datasources").click()
    expect(page.locator("#snapshot-group-errors")).to_contain_text("cannot be the disk's own resource group")
    page.get_by_label("Snapshot resource group").select_option(label=lab.target_group.name)
    expect(row.locator(".readiness")).to_contain_text("Role assignment not done")
    page.get_by_label("Select disk-app").check()
    page.locator("#assign-missing-roles").click()
    page.locator("#grant-pane").get_by_label("Resource", exact=True).check()
    page.locator("#assign-roles-confirm").click()
    expect(page.locator("#readiness-status")).to_contain_text("then revalidated")
    expect(row.locator(".readiness")).to_contain_text("Success")
    shot(page, "disk-configure-datasources")
    page.locator(".wizard-actions").get_by_role("button", name="Review + configure", exact=True).click()
    expect(page.locator("#wizard-validation")).to_contain_text("Validation passed")
    page.get_by_role("button", name="Configure Backup").click()
    expect(page.locator('tr[data-instance="disk-app"]')).to_contain_text("Protection configured", timeout=20_000)


def test_protect_back_up_and_restore_a_disk_to_a_new_disk(page, live_server, disk_lab):
    from portal.inventory import volumes
    from portal.inventory.disks.models import ManagedDisk
    from protection.models import BackupInstance

    lab, vault, disk = disk_lab["lab"], disk_lab["vault"], disk_lab["disk"]
    play_as(page, live_server, "Backup admin")
    _configure(page, live_server, lab, vault, disk)
    instance = BackupInstance.objects.get(name="disk-app")

    page.goto(f"{live_server.url}/backup/instances/{instance.pk}/")
    expect(page.locator("#operational-tier-note")).to_contain_text("soft delete")
    page.locator("#backup-now").click()
    page.locator("#backup-now-pane").get_by_role("button", name="Backup now").click()
    expect(page.locator("#job-status")).to_have_text("Completed", timeout=120_000)
    page.goto(f"{live_server.url}/backup/instances/{instance.pk}/")
    expect(page.locator("#recovery-points-grid tbody tr")).to_have_count(1)
    point = instance.recovery_points.get()
    shot(page, "disk-instance")
    # The disks inventory and the disk's page, at 1440 and 1024 px (neither scrolls sideways).
    page.goto(f"{live_server.url}/disks/")
    row = page.get_by_role("row").filter(has_text="disk-app")
    expect(row).to_contain_text("1 GiB")
    at_widths(page, shot, "disks-list")
    row.get_by_role("link", name="disk-app").click()
    expect(page.get_by_role("heading", name="disk-app")).to_be_visible()
    at_widths(page, shot, "disk-page")
    page.goto(f"{live_server.url}/backup/recovery-points/{point.pk}/")
    expect(page.locator("#operational-tier-note")).to_contain_text("incremental snapshot")
    expect(page.locator("#point-checksum")).to_have_text(volumes.image_checksum(disk.image_path))
    at_widths(page, shot, "disk-recovery-point")
    # In the narrow tile at 1024 px, the checksum fills its lines: "blocks-" is not left alone on one
    page.set_viewport_size({"width": 1024, "height": 900})
    assert page.locator("#point-checksum").evaluate(_LINES_OF_THE_FIRST_CHARACTERS) == 1
    page.set_viewport_size({"width": 1400, "height": 900})

    page.goto(f"{live_server.url}/backup/instances/{instance.pk}/")
    commands_loaded(page)
    page.locator("#restore").click()
    page.get_by_role("button", name="Next: Restore parameters").click()
    page.get_by_label("Target resource group").select_option(label=lab.target_group.name)
    expect(page.get_by_label("Restored disk name")).to_have_value("disk-app-restored")
    shot(page, "disk-restore-parameters")
    page.locator("#validate-restore").click()
    pane = page.locator("#restore-validation")
    expect(pane.locator("#missing-roles")).to_contain_text("Disk Restore Operator")
    pane.get_by_role("button", name="Assign missing roles").click()
    expect(pane).to_contain_text("Validation successful")
    page.locator(".wizard-actions").get_by_role("button", name="Review + restore", exact=True).click()
    expect(page.locator("#wizard-validation")).to_contain_text("Validation passed")
    page.locator("#wizard-submit").click()
    expect(page.locator("#job-status")).to_have_text("Completed", timeout=120_000)
    expect(page.locator("#summary-checksum")).to_have_text(volumes.image_checksum(disk.image_path))
    at_widths(page, shot, "disk-restore-completed")
    page.locator("#restored-link-1").click()
    expect(page.get_by_role("heading", name="disk-app-restored")).to_be_visible()
    at_widths(page, shot, "disk-restored")
    restored = ManagedDisk.objects.get(resource_group=lab.target_group, name="disk-app-restored")
    assert volumes.image_checksum(restored.image_path) == volumes.image_checksum(disk.image_path)
