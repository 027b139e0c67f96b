"""Several hosts (README): two real Celery workers, each a "host" of its own (``STRONGROOM_HOST_NAME``,
Celery ``--hostname``) consuming its own queue. A job of a vault whose store is Local goes to the queue of
the host holding the data root (``STRONGROOM_LOCAL_STORE_QUEUE``); a job of a vault whose store is in an
S3 bucket goes to the default queue. Each job's row records the host that ran it."""

from __future__ import annotations

import pytest
from django.conf import settings

from portal.inventory import services as inv
from protection.backups import services as backups
from protection.models import Job, JobStatus
from tests._s3 import location_for
from tests.conftest import WorkerProcess, wait_until
from tests.protection._backups_fixtures import (  # noqa: F401  (fixtures)
    ADLS, inventory, make_policy, principal_with, protect, put_blobs, sample_files, vault,
)

pytestmark = [pytest.mark.celery, pytest.mark.django_db(transaction=True)]


def test_two_hosts_each_run_the_jobs_routed_to_their_queue(lab, vault, make_policy, inventory, process_worker_queue,
                                                            tmp_path, request, monkeypatch):
    from vaults import services as vault_services

    shared_queue = process_worker_queue  # the default queue (S3 vaults' jobs)
    local_queue = f"{process_worker_queue}-host-a"  # the data root's host
    monkeypatch.setattr(settings, "STRONGROOM_LOCAL_STORE_QUEUE", local_queue, raising=False)
    s3_vault = vault_services.create_vault(lab.trainer, name="bv-s3-host", region=lab.region,
                                           resource_group=lab.lab_group, storage_location=location_for(request, "s3"))
    other = inv.create_storage_account(lab.trainer, resource_group=lab.lab_group, name=f"{inventory.account.name}b",
                                       region=lab.region)
    for account in (inventory.account, other):
        container = account.containers.first() or inv.create_container(lab.trainer, account, name="documents")
        put_blobs(lab.trainer, container, sample_files(3, count=2, size=50_000))
    local_instance = protect(lab, vault, make_policy(ADLS, "hosts-local"), inventory.account, name="bi-local")
    s3_instance = protect(lab, s3_vault, make_policy(ADLS, "hosts-s3", in_vault=s3_vault), other, name="bi-s3")

    hosts = {"host-a": WorkerProcess(local_queue, tmp_path / "host-a.log", extra_env={"STRONGROOM_HOST_NAME": "host-a"},
                                     nice=True),
             "host-b": WorkerProcess(shared_queue, tmp_path / "host-b.log", extra_env={"STRONGROOM_HOST_NAME": "host-b"},
                                     nice=True)}
    try:
        jobs = {"host-a": backups.backup_now(lab.trainer, local_instance, retention_rule="Default"),
                "host-b": backups.backup_now(lab.trainer, s3_instance, retention_rule="Default")}
        for host, job in jobs.items():
            done = wait_until(lambda: Job.objects.filter(pk=job.pk, status__in=(JobStatus.COMPLETED, JobStatus.FAILED))
                              .first(), 25, f"the job routed to {host}",
                              explain=lambda: "\n".join(w.tail() for w in hosts.values()))
            assert done.status == JobStatus.COMPLETED, (done.error_code, done.error_message)
            pid = hosts[host].proc.pid
            assert done.worker == f"{host}:{pid}", (host, done.worker)
    finally:
        for worker in hosts.values():
            worker.stop()
