"""The fault drill, small enough for CI (the full set is `make drills`, scripts/drills.py).

A real worker process (Celery, its own queue, on Redis, told the test database's name) runs a backup
of ~100 MiB; once the job shows progress it gets SIGKILL. The reconciler hands the job back, a new
worker runs it again, and it completes: one recovery point, every snapshot in the store belongs to a
recovery point (no half point), and the store verifies.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from protection.jobs import runner as jobs
from protection.models import Job, JobStatus, RecoveryPoint
from protection.backups import services as backups
from tests.protection._backups_fixtures import (  # noqa: F401  (fixtures)
    ADLS, _fast_passwords, inventory, make_policy, principal_with, protect, put_blobs, snapshots_of, vault,
)

pytestmark = [pytest.mark.drill, pytest.mark.celery, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024


@pytest.fixture
def drill_queue(worker_id):
    if not settings.CELERY_BROKER_URL.startswith("redis://") or connection.vendor != "postgresql":
        if os.environ.get("STRONGROOM_REQUIRE_SERVICES"):
            pytest.fail("CI must run the drill against PostgreSQL and Redis.")
        pytest.skip("The drill needs PostgreSQL (DATABASE_URL) and Redis (CELERY_BROKER_URL).")
    from portal.celery import app

    queue = f"strongroom-drill-{worker_id}-{os.getpid()}"
    previous = app.conf.task_default_queue
    app.conf.task_default_queue = queue
    yield queue
    app.conf.task_default_queue = previous


class Worker:
    """A Celery worker in its own process group (so SIGKILL takes the whole of it, like the OOM killer)."""

    def __init__(self, queue, log_path: Path):
        db = connection.settings_dict
        env = {
            **os.environ,
            "DATABASE_URL": f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "CELERY_TASK_DEFAULT_QUEUE": queue,
            "STRONGROOM_DATA_ROOT": str(settings.STRONGROOM_DATA_ROOT),
            "STRONGROOM_ATTACH_ROOTS": ",".join(str(p) for p in settings.STRONGROOM_ATTACH_ROOTS),
        }
        if db.get("PASSWORD"):
            env["PGPASSWORD"] = db["PASSWORD"]
        self.log_path = log_path
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "portal", "worker", "-Q", queue, "-P", "solo", "-c", "1",
             "-n", f"{log_path.stem}@%h", "-l", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=ROOT, env=env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


def wait_for(predicate, timeout, what, worker: Worker):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if worker.proc.poll() is not None:
            break
        time.sleep(0.02)
    jobs = list(Job.objects.values("operation", "status", "bytes_done", "claimed_at", "sent_at", "queue_error", "error_code"))
    raise AssertionError(f"Timed out waiting for {what}.\nJobs: {jobs}\n{worker.tail()}")


def test_sigkill_of_the_worker_once_its_backup_shows_progress_then_a_new_worker_completes_it(
        lab, vault, make_policy, inventory, drill_queue, tmp_path):
    from vaults.storage import open_store

    documents = inventory.account.containers.get(name="documents")
    rng = random.Random(14)
    # Large enough that the backup is still reading after its first progress write (every 0.5 s)
    # even at a few hundred MiB/s: 384 MiB of incompressible data.
    put_blobs(lab.trainer, documents, {f"part-{i:02d}.bin": rng.randbytes(24 * MIB) for i in range(16)})
    instance = protect(lab, vault, make_policy(ADLS, "drill-daily"), inventory.account, name="bi-drill",
                       all_containers=False, containers=["documents"])

    victim = Worker(drill_queue, tmp_path / "victim.log")
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

    rescuer = Worker(drill_queue, tmp_path / "rescuer.log")
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
