"""A real Celery worker (a subprocess on Redis, its own queue, told the test database's name) killed
with SIGKILL in the middle of a backup: no recovery point and no snapshot exist, the job is still
InProgress, the reconciler hands it back, and a new worker re-runs it to completion — reusing the
chunks earlier recovery points already stored."""

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

pytestmark = [pytest.mark.celery, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024


@pytest.fixture
def worker_queue(worker_id):
    if not settings.CELERY_BROKER_URL.startswith("redis://"):
        if os.environ.get("STRONGROOM_REQUIRE_SERVICES"):
            pytest.fail("CI must run the worker tests against Redis (CELERY_BROKER_URL).")
        pytest.skip("No Redis broker configured (CELERY_BROKER_URL); run `make test` with Redis up.")
    if connection.vendor != "postgresql":
        pytest.skip("A subprocess worker needs a database it can share: PostgreSQL (DATABASE_URL).")
    from portal.celery import app

    queue = f"strongroom-killtest-{worker_id}-{os.getpid()}"
    previous = app.conf.task_default_queue
    app.conf.task_default_queue = queue
    yield queue
    app.conf.task_default_queue = previous


def start_worker(queue, tmp_path, name):
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "STRONGROOM_DATA_ROOT": str(settings.STRONGROOM_DATA_ROOT),
        "STRONGROOM_ATTACH_ROOTS": ",".join(str(p) for p in settings.STRONGROOM_ATTACH_ROOTS),
    }
    log = open(tmp_path / f"{name}.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "portal", "worker", "-Q", queue, "-P", "solo", "-c", "1",
         "-n", f"{name}@%h", "-l", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    return proc, log


def wait_for(predicate, timeout, what, proc=None, log=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.02)
    detail = Path(log.name).read_text(errors="replace")[-3000:] if log else ""
    raise AssertionError(f"Timed out waiting for {what}.\n{detail}")


def test_a_worker_killed_mid_backup_leaves_no_point_and_the_job_is_run_again(lab, vault, make_policy, inventory,
                                                                          worker_queue, tmp_path):
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

    worker, log = start_worker(worker_queue, tmp_path, "victim")
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
    worker, log = start_worker(worker_queue, tmp_path, "rescuer")
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
