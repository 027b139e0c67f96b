"""The store's side of immutability: a recovery point's engine snapshots are retained (retain-until, governance
or compliance mode) until the point's expiry, in every store that holds a copy of it — the standard store or,
once archived, the archive store, and the secondary region's copy. Used when a vault becomes immutable
(`protection.deletion.services.apply_store_retention`) and when re-dating moves an expiry later
(`protection.redating`)."""

from __future__ import annotations

from django.utils import timezone

from protection.models import RecoveryPoint


def retain_in_store(point: RecoveryPoint, vault, mode: str) -> int:
    """Set the retain-until of every engine snapshot of ``point`` to its expiry (primary and, when it
    has one, secondary copy). Returns the number of objects changed."""
    from vaults.storage import open_secondary_store, open_store
    from vaults.store import NotFound

    archived = point.datastore == RecoveryPoint.Datastore.ARCHIVE  # archive tier (issue 21): its archive copy
    if (point.datastore != RecoveryPoint.Datastore.VAULT and not archived) or point.expiry_time is None:
        return 0
    if point.expiry_time <= timezone.now():  # the store's retention runs on real time
        return 0
    manifests = point.manifests or ([{"id": point.manifest_id}] if point.manifest_id else [])
    if archived:
        from vaults.storage import open_archive_store

        openers = [lambda: open_archive_store(vault)]
    else:
        openers = [lambda: open_store(vault)]
    if any(c.get("role") == "secondary" for c in point.copies or []):
        openers.append(lambda: open_secondary_store(vault))
    changed = 0
    for opener in openers:
        with opener() as store:
            for manifest in manifests:
                try:
                    changed += store.set_snapshot_retention(manifest["id"], point.expiry_time, mode)
                except NotFound:
                    continue
    return changed
