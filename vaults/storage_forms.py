"""The backup storage location's fields (issue 22): on the create wizard's Vault Properties tab and on the
vault's Backup storage location blade. Forms check what they can see alone; the bucket itself is checked
by `vaults.services.storage_location` when the vault is saved."""

from __future__ import annotations

from django import forms

from vaults.models import S3CredentialSource, StorageLocationType

LOCATION_FIELDS = ("location_type", "endpoint_url", "bucket", "prefix", "region", "credential_source", "profile",
                   "access_key_id", "secret_access_key")


def location_fields() -> dict:
    return {
        "location_type": forms.ChoiceField(
            choices=StorageLocationType.choices, initial=StorageLocationType.LOCAL, widget=forms.RadioSelect,
            label="Backup storage location", required=False,
            help_text="Local keeps the vault's store on this server's data disk. An S3-compatible bucket lets "
                      "workers on several hosts share it."),
        "endpoint_url": forms.CharField(required=False, max_length=500, label="Endpoint URL",
                                        help_text="https://host:port of the S3-compatible service; blank for AWS S3."),
        "bucket": forms.CharField(required=False, max_length=63, label="Bucket"),
        "prefix": forms.CharField(required=False, max_length=500, label="Prefix",
                                  help_text="A key prefix no other store uses (the vault's stores go below it)."),
        "region": forms.CharField(required=False, max_length=64, label="Region", help_text="For example us-east-1."),
        "credential_source": forms.ChoiceField(
            choices=S3CredentialSource.choices, initial=S3CredentialSource.ENVIRONMENT, widget=forms.RadioSelect,
            label="Credentials", required=False,
            help_text="From the environment: the workers' AWS_* / STRONGROOM_S3_* variables or a named profile. "
                      "An access key is stored encrypted and never shown back."),
        "profile": forms.CharField(required=False, max_length=128, label="Profile (optional)"),
        "access_key_id": forms.CharField(required=False, max_length=128, label="Access key ID",
                                         widget=forms.TextInput(attrs={"autocomplete": "off"})),
        "secret_access_key": forms.CharField(required=False, max_length=256, label="Secret access key", strip=False,
                                             widget=forms.PasswordInput(render_value=False,
                                                                        attrs={"autocomplete": "new-password"})),
    }


def clean_location(form, data: dict, *, key_stored: bool = False) -> None:
    """Field errors a form can see alone: the bucket is required for S3, and an access key needs both parts
    (unless one is stored and both are left blank to keep it)."""
    if data.get("location_type") != StorageLocationType.S3:
        data["location_type"] = StorageLocationType.LOCAL  # blank (a client that never saw the field): Local
        return
    if not data.get("bucket"):
        form.add_error("bucket", "Enter the bucket's name.")
    if data.get("credential_source") == S3CredentialSource.ACCESS_KEY:
        key_id, secret = data.get("access_key_id"), data.get("secret_access_key")
        if bool(key_id) != bool(secret) or not (key_id or key_stored):
            form.add_error("secret_access_key" if key_id else "access_key_id",
                           "Enter the access key ID and the secret access key.")


def location_spec(data: dict) -> dict:
    return {k: data.get(k) or "" for k in LOCATION_FIELDS}


def location_label(data: dict) -> str:
    if data.get("location_type") != StorageLocationType.S3:
        return "Local"
    where = f"s3://{data.get('bucket')}/{(data.get('prefix') or '').strip('/')}".rstrip("/")
    return where + (f" ({data['endpoint_url']})" if data.get("endpoint_url") else "")


class StorageLocationForm(forms.Form):
    """The vault's Backup storage location blade."""

    def __init__(self, *args, location=None, **kwargs):
        initial = kwargs.pop("initial", None) or {}
        if location is not None and location.is_s3:
            initial.update({k: getattr(location, k) for k in LOCATION_FIELDS[:7]})
        super().__init__(*args, initial=initial, **kwargs)
        self.fields.update(location_fields())
        self.key_stored = bool(location is not None and location.credentials_encrypted)

    def clean(self):
        data = super().clean()
        clean_location(self, data, key_stored=self.key_stored)
        return data
