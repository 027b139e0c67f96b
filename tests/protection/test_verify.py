"""Verify: on demand and scheduled; corruption found, named on the recovery point, alerted."""

from __future__ import annotations

import datetime as dt
import os

import pytest

from tests._s3 import BOTH_BACKENDS
from django.core.exceptions import ValidationError

from protection.jobs import runner as jobs
from protection.models import Job, RecoveryPoint
from protection.restores import services
from security.guards import GuardDenied
from security.models import ActivityLogEntry, Alert
from tests.protection._restore_fixtures import (  # noqa: F401
    ADLS, adls_setup, backup, filled, inventory, make_policy, protect, vault,
)

pytestmark = pytest.mark.django_db


def pack_files(point) -> list[str]:
    from protection.restores import layout

    with layout.open_point_store(point) as store:
        root = store.backend.root if hasattr(store.backend, "root") else None
    if root is None:
        from vaults.storage import store_path

        root = str(store_path(point.instance.vault))
    found = []
    for dirpath, _dirs, files in os.walk(os.path.join(root, "packs")):
        found.extend(os.path.join(dirpath, f) for f in files)
    return sorted(found)


def corrupt_every_pack(point) -> int:
    """Flip one byte in the middle of every pack of the store holding ``point`` (bit rot), on a local folder
    or in an S3 bucket (rewritten there as a newer object version, as a disk fault under it would read)."""
    from protection.restores import layout

    with layout.open_point_store(point) as store:
        backend = store.backend
        if hasattr(backend, "root"):
            names = None
        else:
            names = list(backend.list("packs/"))
            for name in names:
                data = bytearray(backend.get(name))
                data[len(data) // 3] ^= 0xFF
                backend.client.put_object(Bucket=backend.bucket, Key=backend._key(name), Body=bytes(data))
    if names is not None:
        assert names
        return len(names)
    packs = pack_files(point)
    assert packs
    for path in packs:
        os.chmod(path, 0o600)
        with open(path, "r+b") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(size // 3)
            byte = f.read(1)
            f.seek(size // 3)
            f.write(bytes([byte[0] ^ 0xFF]))
    return len(packs)


def run(job) -> Job:
    jobs.run(job.pk)
    job.refresh_from_db()
    return job


@BOTH_BACKENDS
def test_verify_on_demand_marks_the_point_healthy(lab, adls_setup):
    instance, point, _target = adls_setup
    job = run(services.start_verify(lab.trainer, point))
    assert job.status == "Completed", job.error_message
    point.refresh_from_db()
    assert point.health == RecoveryPoint.Health.HEALTHY and point.verified_at is not None
    assert point.verify_details["damagedItems"] == [] and point.verify_details["chunksChecked"] > 0
    assert job.extended_info["verify"]["bytesChecked"] > 0
    assert ActivityLogEntry.objects.filter(operation=services.VALIDATE_RESTORE, details__jobId=str(job.pk)).exists()


@BOTH_BACKENDS
def test_verify_finds_corruption_names_the_items_and_alerts(lab, adls_setup):
    instance, point, _target = adls_setup
    corrupt_every_pack(point)
    job = run(services.start_verify(lab.trainer, point))
    assert job.status == "Failed" and job.error_code == "UserErrorRecoveryPointDamaged"
    point.refresh_from_db()
    assert point.health == RecoveryPoint.Health.DAMAGED
    damaged = point.verify_details["damagedItems"]
    assert damaged and all(d.startswith(("documents/", "images/")) for d in damaged), damaged
    assert damaged[0] in job.error_message
    alert = Alert.objects.get(name=services.VERIFY_FAILURE_ALERT)
    assert alert.affected_resource_id == instance.resource_id and damaged[0] in alert.description


def flip_byte(path: str, where: str) -> None:
    """Flip one byte of a pack: in its encrypted trailer ("trailer") or in its first chunk ("data")."""
    os.chmod(path, 0o600)
    with open(path, "r+b") as f:
        size = os.fstat(f.fileno()).st_size
        offset = size - 10 if where == "trailer" else 20  # trailer: before the 4-byte length
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x01]))


@pytest.mark.parametrize("where", ["trailer", "data"])
def test_any_damage_the_engine_reports_makes_the_point_damaged(lab, adls_setup, where):
    instance, point, _target = adls_setup
    flip_byte(pack_files(point)[0], where)
    job = run(services.start_verify(lab.trainer, point))
    assert job.status == "Failed" and job.error_code == "UserErrorRecoveryPointDamaged", job.error_message
    point.refresh_from_db()
    assert point.health == RecoveryPoint.Health.DAMAGED
    assert point.verify_details["damagedCount"] >= 1 and point.verify_details["errors"]
    if where == "trailer":  # damage outside every chunk is named through the engine's error
        assert any("trailer" in e or "does not match its hash" in e for e in point.verify_details["errors"])
    alert = Alert.objects.get(name=services.VERIFY_FAILURE_ALERT)
    assert alert.affected_resource_id == instance.resource_id


@BOTH_BACKENDS
def test_verify_twice_at_once_is_refused(lab, adls_setup):
    _instance, point, _target = adls_setup
    services.start_verify(lab.trainer, point)
    with pytest.raises(ValidationError) as info:
        services.start_verify(lab.trainer, point)
    assert "UserErrorVerifyInProgress" in str(info.value)


def test_reader_cannot_verify(lab, adls_setup, reader):
    _instance, point, _target = adls_setup
    with pytest.raises(GuardDenied):
        services.start_verify(reader, point)


@BOTH_BACKENDS
def test_scheduled_verify_acts_as_the_system_and_runs_once_per_week(lab, adls_setup):
    from security import clock

    _instance, point, _target = adls_setup
    started = services.start_scheduled_verifies()
    assert len(started) == 1
    assert services.start_scheduled_verifies() == []  # one is already running
    job = run(Job.objects.get(pk=started[0]))
    assert job.status == "Completed" and job.initiated_by_name == "Schedule" and not job.is_user_triggered
    point.refresh_from_db()
    assert point.health == RecoveryPoint.Health.HEALTHY
    assert services.start_scheduled_verifies() == []  # verified just now
    later = clock.now() + dt.timedelta(days=8)
    assert [p.pk for p in services.points_due_for_verify(later)] == [point.pk]
    assert ActivityLogEntry.objects.filter(operation=services.VALIDATE_RESTORE, caller__icontains="system",
                                           details__scheduled=True).exists()
