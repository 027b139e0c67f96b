"""Strongroom's vault store engine: a plain Python package (no Django).

Typical use::

    from vaults.store import LocalBackend, Store
    store = Store.init(LocalBackend("/srv/vault", create=True), platform_key)   # once
    store = Store.open(LocalBackend("/srv/vault"), platform_key)
    snap = store.backup_tree("/data", source_id="bi-42", progress=cb, cancel=event)
    store.verify(snap.id).ok
    store.restore(snap.id, "/restore/here")
"""

from .backend import COMPLIANCE, GOVERNANCE, Backend, LocalBackend, ObjectInfo, Retention
from .errors import (Cancelled, ChunkerUnavailable, DamageError, ImmutabilityUnsupported, IntegrityError,
                     LockError, NotFound, RetentionError, StorageFull, StoreError)
from .errors import KeyError_ as WrongKeyError
from . import pit
from .gc import GCReport
from .location import open_backend
from .lock import EXCLUSIVE, SHARED, LockInfo
from .progress import Progress
from .replicate import ReplicationReport
from .store import Snapshot, Store
from .verify import VerifyReport


def __getattr__(name):
    if name == "S3Backend":  # imported on first use: boto3 takes a while to load
        from .s3 import S3Backend
        return S3Backend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def retention_mode_for(immutability_state: str):
    """The retention mode for a vault's immutability state: ``"Unlocked"`` -> governance (an
    administrator can still bypass it), ``"Locked"`` -> compliance (nobody can); ``"Disabled"``
    -> None (no retention)."""
    return {"Unlocked": GOVERNANCE, "Locked": COMPLIANCE, "Disabled": None}[immutability_state]


__all__ = [
    "COMPLIANCE", "EXCLUSIVE", "GOVERNANCE", "SHARED", "Backend", "Cancelled", "ChunkerUnavailable",
    "DamageError", "GCReport", "ImmutabilityUnsupported", "IntegrityError", "LocalBackend", "LockError",
    "LockInfo", "NotFound", "ObjectInfo", "Progress", "ReplicationReport", "Retention", "RetentionError",
    "S3Backend", "Snapshot", "StorageFull", "Store", "StoreError", "VerifyReport", "WrongKeyError", "open_backend",
    "pit", "retention_mode_for",
]
