"""What a backup attempt committed but never turned into a recovery point, and removing it.

The Backup job removes its own earlier attempt's leftovers before it runs again (`backup_job`); the
reconciler's cleanup and the Retention run remove those of backup jobs that failed (`retention`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from protection.datasources import driver_for
from protection.datasources.base import MISSING_PERMISSIONS
from protection.models import Job, RecoveryPoint

# Failures raised before the driver wrote anything: nothing to clean up after them.
FAILED_BEFORE_WRITING = {"UserErrorBackupInstanceNotFound", "UserErrorBackupInstanceNotProtected",
                         "UserErrorBackupNotAuthorized", MISSING_PERMISSIONS}


@dataclass
class Leftovers:
    """What `remove_attempt_leftovers` did: snapshots removed, and those the store still retains."""

    removed: int = 0
    deferred: list = field(default_factory=list)  # [{"snapshotId", "retainUntil", "mode"}]
    openers: list = field(default_factory=list)  # the stores looked at (for garbage collection)


def remove_attempt_leftovers(job: Job, instance=None, driver=None) -> Leftovers:
    """Delete engine snapshots an attempt of ``job`` committed but never turned into a recovery point.

    A worker can die between the engine writing a snapshot's manifest and the recovery point's row
    being committed. Such a snapshot carries the tag ``job:<id>``; it is removed before the job runs
    again (or, for a failed job, by the next retention run). Attempts never give their snapshots a
    retain-until (that happens when the recovery point is committed), but a worker that died in that
    very moment can leave a retained one: it is deferred (recorded on the job, shown on its page, and
    deleted by the first retention run after its retain-until), never an error."""
    from vaults.store import NotFound, RetentionError

    result = Leftovers()
    instance = instance or job.instance
    if instance is None:
        return result
    driver = driver or driver_for(instance.datasource_type)
    kept = {m["id"] for manifests in RecoveryPoint.objects.filter(instance=instance).values_list("manifests", flat=True)
            for m in manifests}
    for opener in driver.store_openers(instance):
        result.openers.append(opener)
        with opener() as store:
            for snap in store.list_snapshots():
                if f"job:{job.pk}" not in snap.tags or snap.id in kept:
                    continue
                try:
                    store.delete_snapshot(snap.id)
                    result.removed += 1
                except NotFound:
                    continue
                except RetentionError as exc:
                    result.deferred.append({"snapshotId": snap.id, "mode": exc.mode,
                                            "retainUntil": exc.until.isoformat() if exc.until else None})
    if result.deferred:
        info = dict(Job.objects.filter(pk=job.pk).values_list("extended_info", flat=True).first() or {})
        info["leftoversDeferred"] = result.deferred
        Job.objects.filter(pk=job.pk).update(extended_info=info)
        job.extended_info = info
    return result
