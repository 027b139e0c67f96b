"""A vault's backup storage location (issue 22): Local (the default) or an S3-compatible bucket.

Chosen when the vault is created (`create_vault(..., storage_location=...)`) and changed from the vault's
Properties (`update_storage_location`) while the vault holds no recovery points. An S3 location is checked
on save: the bucket must answer, its prefix must be unused (no objects, no other vault's location nested in
or around it) and, for an immutable vault, the bucket must have Object Lock. An access key is sealed at
rest with `security.crypto.encrypt_secret` and never shown back.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction

from security.audit import guarded
from security.crypto import encrypt_secret
from security.operations import VAULT_WRITE
from vaults import storage
from vaults.models import ImmutabilityState, S3CredentialSource, StorageLocationType, VaultStorageLocation
from vaults.services.rows import locked, refresh

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
POINTS_HELD_MESSAGE = ("This vault holds recovery points, and they live in its current store ({where}): its backup "
                       "storage location cannot change. Create a new vault with the location you want instead.")


@dataclass(frozen=True)
class LocationSpec:
    """What a user typed for the backup storage location. Blank access key fields keep a stored key."""

    location_type: str = StorageLocationType.LOCAL
    endpoint_url: str = ""
    bucket: str = ""
    prefix: str = ""
    region: str = ""
    credential_source: str = S3CredentialSource.ENVIRONMENT
    profile: str = ""
    access_key_id: str = ""
    secret_access_key: str = ""

    @classmethod
    def of(cls, data) -> LocationSpec:
        if isinstance(data, LocationSpec):
            return data
        data = data or {}
        fields = cls.__dataclass_fields__
        return cls(**{k: (str(data.get(k) or "").strip() if k != "secret_access_key" else str(data.get(k) or ""))
                      for k in fields if data.get(k) not in (None, "")})

    @property
    def is_s3(self) -> bool:
        return self.location_type == StorageLocationType.S3

    def summary(self) -> dict:
        """What the activity log and guards see: never a credential."""
        if not self.is_s3:
            return {"type": StorageLocationType.LOCAL}
        return {"type": StorageLocationType.S3, "endpoint": self.endpoint_url, "bucket": self.bucket,
                "prefix": self.prefix.strip("/"), "credentials": self.credential_source}


def location_summary(vault) -> dict:
    loc = storage.s3_location(vault)
    if loc is None:
        return {"type": StorageLocationType.LOCAL}
    return {"type": StorageLocationType.S3, "endpoint": loc.endpoint_url, "bucket": loc.bucket,
            "prefix": loc.prefix.strip("/"), "credentials": loc.credential_source}


def _row_for(vault, spec: LocationSpec, current: VaultStorageLocation | None) -> VaultStorageLocation:
    """The unsaved location row ``spec`` describes (credentials sealed; blank key fields keep ``current``'s)."""
    if spec.location_type not in StorageLocationType.values:
        raise ValidationError({"location_type": f"'{spec.location_type}' is not a backup storage location: "
                                                "choose Local or S3-compatible bucket."})
    cache = vault._state.fields_cache
    had, before = "storage_location" in cache, cache.get("storage_location")
    row = VaultStorageLocation(vault=vault, location_type=spec.location_type)
    if had:  # building the row must not change what the vault's (current) location reads as
        cache["storage_location"] = before
    else:
        cache.pop("storage_location", None)
    if not spec.is_s3:
        return row
    errors = {}
    if spec.endpoint_url and not re.match(r"^https?://[^\s/]+", spec.endpoint_url):
        errors["endpoint_url"] = "Enter the endpoint as a URL (https://host:port), or leave it blank for AWS S3."
    if not _BUCKET_RE.match(spec.bucket):
        errors["bucket"] = "Enter the bucket's name: 3-63 lower-case letters, digits, dots or hyphens."
    if spec.credential_source not in S3CredentialSource.values:
        errors["credential_source"] = "Choose where the credentials come from: the environment or an access key."
    if errors:
        raise ValidationError(errors)
    row.endpoint_url, row.bucket, row.region = spec.endpoint_url.rstrip("/"), spec.bucket, spec.region
    row.prefix = spec.prefix.strip("/")
    row.credential_source = spec.credential_source
    if spec.credential_source == S3CredentialSource.ENVIRONMENT:
        row.profile = spec.profile
        return row
    if spec.access_key_id or spec.secret_access_key:
        if not (spec.access_key_id and spec.secret_access_key):
            raise ValidationError({"secret_access_key": "Enter both the access key ID and the secret access key."})
        row.credentials_encrypted = encrypt_secret(
            json.dumps({"id": spec.access_key_id, "secret": spec.secret_access_key}), purpose=row.secret_purpose)
    elif current is not None and current.credentials_encrypted:
        row.credentials_encrypted = current.credentials_encrypted
    else:
        raise ValidationError({"access_key_id": "Enter the access key ID and the secret access key."})
    return row


def _same_place(a: VaultStorageLocation, b: VaultStorageLocation | None) -> bool:
    return bool(b and b.is_s3 and (a.endpoint_url, a.bucket, a.prefix) == (b.endpoint_url, b.bucket, b.prefix))


def _nested(a: str, b: str) -> bool:
    a, b = a.strip("/") + "/", b.strip("/") + "/"
    return a == "/" or b == "/" or a.startswith(b) or b.startswith(a)


def check_location(row: VaultStorageLocation, *, immutable: bool, moving: bool = True) -> None:
    """Refuse, naming what to check, an S3 location that cannot hold this vault's store."""
    from vaults.store import StoreError

    where = f"bucket '{row.bucket}' at {row.endpoint_url or 'AWS S3'}"
    others = VaultStorageLocation.objects.filter(location_type=StorageLocationType.S3, endpoint_url=row.endpoint_url,
                                                 bucket=row.bucket).exclude(vault_id=row.vault_id)
    for other in others.select_related("vault"):
        if _nested(row.prefix, other.prefix):
            raise ValidationError({"prefix": f"The prefix '{row.prefix or '(none)'}' of {where} overlaps the store of "
                                             f"the vault '{other.vault.name}' (prefix '{other.prefix or '(none)'}'): "
                                             "a store is never shared. Choose another prefix."})
    try:
        backend = storage.s3_backend(row, quick=True)
        try:
            if moving and next(iter(backend.list("")), None) is not None:
                raise ValidationError({"prefix": f"The prefix '{row.prefix or '(none)'}' of {where} already holds "
                                                 "objects (another store?). Choose an empty prefix."})
            if immutable and not backend.supports_retention():
                raise ValidationError({"bucket": f"The {where} does not have S3 Object Lock enabled, so it cannot hold "
                                                 "an immutable vault's recovery points. Object Lock can only be turned on "
                                                 "when a bucket is created: use a bucket created with Object Lock."})
        finally:
            backend.close()
    except (StoreError, OSError, ValueError) as exc:
        raise ValidationError({"bucket": f"Could not reach the {where}: {exc}. Check the endpoint URL, the bucket "
                                         "name, the region and the credentials."}) from None
    except Exception as exc:  # botocore's errors: bad endpoint, credentials, TLS
        if isinstance(exc, ValidationError):
            raise
        raise ValidationError({"bucket": f"Could not reach the {where}: {exc.__class__.__name__}: {exc}. Check the "
                                         "endpoint URL, the bucket name, the region and the credentials."}) from None


def save_new_location(vault, spec) -> None:
    """At creation (inside the create's guarded write, before the store is made): check and save ``spec``."""
    spec = LocationSpec.of(spec)
    if not spec.is_s3:
        return
    row = _row_for(vault, spec, None)
    check_location(row, immutable=vault.immutability_state != ImmutabilityState.DISABLED)
    row.save()
    vault.storage_location = row


def update_storage_location(principal, vault, spec) -> None:
    """Change the vault's backup storage location (or replace its S3 credentials).

    Refused while the vault holds recovery points (they live in the current store). The new store is made
    at the new place inside the transaction; the old, empty one is removed after commit.
    """
    spec = LocationSpec.of(spec)
    before = location_summary(vault)
    change = {"setting": "storageLocation", "from": before, "to": spec.summary()}
    with guarded(principal, VAULT_WRITE, vault, change=change, details={"storageLocation": spec.summary()}):
        row = locked(vault)
        current = storage.s3_location(row)
        new = _row_for(row, spec, current)
        moving = not (_same_place(new, current) or (not new.is_s3 and current is None))
        if moving:
            _refuse_if_points(row, current)
        if new.is_s3:
            check_location(new, immutable=row.immutability_state != ImmutabilityState.DISABLED, moving=moving)
        if not moving:
            if new.is_s3:
                VaultStorageLocation.objects.filter(vault=row).update(
                    region=new.region, credential_source=new.credential_source, profile=new.profile,
                    credentials_encrypted=new.credentials_encrypted)
            refresh(vault, row)
            return
        old = storage.detach_store(row)
        VaultStorageLocation.objects.filter(vault=row).delete()
        if new.is_s3:
            new.save()
            row.storage_location = new
        else:
            row._state.fields_cache.pop("storage_location", None)
        row.store_id = storage.create_store(row)
        row.save(update_fields=["store_id", "updated_at"])
        transaction.on_commit(old)
    refresh(vault, row)
    vault._state.fields_cache.pop("storage_location", None)


def _refuse_if_points(row, current) -> None:
    with storage.open_store(row) as store:
        held = bool(store.list_snapshots())
    if held:
        where = current.describe() if current else "Local"
        raise ValidationError({"location_type": POINTS_HELD_MESSAGE.format(where=where)})
