"""Elastic SAN recovery points are one consistent image (issue 14).

The backup is paused after its first chunk (a hook in the engine's progress callback), "Write sample
data" runs meanwhile, the backup resumes: the write waited (and the volume page said so), the point
completed, and its restore equals the pre-write image byte for byte.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time

import pytest
from django.db import connection
from django.urls import reverse

from portal.inventory import services as inv
from portal.inventory import volumes as volume_files
from portal.inventory.models import Volume
from protection.jobs import runner as jobs
from protection.datasources.base import RunContext
from protection.models import JobStatus
from protection.restores import layout, targets
from protection.backups import services as backups
from tests.protection._restore_fixtures import (  # noqa: F401
    ESAN, filled, inventory, make_policy, protect, restore_and_run, vault,
)
from vaults.store import pit

pytestmark = pytest.mark.django_db(transaction=True)


def same_bytes(a, b) -> bool:
    """Every byte of two images equal (holes read as zeros)."""
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(16 << 20), fb.read(16 << 20)
            if x != y:
                return False
            if not x:
                return True


def wait_for(condition, what, timeout=60):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


class PauseAfterFirstChunk:
    """Wraps the engine's progress callback: the first call (after the first chunk was read) blocks
    until the test resumes the backup."""

    def __init__(self, monkeypatch):
        self.reached = threading.Event()
        self.go = threading.Event()
        original = RunContext.engine_progress
        pause = self

        def engine_progress(run, label):
            callback = original(run, label)

            def paused(p):
                if not pause.reached.is_set():
                    pause.reached.set()
                    assert pause.go.wait(120), "the test never resumed the backup"
                callback(p)

            return paused

        monkeypatch.setattr(RunContext, "engine_progress", engine_progress)


def in_thread(fn, *args):
    result = {}

    def run():
        try:
            result["value"] = fn(*args)
        except BaseException as exc:  # reported to the test
            result["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def test_a_write_during_the_backup_waits_and_the_point_is_the_pre_write_image(lab, vault, make_policy, filled,
                                                                             monkeypatch, client, tmp_path):
    monkeypatch.setattr(pit, "reflink_clone", lambda fd, directory: None)  # as on ext4: the volume is held
    volume = filled.volumes[0]
    instance = protect(lab, vault, make_policy(ESAN), volume)
    before_checksum = volume_files.image_checksum(volume.image_path)
    before = tmp_path / "before.img"
    subprocess.run(["cp", "--sparse=always", str(volume.image_path), str(before)], check=True)
    pause = PauseAfterFirstChunk(monkeypatch)

    job = backups.backup_now(lab.trainer, instance, retention_rule="Default")
    backup_thread, backup_result = in_thread(jobs.run, job.pk)
    assert pause.reached.wait(120), backup_result.get("error")

    # "Write sample data" while the backup holds the volume: it waits, and the volume page says so
    writer_thread, writer_result = in_thread(inv.write_sample_data_now, lab.trainer, volume)
    wait_for(lambda: Volume.objects.get(pk=volume.pk).activity_message == inv.WAITING_FOR_BACKUP, "the write to wait")
    assert volume_files.image_checksum(volume.image_path) == before_checksum  # nothing written yet
    client.force_login(lab.trainer.user)
    page = client.get(reverse("portal:volume_detail", args=[volume.pk])).content.decode()
    assert 'data-testid="waiting-for-backup"' in page and 'data-testid="backup-reading"' in page
    assert "Backup jobs" in page  # where to follow the backup that holds the volume

    pause.go.set()  # the backup resumes; the write goes once the image has been read
    backup_thread.join(120)
    writer_thread.join(120)
    assert "error" not in backup_result and "error" not in writer_result, (backup_result, writer_result)
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, (job.error_code, job.error_message)
    written = Volume.objects.get(pk=volume.pk)
    assert written.activity_status == Volume.ActivityStatus.SUCCEEDED and written.sample_writes == volume.sample_writes + 1
    assert volume_files.image_checksum(volume.image_path) != before_checksum  # the write did happen, afterwards

    point = job.recovery_point
    assert layout.volume_checksum(point) == before_checksum  # computed in the backup's own pass
    assert point.verify_details["backup"]["point_in_time"] == pit.HOLD
    target = targets.VolumeTarget(volume.volume_group.resource_id, "vol-pit")
    restore = restore_and_run(lab.trainer, point, target, lab=lab)
    assert restore.status == "Completed", (restore.error_code, restore.error_message)
    restored = Volume.objects.get(volume_group=volume.volume_group, name="vol-pit")
    assert same_bytes(restored.image_path, before)
    assert os.path.getsize(restored.image_path) == os.path.getsize(volume.image_path)
