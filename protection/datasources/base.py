"""The driver interface: what every datasource type does when a backup job runs.

A driver reads a datasource's real data and writes it into a store through the engine
(`vaults.store`). The backup job handler (`protection.backups.services`) calls, in order:

1. (before the driver) the vault identity's rights, by `protection.readiness` — the same question
   configure protection asks — so a role revoked in IAM or an identity turned off fails the job with
   ``UserErrorMissingRequiredPermissions`` before any byte is read.
2. ``backup(instance, run)``: reads the data into the store, reporting progress through ``run`` and
   stopping when ``run.cancel`` says so. It returns a `BackupOutcome`; every engine snapshot it
   committed is registered with ``run.committed`` first, so a failure or a cancel after the first
   item deletes them again (a recovery point exists only when everything succeeded).
3. ``finalize(instance, outcome, run, rp_time)`` (inside the recovery point's transaction): anything
   the datasource records beside the recovery point, e.g. Elastic SAN's Snapshot resource.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Callable

from protection.jobs import runner as jobs

logger = logging.getLogger(__name__)

MISSING_PERMISSIONS = "UserErrorMissingRequiredPermissions"
MISSING_PERMISSIONS_MESSAGE = "Appropriate permissions to perform the operation are missing."


@dataclasses.dataclass
class BackupOutcome:
    """What a driver wrote: the engine snapshots of one recovery point, and its sizes."""

    manifests: list  # [{"item": name, "kind": "tree|stream|volume", "id": snapshot id}]
    logical_bytes: int = 0  # the data as the datasource holds it
    stored_bytes: int = 0  # new bytes the store had to keep (compressed, encrypted)
    transferred_bytes: int = 0  # bytes read from the datasource and sent through the engine
    item_count: int = 0
    warnings: list = dataclasses.field(default_factory=list)
    details: dict = dataclasses.field(default_factory=dict)
    snapshot_resource_id: str = ""


class RunContext:
    """One backup run's link between the engine and the job row.

    ``engine_progress(label)`` gives a callback for one engine call that adds its counts to what
    earlier items of the same run already did; ``cancel`` is the engine's cancel hook, set once the
    job machinery noticed a cancel request (at a progress write).
    """

    def __init__(self, job, progress: jobs.Progress, *, point_retain_until=None, retention_mode: str = "governance"):
        self.job = job
        self.progress = progress
        # Immutable vaults: the store keeps the point's objects until its expiry (issue 10's guard
        # reads the same date); None for operational snapshots and mutable vaults. It is set by the
        # job handler when the recovery point is committed, never by the engine during the attempt:
        # a lost attempt's leftover must stay deletable. So ``retain_until`` (what drivers hand the
        # engine) is always None.
        self.point_retain_until = point_retain_until
        self.retain_until = None
        self.retention_mode = retention_mode
        self.cancelled = False
        self.bytes_base = 0
        self.items_base = 0
        self.committed: list[tuple[object, str]] = []  # (store opener, snapshot id)

    # -- progress --------------------------------------------------------------------------
    def report(self, **fields) -> None:
        try:
            self.progress(**fields)
        except jobs.JobCancelled:
            self.cancelled = True

    def engine_progress(self, label: str) -> Callable:
        base_bytes, base_items = self.bytes_base, self.items_base

        def callback(p) -> None:
            current = f"{label}: {p.current}" if p.current and p.current != label else label
            self.report(bytes_done=base_bytes + p.bytes_done, items_done=base_items + p.items_done,
                        current_item=current)

        return callback

    def item_done(self, snapshot) -> None:
        """Move the bases past one finished engine call (its bytes read and items)."""
        stats = snapshot.stats or {}
        self.bytes_base += int(stats.get("bytes_read", 0))
        self.items_base += max(1, int(stats.get("files", 0)) + int(stats.get("dirs", 0)) + int(stats.get("links", 0)))
        self.report(bytes_done=self.bytes_base, items_done=self.items_base, force=True)

    def cancel(self) -> bool:
        """The engine's cancel hook (checked between chunks); the job's watchdog may have seen the
        cancel before any progress report did."""
        if isinstance(self.progress.interrupt, jobs.JobCancelled):
            self.cancelled = True
        return self.cancelled

    def check_cancel(self) -> None:
        if self.cancelled or self.progress.cancelled():
            self.cancelled = True
            raise jobs.JobCancelled()

    # -- cleanup ---------------------------------------------------------------------------
    def remember(self, open_store: Callable, snapshot_id: str) -> None:
        self.committed.append((open_store, snapshot_id))

    def discard_committed(self) -> None:
        """Delete every snapshot this run committed (the run failed or was cancelled)."""
        for open_store, snapshot_id in reversed(self.committed):
            try:
                with open_store() as store:
                    store.delete_snapshot(snapshot_id)
            except Exception:  # left for GC; logged so an operator can see it
                logger.exception("Could not delete snapshot %s of a failed backup", snapshot_id)
        self.committed.clear()


class Driver:
    """Base class: one subclass per datasource type (see the module docstring)."""

    datasource_type: str = ""
    datastore: str = "VaultStore"

    def backup(self, instance, run: RunContext) -> BackupOutcome:
        raise NotImplementedError

    def finalize(self, instance, outcome: BackupOutcome, run: RunContext, rp_time) -> None:
        return None

    def store_openers(self, instance) -> list:
        """Openers of the stores this datasource's snapshots live in (for cleaning up after a crash)."""
        from vaults.storage import open_store

        return [lambda: open_store(instance.vault)]

    def describe(self, instance) -> str:
        return instance.datasource_name

    def datasource_row(self, rows, instance, what: str):
        """The inventory row (of the manager or queryset ``rows``) of the protected datasource; the job
        fails when it is gone."""
        row = rows.filter(resource_id__iexact=instance.datasource_resource_id).first()
        if row is None:
            raise jobs.JobError("UserErrorDatasourceNotFound", f"The {what} '{instance.datasource_name}' no longer exists.")
        return row


def snapshot_stats(snapshot) -> dict:
    stats = snapshot.stats or {}
    return {
        "bytes_read": int(stats.get("bytes_read", 0)),
        "bytes_stored": int(stats.get("bytes_stored", 0)),
        "bytes_new": int(stats.get("bytes_new", 0)),
        "chunks_new": int(stats.get("chunks_new", 0)),
        "chunks_dup": int(stats.get("chunks_dup", 0)),
    }
