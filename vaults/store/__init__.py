"""Strongroom's vault store engine: a plain Python package (no Django).

Typical use::

    from vaults.store import LocalBackend, Store
    store = Store.init(LocalBackend("/srv/vault", create=True), platform_key)   # once
    store = Store.open(LocalBackend("/srv/vault"), platform_key)
    snap = store.backup_tree("/data", source_id="bi-42", progress=cb, cancel=event)
    store.verify(snap.id).ok
    store.restore(snap.id, "/restore/here")
"""

from .backend import COMPLIANCE, GOVERNANCE, Backend, LocalBackend, Retention, open_backend
from .errors import (Cancelled, ChunkerUnavailable, DamageError, IntegrityError, NotFound,
                     RetentionError, StoreError)
from .errors import KeyError_ as WrongKeyError
from .store import Progress, Snapshot, Store, VerifyReport

__all__ = [
    "COMPLIANCE", "GOVERNANCE", "Backend", "Cancelled", "ChunkerUnavailable", "DamageError",
    "IntegrityError", "LocalBackend", "NotFound", "Progress", "Retention", "RetentionError",
    "Snapshot", "Store", "StoreError", "VerifyReport", "WrongKeyError", "open_backend",
]
