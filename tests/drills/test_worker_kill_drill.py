"""The fault drill, small enough for CI (the full set is `make drills`, scripts/drills.py).

A real worker process (Celery, its own queue, on Redis, told the test database's name) runs a backup
of ~100 MiB; once the job shows progress it gets SIGKILL. The reconciler hands the job back, a new
worker runs it again, and it completes: one recovery point, every snapshot in the store belongs to a
recovery point (no half point), and the store verifies.
"""

from __future__ import annotations

import random
import signal
import time

import pytest

from protection.jobs import runner as jobs
from protection.models import Job, JobStatus, RecoveryPoint
from protection.backups import services as backups
from tests.protection._backups_fixtures import (  # noqa: F401  (fixtures)
    ADLS, inventory, make_policy, principal_with, protect, put_blobs, snapshots_of, vault,
)
from tests.conftest import WorkerProcess, wait_until

pytestmark = [pytest.mark.drill, pytest.mark.celery, pytest.mark.django_db(transaction=True)]
MIB = 1024 * 1024


def wait_for(predicate, timeout, what, worker: WorkerProcess):
    def jobs_and_log():
        rows = list(Job.objects.values("operation", "status", "bytes_done", "claimed_at", "sent_at", "queue_error", "error_code"))
        return f"Jobs: {rows}\n{worker.tail()}"

    return wait_until(predicate, timeout, what, every=0.02, gave_up=lambda: worker.proc.poll() is not None,
                      explain=jobs_and_log)


def test_sigkill_of_the_worker_once_its_backup_shows_progress_then_a_new_worker_completes_it(
        lab, vault, make_policy, inventory, process_worker_queue, tmp_path):
    from vaults.storage import open_store

    documents = inventory.account.containers.get(name="documents")
    rng = random.Random(14)
    # Large enough that the backup is still reading after its first progress write (every 0.5 s)
    # even at a few hundred MiB/s: 384 MiB of incompressible data.
    put_blobs(lab.trainer, documents, {f"part-{i:02d}.bin": rng.randbytes(24 * MIB) for i in range(16)})
    instance = protect(lab, vault, make_policy(ADLS, "drill-daily"), inventory.account, name="bi-drill",
                       all_containers=False, containers=["documents"])

    victim = WorkerProcess(process_worker_queue, tmp_path / "victim.log")
    try:
        job = backups.backup_now(lab.trainer, instance, retention_rule="Default")  # enqueued on commit
        wait_for(lambda: Job.objects.filter(pk=job.pk, bytes_done__gt=0, status=JobStatus.IN_PROGRESS).exists(), 60,
                 "the backup to show progress", victim)
        killed_at = time.monotonic()
        victim.kill()
    finally:
        victim.stop()
    assert victim.proc.returncode == -signal.SIGKILL
    job.refresh_from_db()
    assert job.status == JobStatus.IN_PROGRESS and job.attempts == 1, (job.status, job.error_message)
    assert not RecoveryPoint.objects.filter(instance=instance).exists()

    rescuer = WorkerProcess(process_worker_queue, tmp_path / "rescuer.log")
    try:
        # The reconciler's tick (beat every 10 s in production), once the heartbeat has stopped.
        report = jobs.reconcile(stale_after=0)
        assert job.pk in report.rerun
        wait_for(lambda: Job.objects.filter(pk=job.pk, status__in=[JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_WARNINGS,
                                                                    JobStatus.FAILED]).exists(),
                 90, "the re-run to finish", rescuer)
        recovered_after = time.monotonic() - killed_at
    finally:
        rescuer.stop()
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, (job.error_code, job.error_message)
    assert job.attempts == 2
    assert recovered_after < 90

    [point] = RecoveryPoint.objects.filter(instance=instance)
    assert point.item_count == 16 and point.logical_bytes == 16 * 24 * MIB
    store = lambda: open_store(vault)  # noqa: E731
    # No half recovery point: the store holds exactly the completed point's snapshots.
    assert {s.id for s in snapshots_of(store, f"bi:{instance.pk}")} == {m["id"] for m in point.manifests}
    with store() as s:
        assert s.verify(point.manifest_id).ok
