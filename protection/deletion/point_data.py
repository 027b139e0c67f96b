"""Deleting a recovery point's data: its engine snapshots (in the vault's store, its secondary copy, or
a snapshot resource group's operational store) and its Elastic SAN snapshot resource, then reclaiming
the space with the engine's garbage collection. Retention (expiry) and purge both delete through here.
"""

from __future__ import annotations

from protection.models import RecoveryPoint


class Deferred(Exception):
    """The store still retains the point (its lock outlives the lab clock): try again later."""


def _store_of(rp, manifest):
    """(key, opener) of the store that holds ``manifest`` of ``rp``."""
    if manifest.get("store") == "operational" or rp.datastore == RecoveryPoint.Datastore.OPERATIONAL:
        from portal.models import ResourceGroup
        from protection.operational_store import open_operational_store

        group_id = manifest.get("resource_group_id") or rp.instance.snapshot_resource_group_id
        group = ResourceGroup.objects.get(resource_id__iexact=group_id)
        return ("operational", group.pk), lambda: open_operational_store(group, create=False)
    from vaults.storage import open_store

    vault = rp.instance.vault
    if manifest.get("store") == "archive":  # archive tier (issue 21): the point's copy in the vault-archive store
        from vaults.storage import open_archive_store

        return ("archive", vault.pk), lambda: open_archive_store(vault)
    return ("vault", vault.pk), lambda: open_store(vault)


# archive tier (issue 21): an archived point's rehydrated copy in the standard store goes with it
REHYDRATED_COPY_STATES = ("CREATE_IN_PROGRESS", "COMPLETED", "DELETE_IN_PROGRESS")


def _rehydrated_copy(rp, manifests) -> list:
    if rp.datastore != RecoveryPoint.Datastore.ARCHIVE or rp.rehydration_status not in REHYDRATED_COPY_STATES:
        return []
    from vaults.storage import open_store

    vault = rp.instance.vault
    return [(("vault", vault.pk), lambda: open_store(vault), m) for m in manifests]


def delete_snapshots(rp, *, bypass_governance: bool = False) -> dict:
    """Delete every engine snapshot of ``rp`` (and of its secondary copy); returns {store key: opener}
    of the stores touched. ``bypass_governance``: governance-mode retention (left by an immutability
    that was enabled and then disabled) does not stop it; compliance retention always does."""
    from vaults.store import NotFound, RetentionError

    touched = {}
    manifests = rp.manifests or ([{"id": rp.manifest_id}] if rp.manifest_id else [])
    stores = [_store_of(rp, manifest) + (manifest,) for manifest in manifests] + _rehydrated_copy(rp, manifests)
    if any(c.get("role") == "secondary" for c in rp.copies or []):
        from vaults.storage import open_secondary_store

        vault = rp.instance.vault
        stores += [(("secondary", vault.pk), lambda: open_secondary_store(vault), m) for m in manifests]
    for key, opener, manifest in stores:
        try:
            with opener() as store:
                store.delete_snapshot(manifest["id"], bypass_governance=bypass_governance)
        except NotFound:
            continue  # already gone: a previous run deleted it and died before the row went
        except RetentionError as exc:
            raise Deferred(str(exc)) from None
        touched[key] = opener
    return touched


def delete_inventory_snapshot(rp) -> None:
    if not rp.snapshot_resource_id:
        return
    from portal.inventory import services as inventory
    from portal.inventory.models import Snapshot

    snapshot = Snapshot.objects.filter(resource_id__iexact=rp.snapshot_resource_id).first()
    if snapshot is not None:
        inventory.delete_snapshot(rp.instance.vault.identity, snapshot)


GC_WAIT_SECONDS = 10


def reclaim(openers) -> list:
    """Garbage-collect each touched store (the engine keeps anything newer than its safety window
    and anything retained); a store busy with backups is left for the next run."""
    from vaults.store import LockError

    reports, seen = [], set()
    for opener in openers:
        with opener() as store:
            if store.backend.location in seen:
                continue
            seen.add(store.backend.location)
            try:
                report = store.gc(wait=GC_WAIT_SECONDS, owner="Strongroom retention")
            except LockError as exc:
                reports.append(f"{store.backend.location}: busy, reclaimed at the next run ({exc})")
                continue
            reports.append(report.summary())
    return reports
