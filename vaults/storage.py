"""The one place the Django side talks to the store engine (`vaults.store`).

A vault's store lives in ``STRONGROOM_DATA_ROOT / "vaults" / <vault uuid>`` (a `LocalBackend`), its
index cache in ``STRONGROOM_DATA_ROOT / "vault-cache" / <vault uuid>``, and its random data key is
wrapped by the platform key (`security.crypto.platform_key()`). Everything else in `vaults` calls
these functions and never imports the engine, so S3 backends or customer-managed keys change only
this module.

A vault whose backup storage location is an S3-compatible bucket (`vaults.models.VaultStorageLocation`)
keeps its three stores as key prefixes of that bucket: ``<prefix>/primary``, ``<prefix>/secondary/<paired
region>`` and ``<prefix>/archive``; its index caches stay on the local disk as above. Every function
below picks the backend from the vault, so callers never know which one it is.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from django.conf import settings

from security.crypto import platform_key


PRIMARY_PART = "primary"
ARCHIVE_PART = "archive"
SECONDARY_PART = "secondary"


def s3_location(vault):
    """The vault's S3 `VaultStorageLocation`, or None when its store is local (the default)."""
    from django.core.exceptions import ObjectDoesNotExist

    if vault is None or vault.pk is None:
        return None
    try:
        loc = vault.storage_location
    except ObjectDoesNotExist:
        return None
    return loc if loc.is_s3 else None


def s3_backend(loc, part: str = "", *, check_bucket: bool = True, quick: bool = False):
    """An `S3Backend` on ``loc``'s bucket at ``<prefix>/<part>``. ``quick``: one attempt, short timeouts
    (for checking a location a user just typed, so a wrong endpoint fails in seconds)."""
    from vaults.models import S3CredentialSource
    from vaults.store.s3 import S3Backend

    key_id, secret = loc.access_key() if loc.credential_source == S3CredentialSource.ACCESS_KEY else ("", "")
    profile = loc.profile if loc.credential_source == S3CredentialSource.ENVIRONMENT else ""
    prefix = "/".join(p for p in (loc.prefix.strip("/"), part) if p)
    options = dict(max_attempts=1, retries=0, connect_timeout=5, read_timeout=15) if quick else {}
    return S3Backend(loc.bucket, prefix, endpoint_url=loc.endpoint_url or None, region=loc.region or None,
                     access_key_id=key_id or None, secret_access_key=secret or None, profile=profile or None,
                     check_bucket=check_bucket, **options)


def _secondary_part(vault) -> str:
    region = vault.secondary_region
    return f"{SECONDARY_PART}/{region.pk if region else 'none'}"


def store_path(vault) -> Path:
    return Path(settings.STRONGROOM_DATA_ROOT) / "vaults" / str(vault.uuid)


def cache_path(vault) -> Path:
    return Path(settings.STRONGROOM_DATA_ROOT) / "vault-cache" / str(vault.uuid)


def create_store(vault) -> str:
    """Initialise an empty store for ``vault`` and return the engine's store id.

    Refuses to reuse a folder that already holds anything (a store must never be shared). On any
    failure it removes what it created, so a failed init leaves no folder behind.
    """
    from vaults.store import LocalBackend, Store

    if loc := s3_location(vault):
        backend = s3_backend(loc, PRIMARY_PART)
        if next(iter(backend.list("")), None) is not None:
            raise FileExistsError(f"{backend.location} already holds objects; refusing to create a vault store there.")
    else:
        path = store_path(vault)
        if path.exists() and any(path.iterdir()):
            raise FileExistsError(f"The store folder {path} is not empty; refusing to create a vault store there.")
        backend = None
    try:
        backend = backend or LocalBackend(str(store_path(vault)), create=True)
        store = Store.init(backend, platform_key(), cache_dir=str(cache_path(vault)))
        try:
            return store.id
        finally:
            store.close()
    except BaseException:
        destroy_store(vault)
        raise


def open_store(vault):
    """The vault's open `vaults.store.Store` (use it as a context manager, or close it)."""
    from vaults.store import Store

    return Store.open(_primary_backend(vault), platform_key(), cache_dir=str(cache_path(vault)))


def _primary_backend(vault):
    from vaults.store import LocalBackend

    if loc := s3_location(vault):
        return s3_backend(loc, PRIMARY_PART)
    return LocalBackend(str(store_path(vault)))


# --- the secondary region (geo-redundant vaults) ----------------------------------------------------
# A geo-redundant vault's copy lives under STRONGROOM_SECONDARY_ROOT, configured apart from the data root
# (production: another disk or host): ``<secondary root>/<paired region>/vaults/<vault uuid>``, its index
# cache beside it in ``.../vault-cache/<vault uuid>``. Replicas made before this setting existed live in
# ``<data root>/vaults-secondary/<region>/<vault uuid>``: they are read (and written) where they are until
# moved; `secondary_store_path` prefers the new place and falls back to that one only when it holds a
# replica and the new place does not. Restores from the secondary region open only these stores.


def secondary_root() -> Path:
    """STRONGROOM_SECONDARY_ROOT, or (unset) the folder tree beside the data root: ``<data root>-secondary``."""
    configured = getattr(settings, "STRONGROOM_SECONDARY_ROOT", None)
    if configured:
        return Path(configured)
    data = Path(settings.STRONGROOM_DATA_ROOT)
    return data.with_name(data.name + "-secondary")


SECONDARY_INSIDE = "inside"
SECONDARY_UNSET = "unset"


def secondary_root_problem() -> tuple[str, str]:
    """Why the secondary root is not storage apart from the primary's: (``SECONDARY_INSIDE`` or
    ``SECONDARY_UNSET``, the text), or ("", "") when it is configured apart."""
    data = Path(settings.STRONGROOM_DATA_ROOT).resolve()
    root = secondary_root().resolve()
    if root == data or data in root.parents:
        return SECONDARY_INSIDE, (f"STRONGROOM_SECONDARY_ROOT ({root}) is inside STRONGROOM_DATA_ROOT ({data}): a geo-redundant "
                "vault's secondary copy would share the primary's disk and be lost with it.")
    if not getattr(settings, "STRONGROOM_SECONDARY_ROOT", None):
        return SECONDARY_UNSET, (f"STRONGROOM_SECONDARY_ROOT is not set: secondary-region copies go to {root}, beside the data "
                "root on the same machine. A real deployment needs separate storage (another disk or host).")
    return "", ""


def _legacy_secondary_path(vault, region_key: str) -> Path:
    return Path(settings.STRONGROOM_DATA_ROOT) / "vaults-secondary" / region_key / str(vault.uuid)


def secondary_store_path(vault) -> Path:
    """Where a geo-redundant vault's replica lives: under the secondary root, per paired region."""
    region = vault.secondary_region
    key = region.pk if region else "none"
    path = secondary_root() / key / "vaults" / str(vault.uuid)
    legacy = _legacy_secondary_path(vault, key)
    if not (path / "config").is_file() and (legacy / "config").is_file():
        return legacy
    return path


def secondary_cache_path(vault) -> Path:
    region = vault.secondary_region
    return secondary_root() / (region.pk if region else "none") / "vault-cache" / str(vault.uuid)


def open_secondary_store(vault, *, create: bool = False):
    """The open replica `Store` of a geo-redundant vault in its paired region.

    With ``create`` a missing replica is made (`Store.init_replica`, sharing the primary's secret)
    under an exclusive file lock, so two replication jobs never make two replicas with different
    keys. Raises the engine's `NotFound` when it does not exist and ``create`` is false. Without
    ``create`` it opens the secondary store only: the primary is never read.
    """
    return _open_replica(vault, secondary_store_path(vault), secondary_cache_path(vault),
                         s3_part=_secondary_part(vault), create=create, what="secondary store")


def _open_replica(vault, path: Path, cache: Path, *, s3_part: str, create: bool, what: str):
    """Open the replica `Store` of ``vault`` at ``path`` (the secondary region's, the archive tier's); with
    ``create`` a missing one is made from the primary (`Store.init_replica`, sharing its secret) under an
    exclusive file lock, so two jobs never make two replicas with different keys. An S3 vault keeps it under
    ``s3_part`` of its bucket prefix."""
    import fcntl
    import os

    from vaults.store import LocalBackend, NotFound, Store

    loc = s3_location(vault)
    backend = s3_backend(loc, s3_part) if loc else None
    if not (backend.exists("config") if backend else (path / "config").is_file()):
        if not create:
            raise NotFound(f"no {what} for vault {vault.name}")
        lock_at = cache if loc else path  # a bucket has no folder to lock beside: lock beside the index cache
        lock_at.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(str(lock_at.parent / f".{lock_at.name}.init-lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            backend = backend or LocalBackend(str(path), create=True)
            if not backend.exists("config"):
                with open_store(vault) as primary:
                    return Store.init_replica(backend, primary, platform_key(), cache_dir=str(cache))
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
    return Store.open(backend or LocalBackend(str(path)), platform_key(), cache_dir=str(cache))


# --- the vault-archive tier ---------------------------------------------------------------------------


def archive_root() -> Path:
    """``STRONGROOM_ARCHIVE_ROOT``, or ``archive`` beside the data root. Never inside the standard stores'
    folder (``<data root>/vaults``): the archive tier must be storage of its own."""
    configured = getattr(settings, "STRONGROOM_ARCHIVE_ROOT", None)
    root = Path(configured) if configured else Path(settings.STRONGROOM_DATA_ROOT).parent / "archive"
    standard = (Path(settings.STRONGROOM_DATA_ROOT) / "vaults").resolve()
    resolved = root.resolve()
    if resolved == standard or standard in resolved.parents:
        raise ValueError(f"STRONGROOM_ARCHIVE_ROOT ({root}) lies inside the standard stores' folder ({standard}); "
                         "give the archive tier a root of its own.")
    return root


def archive_store_path(vault) -> Path:
    return archive_root() / str(vault.uuid)


def _archive_cache(vault) -> Path:
    return Path(settings.STRONGROOM_DATA_ROOT) / "vault-cache" / f"{vault.uuid}-archive"


def archive_exists(vault) -> bool:
    if loc := s3_location(vault):
        return s3_backend(loc, ARCHIVE_PART).exists("config")
    return (archive_store_path(vault) / "config").is_file()


def open_archive_store(vault, *, create: bool = False):
    """The open vault-archive `Store` of ``vault`` (its colder tier, under `archive_root`).

    Made like the geo replica (`Store.init_replica`, sharing the vault's secret, so a recovery point's
    packs and manifests move byte for byte and restore with the same keys), under an exclusive file lock
    when ``create``. Raises the engine's `NotFound` when it does not exist and ``create`` is false.
    """
    return _open_replica(vault, archive_store_path(vault), _archive_cache(vault), s3_part=ARCHIVE_PART, create=create,
                         what="archive store")


def store_exists(vault) -> bool:
    if loc := s3_location(vault):
        return s3_backend(loc, PRIMARY_PART).exists("config")
    return (store_path(vault) / "config").is_file()


def destroy_store(vault) -> None:
    """Remove the vault's store and its cache. Idempotent.

    Only the deletion service calls this (after its guards allowed the delete, and after commit).
    """
    if loc := s3_location(vault):
        _purge_s3(loc)
    root = Path(settings.STRONGROOM_DATA_ROOT)
    replicas = [*(root / "vaults-secondary").glob(f"*/{vault.uuid}"), *secondary_root().glob(f"*/vaults/{vault.uuid}"),
                *secondary_root().glob(f"*/vault-cache/{vault.uuid}")]
    archive = [archive_store_path(vault), _archive_cache(vault)]
    for path in (store_path(vault), cache_path(vault), *replicas, root / "vault-cache" / f"{vault.uuid}-secondary",
                 *archive):
        if path.exists():
            # Retained objects are read-only on disk; the vault itself is being deleted (its guards
            # allowed it), so the folder goes as a whole.
            shutil.rmtree(path, onerror=_make_writable_and_retry)


def detach_store(vault):
    """Before a vault's (empty) store moves elsewhere: clear its local index cache now, and return the
    callable that removes the old store's data (call it after commit, once the new store is in place)."""
    loc = s3_location(vault)
    shutil.rmtree(cache_path(vault), ignore_errors=True)
    path = store_path(vault)

    def remove_old():
        if loc is not None:
            _purge_s3(loc)
        elif path.exists():
            shutil.rmtree(path, onerror=_make_writable_and_retry)
    return remove_old


def _purge_s3(loc) -> None:
    """Delete the objects of the vault's three stores in its bucket (bypassing governance retention: the
    vault is being deleted and its guards allowed it). Objects under compliance retention stay until
    their retention ends; they are logged, not an error, so the vault's deletion completes."""
    import logging

    from vaults.store import StoreError

    backend = s3_backend(loc, check_bucket=False)
    for part in (PRIMARY_PART, SECONDARY_PART, ARCHIVE_PART):
        for name in list(backend.list(part + "/")):
            try:
                backend.delete(name, bypass_governance=True)
            except StoreError as exc:
                logging.getLogger(__name__).warning("Kept %s in %s: %s", name, backend.location, exc)
    backend.close()


def _make_writable_and_retry(func, path, _exc_info):
    import os
    import stat

    os.chmod(path, stat.S_IWUSR | stat.S_IRUSR | stat.S_IXUSR)
    func(path)


def require_immutable_store(vault) -> None:
    """Refuse, with a message a user can act on, when the vault's store cannot keep recovery points
    immutable (an S3 bucket without Object Lock). Called before immutability is enabled."""
    from vaults.store import ImmutabilityUnsupported

    with open_store(vault) as store:
        try:
            store.require_immutability()
        except ImmutabilityUnsupported as exc:
            raise ValueError(
                f"This vault's store cannot hold immutable recovery points ({exc}). Move the vault's store to "
                "storage that enforces retention (an S3 bucket created with Object Lock) before enabling immutability."
            ) from exc
