"""The backup storage location (issue 22, S3 per vault): creation on a bucket, the refusals, the sealed
access key (never shown back), changing the location, and immutability needing Object Lock."""

import pytest
from django.core.exceptions import ValidationError

from security.models import ActivityLogEntry
from tests._s3 import ACCESS_KEY, aws_files, client_key_id, make_bucket, s3_spec
from vaults import services, storage
from vaults.models import BackupVault, VaultStorageLocation
from vaults.services.storage_location import update_storage_location


def test_a_vault_created_on_a_bucket_keeps_its_store_there(make_vault, moto_s3):
    bucket = make_bucket(moto_s3)
    vault = make_vault(storage_location=s3_spec(moto_s3, bucket, "team/a"))
    assert not storage.store_path(vault).exists() and storage.store_exists(vault)
    names = list(storage.s3_backend(vault.storage_location).list(""))
    assert "primary/config" in names
    with storage.open_store(vault) as store:
        assert store.id == vault.store_id
    row = VaultStorageLocation.objects.get(vault=vault)
    assert ACCESS_KEY["secret_access_key"] not in row.credentials_encrypted
    assert ACCESS_KEY["access_key_id"] not in row.credentials_encrypted
    assert row.access_key() == (ACCESS_KEY["access_key_id"], ACCESS_KEY["secret_access_key"])
    entry = ActivityLogEntry.objects.filter(scope=vault.resource_id).latest("pk")
    assert entry.details["storageLocation"]["bucket"] == bucket
    assert ACCESS_KEY["secret_access_key"] not in str(entry.details)


def test_an_unreachable_bucket_is_refused_naming_it(make_vault, moto_s3):
    with pytest.raises(ValidationError) as exc:
        make_vault(name="bv-nobucket", storage_location=s3_spec(moto_s3, "no-such-bucket-here"))
    text = str(exc.value.message_dict["bucket"])
    assert "no-such-bucket-here" in text and moto_s3 in text and "Check the endpoint URL" in text
    assert not BackupVault.objects.filter(name="bv-nobucket").exists()


def test_a_prefix_holding_objects_or_another_vaults_store_is_refused(make_vault, moto_s3):
    bucket = make_bucket(moto_s3)
    first = make_vault(storage_location=s3_spec(moto_s3, bucket, "shared"))
    for prefix in ("shared", "shared/inner", ""):
        with pytest.raises(ValidationError) as exc:
            make_vault(storage_location=s3_spec(moto_s3, bucket, prefix))
        assert first.name in str(exc.value.message_dict["prefix"])
    storage.s3_backend(VaultStorageLocation(vault=first, location_type="S3", endpoint_url=moto_s3, bucket=bucket,
                                            prefix="stray", credential_source="AccessKey",
                                            credentials_encrypted=first.storage_location.credentials_encrypted)
                       ).put("leftover", b"x")
    with pytest.raises(ValidationError) as exc:
        make_vault(storage_location=s3_spec(moto_s3, bucket, "stray"))
    assert "already holds objects" in str(exc.value.message_dict["prefix"])


def test_an_immutable_vault_needs_object_lock(make_vault, trainer, moto_s3):
    plain = make_bucket(moto_s3, object_lock=False)
    with pytest.raises(ValidationError) as exc:
        make_vault(immutability_state="Unlocked", storage_location=s3_spec(moto_s3, plain))
    assert "Object Lock" in str(exc.value.message_dict["bucket"])
    vault = make_vault(storage_location=s3_spec(moto_s3, plain, "p"))
    with pytest.raises(ValidationError) as exc:
        services.update_immutability(trainer, vault, state="Unlocked")
    assert "Object Lock" in str(exc.value.message_dict["state"])
    locked = make_vault(immutability_state="Unlocked", storage_location=s3_spec(moto_s3, make_bucket(moto_s3)))
    assert locked.immutability_state == "Unlocked"


def test_the_location_moves_while_empty_and_credentials_are_kept_or_replaced(make_vault, trainer, moto_s3,
                                                                            django_capture_on_commit_callbacks):
    vault = make_vault()
    local = storage.store_path(vault)
    bucket = make_bucket(moto_s3)
    with django_capture_on_commit_callbacks(execute=True):
        update_storage_location(trainer, vault, s3_spec(moto_s3, bucket, "moved"))
    vault = BackupVault.objects.get(pk=vault.pk)
    assert storage.store_exists(vault) and not local.exists()
    sealed = vault.storage_location.credentials_encrypted
    update_storage_location(trainer, vault, s3_spec(moto_s3, bucket, "moved", access_key_id="", secret_access_key=""))
    vault = BackupVault.objects.get(pk=vault.pk)
    assert vault.storage_location.credentials_encrypted == sealed and storage.store_exists(vault)
    with pytest.raises(ValidationError):
        update_storage_location(trainer, vault, s3_spec(moto_s3, bucket, "moved", secret_access_key=""))
    with django_capture_on_commit_callbacks(execute=True):
        update_storage_location(trainer, vault, {"location_type": "Local"})
    vault = BackupVault.objects.get(pk=vault.pk)
    assert storage.s3_location(vault) is None and storage.store_exists(vault)
    assert not list(storage.s3_backend(VaultStorageLocation(vault=vault, location_type="S3", endpoint_url=moto_s3,
                                                            bucket=bucket, prefix="moved", credential_source="AccessKey",
                                                            credentials_encrypted=sealed)).list(""))


def test_a_vault_holding_recovery_points_cannot_move(make_vault, trainer, moto_s3, tmp_path, monkeypatch):
    monkeypatch.setenv("STRONGROOM_S3_ACCESS_KEY_ID", ACCESS_KEY["access_key_id"])
    monkeypatch.setenv("STRONGROOM_S3_SECRET_ACCESS_KEY", ACCESS_KEY["secret_access_key"])
    vault = make_vault()
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_bytes(b"data")
    with storage.open_store(vault) as store:
        store.backup_tree(str(tmp_path / "src"))
    bucket = make_bucket(moto_s3)
    with pytest.raises(ValidationError) as exc:
        update_storage_location(trainer, vault, {"location_type": "S3", "endpoint_url": moto_s3, "bucket": bucket})
    assert "holds recovery points" in str(exc.value.message_dict["location_type"])
    assert storage.s3_location(BackupVault.objects.get(pk=vault.pk)) is None


# --- the pages: the create wizard's Vault Properties tab and the vault's blade ---------------------------


def test_the_wizard_creates_a_vault_on_a_bucket_and_puts_a_refusal_on_its_tab(client, backup_admin, lab, moto_s3):
    from django.urls import reverse

    from tests.vaults.test_vault_wizard import Wizard, basics

    client.force_login(backup_admin.user)
    wizard = Wizard(client)
    wizard.post(basics(lab), goto="properties")
    props = {"soft_delete_state": "On", "soft_delete_retention_days": "14", "encryption_type": "PlatformManagedKey",
             "cross_subscription_restore_state": "Enabled", "identity_enabled": "on"}
    wizard.post({**props, **s3_spec(moto_s3, "no-such-bucket-here")}, goto="review")
    wizard.post()
    assert wizard.current == "properties" and "no-such-bucket-here" in wizard.html and "Check the endpoint URL" in wizard.html
    bucket = make_bucket(moto_s3)
    wizard.post({**props, **s3_spec(moto_s3, bucket, "wiz")}, goto="review")
    assert f"s3://{bucket}/wiz" in wizard.html and ACCESS_KEY["secret_access_key"] not in wizard.html
    from django.contrib.sessions.models import Session

    sessions = "".join(str(s.get_decoded()) for s in Session.objects.all())
    assert "wiz" in sessions and ACCESS_KEY["secret_access_key"] not in sessions  # the step data holds it sealed
    response = wizard.post()
    vault = BackupVault.objects.get(name="bv-wizard")
    assert response.status_code == 302 and storage.s3_location(vault).bucket == bucket and storage.store_exists(vault)
    page = client.get(reverse("vaults:vault_properties", args=[vault.pk])).content.decode()
    assert f"s3://{bucket}/wiz ({moto_s3})" in page


def test_the_blade_never_shows_the_key_back_and_refuses_a_move_with_points(client, backup_admin, make_vault, moto_s3,
                                                                           tmp_path):
    from django.urls import reverse

    bucket = make_bucket(moto_s3)
    vault = make_vault(storage_location=s3_spec(moto_s3, bucket, "blade"))
    client.force_login(backup_admin.user)
    url = reverse("vaults:vault_storage_location", args=[vault.pk])
    page = client.get(url).content.decode()
    assert "stored (encrypted)" in page and f'value="{bucket}"' in page
    assert ACCESS_KEY["secret_access_key"] not in page and ACCESS_KEY["access_key_id"] not in page
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_bytes(b"data")
    with storage.open_store(vault) as store:
        store.backup_tree(str(tmp_path / "src"))
    response = client.post(url, {"location_type": "Local"})
    assert response.status_code == 400
    assert "holds recovery points" in response.content.decode() and storage.s3_location(vault) is not None


def test_deleting_an_s3_vault_removes_its_objects(make_vault, trainer, moto_s3, django_capture_on_commit_callbacks):
    bucket = make_bucket(moto_s3)
    vault = make_vault(storage_location=s3_spec(moto_s3, bucket, "gone"))
    backend = storage.s3_backend(vault.storage_location)
    assert list(backend.list("primary/"))
    with django_capture_on_commit_callbacks(execute=True):
        services.delete_vault(trainer, vault)
    assert not list(backend.list("")) and not VaultStorageLocation.objects.filter(vault_id=vault.pk).exists()


def test_credentials_from_a_named_profile_in_the_workers_aws_config(make_vault, moto_s3, tmp_path, monkeypatch):
    """Credentials from the environment with a profile: the workers' shared AWS config names it (here a
    temporary file; the real home directory is never read). A profile nobody has is refused naming it."""
    aws_files(tmp_path, monkeypatch, {"strongroom-backup": ("profile-key", "profile-secret")})
    bucket = make_bucket(moto_s3)
    spec = {"location_type": "S3", "endpoint_url": moto_s3, "bucket": bucket, "prefix": "prof", "region": "us-east-1",
            "credential_source": "Environment", "profile": "strongroom-backup"}
    vault = make_vault(storage_location=spec)
    loc = VaultStorageLocation.objects.get(vault=vault)
    assert (loc.profile, loc.credentials_encrypted) == ("strongroom-backup", "")
    with storage.open_store(vault) as store:
        assert store.id == vault.store_id and client_key_id(store.backend.client) == "profile-key"
    with pytest.raises(ValidationError) as exc:
        make_vault(storage_location={**spec, "prefix": "other", "profile": "nobody-has-this"})
    assert "'nobody-has-this'" in str(exc.value.message_dict["bucket"])
