"""A vault's backup storage location over the ARM API (issue 22): Azure's ``storageSettings`` unchanged,
Strongroom's ``strongroomStorageLocation`` beside it (never a credential), and a vault created or moved onto
an S3 bucket through the same service and checks as the portal's."""

from __future__ import annotations

import json

import pytest
from azure.mgmt.dataprotection import models as sdk

from security.models import ActivityLogEntry
from tests._s3 import ACCESS_KEY, make_bucket
from tests.api.test_vaults import _body, _name, _vault_path
from vaults import storage
from vaults.models import BackupVault

pytestmark = pytest.mark.django_db
LOC = "properties.strongroomStorageLocation"


def _s3(endpoint, bucket, prefix="api", **extra) -> dict:
    return {"type": "S3", "endpointUrl": endpoint, "bucket": bucket, "prefix": prefix, "region": "us-east-1",
            "accessKeyId": ACCESS_KEY["access_key_id"], "secretAccessKey": ACCESS_KEY["secret_access_key"], **extra}


def test_a_vault_created_on_a_bucket_shows_where_its_store_lives_and_no_credential(arm, lab, backup_admin, moto_s3):
    client, bucket, name = arm(backup_admin), make_bucket(moto_s3), _name()
    response = client.put(_vault_path(lab, name), _body(strongroomStorageLocation=_s3(moto_s3, bucket)))
    assert response.status_code == 201, response.content
    vault = BackupVault.objects.get(name=name)
    assert storage.s3_location(vault).bucket == bucket and storage.store_exists(vault)
    assert not storage.store_path(vault).exists()
    for body in (response.json(), client.get(_vault_path(lab, name)).json(),
                 client.get(_vault_path(lab, "")[:-1]).json()["value"][0]):
        props = body["properties"]
        assert props["storageSettings"] == [{"datastoreType": "VaultStore", "type": "LocallyRedundant"}]
        assert props["strongroomStorageLocation"] == {
            "type": "S3", "endpointUrl": moto_s3, "bucket": bucket, "prefix": "api", "region": "us-east-1",
            "credentialSource": "AccessKey"}
        text = json.dumps(body)
        assert ACCESS_KEY["access_key_id"] not in text and ACCESS_KEY["secret_access_key"] not in text
        assert sdk.BackupVaultResource(body).properties.storage_settings[0].datastore_type == "VaultStore"
    logged = str(list(ActivityLogEntry.objects.filter(scope=vault.resource_id).values_list("details", flat=True)))
    assert bucket in logged and ACCESS_KEY["secret_access_key"] not in logged


def test_an_immutable_vault_on_a_bucket_without_object_lock_is_400(arm, lab, backup_admin, moto_s3):
    name = _name()
    body = _body(strongroomStorageLocation=_s3(moto_s3, make_bucket(moto_s3, object_lock=False)),
                 securitySettings={"immutabilitySettings": {"state": "Unlocked"}})
    response = arm(backup_admin).put(_vault_path(lab, name), body)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["target"] == f"{LOC}.bucket" and "Object Lock" in error["message"]
    assert not BackupVault.objects.filter(name=name).exists()


@pytest.mark.parametrize("location, target, words", [
    ({"type": "Cloud"}, f"{LOC}.type", ""),
    ({"type": "S3", "bucket": "Not_A_Bucket"}, f"{LOC}.bucket", "lower-case"),
    ({"type": "S3", "bucket": "fine-bucket", "accessKeyId": "only-the-id"}, f"{LOC}.secretAccessKey", "secret"),
    ({"type": "S3", "bucket": "fine-bucket", "endpointUrl": "ftp:/x"}, f"{LOC}.endpointUrl", "https://"),
    ({"type": "S3", "bucket": "no-such-bucket-here", "endpointUrl": "{moto}", "credentialSource": "AccessKey",
      **{"accessKeyId": "k", "secretAccessKey": "s"}}, f"{LOC}.bucket", "Could not reach"),
])
def test_a_bad_location_is_400_naming_the_field(arm, lab, backup_admin, moto_s3, location, target, words):
    name = _name()
    location = {k: (v.replace("{moto}", moto_s3) if isinstance(v, str) else v) for k, v in location.items()}
    response = arm(backup_admin).put(_vault_path(lab, name), _body(strongroomStorageLocation=location))
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["target"] == target and words in error["message"]
    assert not BackupVault.objects.filter(name=name).exists()


def test_patch_moves_an_empty_vault_to_a_bucket_and_an_echoed_location_changes_nothing(
        arm, lab, backup_admin, moto_s3, django_capture_on_commit_callbacks):
    client, bucket, name = arm(backup_admin), make_bucket(moto_s3), _name()
    created = client.put(_vault_path(lab, name), _body())
    assert created.json()["properties"]["strongroomStorageLocation"] == {"type": "Local"}
    local = storage.store_path(BackupVault.objects.get(name=name))
    assert local.exists()
    with django_capture_on_commit_callbacks(execute=True):  # the old, empty store goes after commit
        moved = client.patch(_vault_path(lab, name), {"properties": {"strongroomStorageLocation": _s3(moto_s3, bucket)}})
    assert moved.status_code == 200, moved.content
    vault = BackupVault.objects.get(name=name)
    assert storage.s3_location(vault).bucket == bucket and storage.store_exists(vault)
    sealed, store_id = vault.storage_location.credentials_encrypted, vault.store_id
    # a client that GETs the vault and PUTs it back (no keys: they are never returned) keeps everything
    body = client.get(_vault_path(lab, name)).json()
    again = client.put(_vault_path(lab, name), {k: body[k] for k in ("location", "tags", "identity", "properties")})
    assert again.status_code == 200, again.content
    vault = BackupVault.objects.get(name=name)
    assert (vault.storage_location.credentials_encrypted, vault.store_id) == (sealed, store_id)
    assert not local.exists()
