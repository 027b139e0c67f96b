"""A real Celery worker (a subprocess on Redis, its own queue, told the test database's name) killed
with SIGKILL in the middle of a backup: no recovery point and no snapshot exist, the job is still
InProgress, the reconciler hands it back, and a new worker re-runs it to completion — reusing the
chunks earlier recovery points already stored."""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path

import pytest
from django.conf import settings

from protection.jobs import runner as jobs
from protection.models import Job, JobStatus, RecoveryPoint
from protection.backups import services as backups
from tests.protection._backups_fixtures import (  # noqa: F401  (fixtures)
    ADLS, inventory, make_policy, principal_with, protect, put_blobs, snapshots_of, vault,
)
from tests.conftest import WorkerProcess, wait_until

pytestmark = [pytest.mark.celery, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
MIB = 1024 * 1024


def start_worker(queue, tmp_path, name):
    worker = WorkerProcess(queue, tmp_path / f"{name}.log")
    return worker.proc, worker.log


def wait_for(predicate, timeout, what, proc, log):
    return wait_until(predicate, timeout, what, every=0.02, gave_up=lambda: proc.poll() is not None,
                      explain=lambda: Path(log.name).read_text(errors="replace")[-3000:])


def test_a_worker_killed_mid_backup_leaves_no_point_and_the_job_is_run_again(lab, vault, make_policy, inventory,
                                                                          process_worker_queue, tmp_path):
    from vaults.storage import open_store

    documents = inventory.account.containers.get(name="documents")
    rng = random.Random(8)
    put_blobs(lab.trainer, documents, {f"a-{i}.bin": rng.randbytes(4 * MIB) for i in range(5)})
    instance = protect(lab, vault, make_policy(ADLS, "kill-daily"), inventory.account, name="bi-kill",
                       all_containers=False, containers=["documents"])
    first = jobs.run(backups.backup_now(lab.trainer, instance, retention_rule="Default").pk)
    assert first.status == JobStatus.COMPLETED, first.error_message
    big = {f"b-{i:02d}.bin": rng.randbytes(8 * MIB) for i in range(24)}  # 192 MiB nobody stored yet
    put_blobs(lab.trainer, documents, big)
    packs = Path(settings.STRONGROOM_DATA_ROOT) / "vaults" / str(vault.uuid) / "packs"
    packs_before = len(list(packs.rglob("*")))

    worker, log = start_worker(process_worker_queue, tmp_path, "victim")
    try:
        job = backups.backup_now(lab.trainer, instance, retention_rule="Default")  # enqueued on commit
        # Killed as soon as the run has written its first new pack (about a dozen more are to come).
        wait_for(lambda: len(list(packs.rglob("*"))) > packs_before, 90, "the backup's first pack", worker, log)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(30)
    finally:
        if worker.poll() is None:
            worker.kill()
        log.close()
    assert worker.returncode == -signal.SIGKILL

    job.refresh_from_db()
    assert job.status == JobStatus.IN_PROGRESS and job.attempts == 1 and job.claimed_at is not None
    assert job.bytes_done < 5 * 4 * MIB + 24 * 8 * MIB  # it died part way
    assert RecoveryPoint.objects.filter(instance=instance).count() == 1  # only the first backup's
    store = lambda: open_store(vault)  # noqa: E731
    assert [s.id for s in snapshots_of(store, f"bi:{instance.pk}")] == [m["id"] for m in first.recovery_point.manifests]

    report = jobs.reconcile(stale_after=0)  # the heartbeat stopped with the worker
    assert job.pk in report.rerun
    worker, log = start_worker(process_worker_queue, tmp_path, "rescuer")
    try:
        wait_for(lambda: Job.objects.filter(pk=job.pk, status__in=[JobStatus.COMPLETED, JobStatus.FAILED]).exists(), 120,
                 "the re-run to finish", worker, log)
    finally:
        worker.terminate()
        worker.wait(30)
        log.close()
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, job.error_message
    assert job.attempts == 2
    point = job.recovery_point
    assert point.item_count == 5 + 24
    assert point.logical_bytes == 5 * 4 * MIB + 24 * 8 * MIB
    # The first point's chunks were reused: at most the new 192 MiB needed storing.
    assert point.stored_bytes <= 24 * 8 * MIB + MIB
    with store() as s:
        assert s.verify(point.manifest_id).ok
    # Exactly the two points' snapshots are in the store: nothing of the killed attempt remains.
    expected = {m["id"] for m in first.recovery_point.manifests} | {m["id"] for m in point.manifests}
    assert {s.id for s in snapshots_of(store, f"bi:{instance.pk}")} == expected
