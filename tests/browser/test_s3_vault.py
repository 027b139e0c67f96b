"""S3 per vault in Chromium (issue 22): the backup admin creates a vault whose Backup storage location is
an S3-compatible bucket (moto's server) through the wizard, sees it on the vault's Properties with the
access key only as "stored (encrypted)", and runs Backup now on an instance in it: the recovery point's
bytes are in the bucket. Jobs run on a real Celery worker thread on Redis.

Set S3_SHOTS=/some/dir to keep a screenshot of every page the flow passes through.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests._s3 import ACCESS_KEY, make_bucket
from tests.browser.conftest import at_widths, play_as, screenshots
from tests.browser.test_vaults import open_wizard

pytestmark = [pytest.mark.browser, pytest.mark.celery]

shot = screenshots("S3_SHOTS")


def _protect_in(lab, vault):
    """A container account with two files, protected in ``vault`` (through the services, as the trainer)."""
    import secrets

    from portal.inventory import services as inv
    from protection import datasource_types
    from protection.policies import services as policy_services
    from tests.protection._backups_fixtures import put_blobs, sample_files
    from tests.protection._protection_fixtures import protect, spec

    account = inv.create_storage_account(lab.trainer, resource_group=lab.lab_group, name=f"sas3{secrets.token_hex(3)}",
                                         region=lab.region)
    put_blobs(lab.trainer, inv.create_container(lab.trainer, account, name="documents"),
              sample_files(5, count=2, size=40_000))
    policy = policy_services.create_policy(lab.trainer, vault=vault, name="s3-daily",
                                           datasource_type=datasource_types.ADLS, spec=spec(datasource_types.ADLS))
    return protect(lab, vault, policy, account, name="bi-on-s3")


def test_create_a_vault_on_a_bucket_then_back_up_into_it(page, live_server, seeded_lab, worker, moto_s3):
    from vaults import storage
    from vaults.models import BackupVault

    bucket = make_bucket(moto_s3)
    play_as(page, live_server, "Backup admin")
    open_wizard(page, live_server)
    page.get_by_label("Resource group", exact=True).select_option(label="rg-backup-lab")
    page.get_by_label("Backup vault name").fill("bv-on-s3")
    expect(page.locator("#name-availability")).to_contain_text("is available")
    page.get_by_role("button", name=re.compile(r"^Next: Vault Properties")).click()

    expect(page.get_by_label("Local", exact=True)).to_be_checked()
    expect(page.get_by_label("Bucket", exact=True)).to_be_hidden()  # the S3 fields show only for a bucket
    page.get_by_label("S3-compatible bucket").check()
    page.get_by_label("Endpoint URL").fill(moto_s3)
    page.get_by_label("Bucket", exact=True).fill(bucket)
    page.get_by_label("Prefix", exact=True).fill("browser")
    page.get_by_label("Region", exact=True).fill("us-east-1")
    page.get_by_label("Access key", exact=True).check()
    page.get_by_label("Access key ID").fill(ACCESS_KEY["access_key_id"])
    page.get_by_label("Secret access key").fill(ACCESS_KEY["secret_access_key"])
    shot(page, "wizard-properties-s3")
    page.get_by_role("button", name=re.compile(r"^Next: Tags")).click()
    page.get_by_role("button", name=re.compile(r"^Next: Review \+ create")).click()
    expect(page.locator("#wizard-validation")).to_contain_text("Validation passed")
    expect(page.locator(".wizard-body")).to_contain_text(f"s3://{bucket}/browser")
    shot(page, "wizard-review-s3")
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.get_by_role("heading", name="bv-on-s3")).to_be_visible()

    vault = BackupVault.objects.get(name="bv-on-s3")
    assert storage.s3_location(vault).bucket == bucket and storage.store_exists(vault)
    page.goto(f"{live_server.url}/vaults/{vault.pk}/properties/")
    expect(page.locator("#storage-location-value")).to_contain_text(f"s3://{bucket}/browser")
    at_widths(page, shot, "vault-properties-s3")
    page.locator("#update-storage-location").click()
    expect(page.locator("#access-key-stored")).to_contain_text("stored (encrypted)")
    assert ACCESS_KEY["secret_access_key"] not in page.content()
    at_widths(page, shot, "storage-location-blade")

    instance = _protect_in(seeded_lab, vault)
    page.goto(f"{live_server.url}/backup/instances/{instance.pk}/")
    page.locator("#backup-now").click()
    page.locator("#backup-now-pane").get_by_role("button", name="Backup now").click()
    expect(page.locator("#backup-started")).to_contain_text("Backup started")
    expect(page.locator("#job-status")).to_have_text("Completed", timeout=60_000)
    shot(page, "backup-completed-s3")
    point = instance.recovery_points.get()
    with storage.open_store(vault) as store:
        assert store.verify(point.manifest_id).ok
    names = list(storage.s3_backend(storage.s3_location(vault)).list("primary/"))
    assert any(n.startswith("primary/packs/") for n in names)
