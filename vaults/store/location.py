"""Which backend a location string names: a directory or an S3 bucket.

Kept apart from :mod:`vaults.store.backend` so the backend interface does not depend on its S3
implementation (which depends on it), and boto3 loads only when an ``s3://`` location is opened.
"""

from __future__ import annotations

from .backend import Backend, LocalBackend
from .errors import StoreError


def open_backend(location: str, *, create: bool = False, **options) -> Backend:
    """Backend for a location string.

    * a local path, optionally ``file://``-prefixed: :class:`LocalBackend`;
    * ``s3://bucket/prefix?endpoint=https://host:port&region=eu-west-1&addressing=path``:
      :class:`~vaults.store.s3.S3Backend`. Credentials never go into the location (it is
      safe to store and print); they come from ``options`` (``access_key_id``,
      ``secret_access_key``, ``session_token``), the ``STRONGROOM_S3_*`` environment
      variables, or boto3's usual chain (``AWS_*`` variables, profiles, instance roles).
    """
    if location.startswith("s3://"):
        from .s3 import S3Backend  # boto3 takes a while to load: only for S3 locations
        return S3Backend.from_url(location, **options)  # the bucket must exist (Object Lock is chosen at creation)
    if location.startswith("file://"):
        location = location[len("file://"):]
    if "://" in location:
        raise StoreError(f"unsupported store location {location!r} (a directory, file://DIR or s3://BUCKET/PREFIX)")
    return LocalBackend(location, create=create)
