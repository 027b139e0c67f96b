"""Soft delete → undelete → resume on real data, in the browser (issue 10).

GIVEN a vault with soft delete on (14 days) protecting a storage account with one recovery point WHEN the
backup admin stops backup with Delete Backup Data (typing the item's name, a reason, comments) THEN the
Delete backup data job (on a real Celery worker) soft-deletes it, the Deleted instances list (Protection
status = Soft deleted) shows it with its purge time and Undelete, the Delete Backup Data alert is on the
vault; Undelete brings it back as Protection stopped with its recovery point; Resume backup restarts it;
and that recovery point still restores byte for byte.

Set SOFT_DELETE_SHOTS=/some/dir for screenshots.
"""

from __future__ import annotations

import io

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import play_as, screenshots

pytestmark = pytest.mark.browser

shot = screenshots("SOFT_DELETE_SHOTS")
FILES = {"q1/ledger.csv": b"account,amount\n" + b"4000,12.50\n" * 3000, "readme.txt": b"Backed up, deleted, undeleted.\n"}


def finished(job_id, timeout=60):
    """Run the job here, or — when the worker thread claimed it first — wait until it has ended."""
    import time

    from protection.jobs import runner as jobs
    from protection.models import Job

    jobs.run(job_id)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = Job.objects.get(pk=job_id)
        if job.is_finished:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


@pytest.fixture
def soft_delete_lab(seeded_lab, worker):
    """Through the services: the trainer's account with two files; the backup admin's vault (soft delete
    on, 14 days), policy, protection and one backup."""
    from portal.inventory import services as inv
    from protection import datasource_types, readiness
    from protection.models import Job, JobOperation
    from protection.backups import services as backups
    from protection.instances import services as instance_services
    from protection.policies import services as policy_services
    from vaults import services as vault_services

    lab = seeded_lab
    admin = lab.personas["backup-admin"].principal
    account = inv.create_storage_account(lab.trainer, resource_group=lab.lab_group, name="sasoftdelete", region=lab.region)
    container = inv.create_container(lab.trainer, account, name="ledgers")
    inv.upload_blobs(lab.trainer, container, [inv.Upload(n, io.BytesIO(d)) for n, d in FILES.items()])
    vault = vault_services.create_vault(admin, name="bv-softdelete", resource_group=lab.lab_group, region=lab.region,
                                        storage_redundancy="LocallyRedundant")
    policy = policy_services.create_policy(admin, vault=vault, name="adls-30d", datasource_type=datasource_types.ADLS,
                                           spec=policy_services.default_spec(datasource_types.ADLS))
    instance_services.assign_missing_roles(admin, vault=vault, level=readiness.SCOPE_RESOURCE, datasources=[
        readiness.Datasource(datasource_types.ADLS, account.resource_id, account.name)])
    [instance] = instance_services.configure_protection(admin, vault=vault, policy=policy, selections=[
        instance_services.DatasourceSelection(account.resource_id, "bi-ledgers", all_containers=True)])
    finished(Job.objects.get(instance=instance, operation=JobOperation.CONFIGURE_PROTECTION).pk)
    point = finished(backups.backup_now(admin, instance, retention_rule="Default").pk).recovery_point
    assert point is not None
    return lab, vault, instance, point, account


def test_soft_delete_undelete_resume(page, live_server, soft_delete_lab):
    from protection.models import ProtectionState, RecoveryPoint
    from portal.inventory import services as inv
    from protection.restores import readiness, targets
    from protection.restores import services as restore_services
    from security.models import Alert

    lab, vault, instance, point, account = soft_delete_lab
    play_as(page, live_server, "Backup admin")
    page.goto(f"{live_server.url}/backup/instances/{instance.pk}/")

    # Stop backup → Delete Backup Data: the pane says what soft delete will do.
    page.locator("#stop-backup").click()
    expect(page.locator("#stop-backup-pane")).to_be_visible()
    page.get_by_role("radio", name="Delete Backup Data").check()  # not the pane it loads, labelled "Delete backup data: …"
    pane = page.locator("#delete-data-pane")
    expect(pane).to_contain_text("kept as soft deleted for 14 days")
    page.get_by_label("Type the name of Backup Item").fill("bi-ledger")  # a typo first
    page.get_by_label("Reason").select_option("Not needed any more")
    page.get_by_label("Comments").fill("Ledgers moved to the ERP.")
    page.locator("#delete-data-submit").click()
    expect(page.locator("#confirm-name-errors")).to_contain_text("Type the name of the backup item, 'bi-ledgers'")
    page.get_by_label("Type the name of Backup Item").fill("bi-ledgers")
    shot(page, "01-delete-pane")
    page.locator("#delete-data-submit").click()
    expect(page.locator(".message-success")).to_contain_text("soft-deleted and can be undeleted until")
    expect(page.get_by_role("heading", name="Delete backup data")).to_be_visible(timeout=15_000)
    expect(page.locator("body")).to_contain_text("Completed", timeout=30_000)
    shot(page, "02-job")

    # The Deleted instances list (Protection status = Soft deleted) shows it with its purge time.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Backup instances").click()
    page.locator("#deleted-instances").click()
    row = page.locator("#instances-grid tr", has_text="bi-ledgers")
    expect(row).to_contain_text("Soft deleted")
    instance.refresh_from_db()
    expect(row).to_contain_text(f"purge {instance.scheduled_purge_at:%Y-%m-%d %H:%M}")
    shot(page, "03-deleted-instances")
    assert Alert.objects.filter(name="Delete Backup Data", affected_resource_id=instance.resource_id).exists()

    # Undelete: back as Protection stopped with its recovery point.
    row.get_by_role("link", name="Undelete").click()
    expect(page.locator("#undelete-form")).to_contain_text("with its 1 recovery point")
    shot(page, "04-undelete")
    page.locator("#undelete-submit").click()
    expect(page.locator(".message-success")).to_contain_text("was undeleted")
    expect(page.locator("#protection-status")).to_contain_text("Protection stopped")
    expect(page.locator("#instance-recovery-points")).to_contain_text(f"{point.recovery_point_time:%Y-%m-%d %H:%M}")

    # Resume backup.
    page.locator("#resume-backup").click()
    expect(page.locator(".message-success")).to_contain_text("resumed")
    expect(page.locator("#protection-status")).to_contain_text("Protection configured")
    shot(page, "05-resumed")
    instance.refresh_from_db()
    assert instance.protection_state == ProtectionState.CONFIGURED
    assert RecoveryPoint.objects.filter(pk=point.pk, expiry_time__isnull=False).exists()

    # The recovery point restores byte for byte after all that.
    target_account = inv.create_storage_account(lab.trainer, resource_group=lab.target_group, name="sasdrestored",
                                                region=lab.region)
    target = targets.AdlsTarget(target_account.resource_id, True)
    restore_services.assign_restore_roles(lab.trainer, point, target, readiness.SCOPE_RESOURCE)
    job = finished(restore_services.start_restore(lab.personas["backup-admin"].principal, point, target).pk)
    assert job.status == "Completed", (job.error_code, job.error_message)
    for name, data in FILES.items():
        assert (target_account.data_path / "ledgers" / name).read_bytes() == data
