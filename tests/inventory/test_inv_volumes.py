"""Elastic SAN volumes: sparse images, sample data and checksum jobs (tasks called directly)."""

import os

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from portal.inventory import services, tasks, volumes
from portal.inventory.models import Volume
from portal.models import Operation
from security.models import ActivityLogEntry, RoleAssignment
from tests._image_checksum import content_checksum_of_file

MIB = 1024 * 1024


@pytest.fixture
def queued(monkeypatch):
    """Capture what services hand to Celery instead of talking to a broker."""
    calls = []
    monkeypatch.setattr(tasks.run_volume_job, "delay", lambda *args: calls.append(args))
    return calls


def _run_job(principal, volume, activity, django_capture_on_commit_callbacks, queued):
    with django_capture_on_commit_callbacks(execute=True):
        operation = services.start_volume_job(principal, volume, activity)
    assert queued[-1] == (volume.pk, str(operation.pk))
    tasks.run_volume_job(*queued[-1])  # what the worker runs
    return operation


def test_it_creates_a_sparse_image_of_the_volume_size(volume):
    """GIVEN a new 1 GiB volume
    THEN its image is 1 GiB long but occupies (almost) no blocks: it was created sparse."""
    info = os.stat(volume.image_path)
    assert info.st_size == 1024**3
    assert info.st_blocks * 512 < 1 * MIB
    assert volume.allocated_bytes == info.st_blocks * 512


def test_it_enqueues_the_job_only_after_commit(lab, volume, queued, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        operation = services.start_volume_job(lab.trainer, volume, Volume.Activity.WRITE_SAMPLE_DATA)
        assert queued == []  # nothing reaches the broker inside the transaction
    assert len(callbacks) == 1
    callbacks[0]()
    assert queued == [(volume.pk, str(operation.pk))]
    volume.refresh_from_db()
    assert volume.activity_status == Volume.ActivityStatus.QUEUED
    assert operation.status == Operation.Status.IN_PROGRESS


def test_it_writes_seeded_sample_data_and_the_image_grows(lab, volume, queued, django_capture_on_commit_callbacks):
    """GIVEN a sparse volume
    WHEN "Write sample data" runs on a worker
    THEN blocks are allocated (st_blocks grows), the Operation succeeds and the activity log has it."""
    before = os.stat(volume.image_path).st_blocks
    operation = _run_job(lab.trainer, volume, Volume.Activity.WRITE_SAMPLE_DATA, django_capture_on_commit_callbacks, queued)
    after = os.stat(volume.image_path).st_blocks
    assert after * 512 >= 16 * MIB > before * 512
    assert os.stat(volume.image_path).st_size == 1024**3  # still sparse: far less than the size
    assert after * 512 < 64 * MIB
    volume.refresh_from_db()
    operation.refresh_from_db()
    assert volume.activity_status == Volume.ActivityStatus.SUCCEEDED
    assert volume.sample_writes == 1 and volume.allocated_bytes == after * 512
    assert operation.status == Operation.Status.SUCCEEDED
    assert ActivityLogEntry.objects.filter(
        operation=services.VOLUME_WRITE, scope=volume.resource_id, status=ActivityLogEntry.Status.SUCCEEDED,
        details__job="Write sample data",
    ).count() == 2  # started, then finished


def test_it_computes_the_checksum_in_a_job_and_marks_it_outdated_after_new_data(
    lab, volume, queued, django_capture_on_commit_callbacks
):
    _run_job(lab.trainer, volume, Volume.Activity.WRITE_SAMPLE_DATA, django_capture_on_commit_callbacks, queued)
    _run_job(lab.trainer, volume, Volume.Activity.COMPUTE_CHECKSUM, django_capture_on_commit_callbacks, queued)
    volume.refresh_from_db()
    assert volume.last_checksum == content_checksum_of_file(volume.image_path)
    assert volume.checksum_at is not None and not volume.checksum_stale
    _run_job(lab.trainer, volume, Volume.Activity.WRITE_SAMPLE_DATA, django_capture_on_commit_callbacks, queued)
    volume.refresh_from_db()
    assert volume.checksum_stale and volume.sample_writes == 2


def test_sample_data_is_deterministic_per_seed(tmp_path, settings):
    settings.STRONGROOM_DATA_ROOT = tmp_path
    a, b, c = tmp_path / "a.img", tmp_path / "b.img", tmp_path / "c.img"
    for path in (a, b, c):
        volumes.create_image(path, 64 * MIB)
    volumes.write_sample_extents(a, seed=7)
    volumes.write_sample_extents(b, seed=7)
    volumes.write_sample_extents(c, seed=8)
    assert volumes.image_checksum(a) == volumes.image_checksum(b) == content_checksum_of_file(a)
    assert volumes.image_checksum(c) != volumes.image_checksum(a)


def test_a_redelivered_job_runs_once(lab, volume, queued, django_capture_on_commit_callbacks):
    _run_job(lab.trainer, volume, Volume.Activity.WRITE_SAMPLE_DATA, django_capture_on_commit_callbacks, queued)
    blocks = os.stat(volume.image_path).st_blocks
    assert services.run_volume_job(*queued[-1]) is False  # the second delivery claims nothing
    volume.refresh_from_db()
    assert volume.sample_writes == 1 and os.stat(volume.image_path).st_blocks == blocks


def test_it_refuses_a_second_job_while_one_is_queued(lab, volume, queued, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.start_volume_job(lab.trainer, volume, Volume.Activity.WRITE_SAMPLE_DATA)
    with pytest.raises(ValidationError) as caught:
        services.start_volume_job(lab.trainer, volume, Volume.Activity.COMPUTE_CHECKSUM)
    assert "already running" in caught.value.messages[0]


def test_a_job_fails_when_the_role_is_revoked_before_it_runs(lab, contributor, volume, queued, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        operation = services.start_volume_job(contributor, volume, Volume.Activity.WRITE_SAMPLE_DATA)
    RoleAssignment.objects.filter(principal=contributor).delete()
    tasks.run_volume_job(*queued[-1])
    volume.refresh_from_db()
    operation.refresh_from_db()
    assert volume.activity_status == Volume.ActivityStatus.FAILED and volume.sample_writes == 0
    assert operation.status == Operation.Status.FAILED
    assert "does not have authorization to perform action" in operation.message


def test_the_page_never_computes_a_checksum_while_rendering(lab, volume, client, monkeypatch):
    monkeypatch.setattr(volumes, "image_checksum", lambda *a, **k: pytest.fail("checksum while rendering"))
    client.force_login(lab.trainer.user)
    response = client.get(reverse("portal:volume_detail", args=[volume.pk]))
    assert response.status_code == 200
    assert "Not computed yet" in response.content.decode()


def test_the_status_partial_polls_while_running_and_stops_when_done(
    lab, volume, client, queued, django_capture_on_commit_callbacks
):
    client.force_login(lab.trainer.user)
    url = reverse("portal:volume_detail", args=[volume.pk])
    with django_capture_on_commit_callbacks(execute=True):
        services.start_volume_job(lab.trainer, volume, Volume.Activity.COMPUTE_CHECKSUM)
    running = client.get(url, headers={"HX-Request": "true", "HX-Target": "volume-data"}).content.decode()
    assert 'hx-trigger="every 2s"' in running and "Queued" in running and "<html" not in running
    tasks.run_volume_job(*queued[-1])
    done = client.get(url, headers={"HX-Request": "true", "HX-Target": "volume-data"}).content.decode()
    volume.refresh_from_db()
    assert "hx-trigger" not in done and volume.last_checksum in done


def test_it_refuses_volumes_beyond_the_elastic_san_capacity(lab, volume_group):
    with pytest.raises(ValidationError) as caught:
        services.create_volume(lab.trainer, volume_group, name="too-big", size_gib=2048)
    assert "GiB left" in caught.value.message_dict["size_gib"][0]


def test_it_deletes_the_image_with_the_volume_and_refuses_to_delete_a_group_with_volumes(lab, volume):
    group = volume.volume_group
    with pytest.raises(ValidationError):
        services.delete_volume_group(lab.trainer, group)
    path = volume.image_path
    services.delete_volume(lab.trainer, volume)
    assert not path.exists()
    services.delete_volume_group(lab.trainer, group)
    assert not group.data_path.exists()


def test_snapshots_need_both_the_elastic_san_and_the_snapshot_group_rights(lab, volume, contributor):
    """Contributor on the lab group only: a snapshot into the restore group is refused."""
    from security.guards import GuardDenied

    with pytest.raises(GuardDenied):
        services.create_snapshot(contributor, volume, resource_group=lab.target_group, name="AzureBackup_x_1")
    snapshot = services.create_snapshot(
        lab.trainer, volume, resource_group=lab.target_group, name="AzureBackup_0f1e_20240101T000000Z",
        checksum="ab" * 32,
    )
    assert snapshot.resource_id.endswith("/providers/Microsoft.Compute/snapshots/AzureBackup_0f1e_20240101T000000Z")
    assert snapshot.source_resource_id == volume.resource_id


def test_varied_data_is_deterministic_sparse_and_mixed(tmp_path, settings):
    """The lab's large volume data: the same seed gives the same image; the data is spread with holes
    between; it holds incompressible, compressible and repeated segments alike."""
    import zlib

    settings.STRONGROOM_DATA_ROOT = tmp_path
    a, b, c = tmp_path / "a.img", tmp_path / "b.img", tmp_path / "c.img"
    for path in (a, b, c):
        volumes.create_image(path, 256 * MIB)
    assert volumes.write_varied_data(a, seed=3, total_bytes=40 * MIB) == 40 * MIB
    volumes.write_varied_data(b, seed=3, total_bytes=40 * MIB)
    volumes.write_varied_data(c, seed=4, total_bytes=40 * MIB)
    assert volumes.image_checksum(a) == volumes.image_checksum(b) != volumes.image_checksum(c)
    info = volumes.image_info(a)
    assert 40 * MIB <= info.allocated_bytes < 41 * MIB  # the rest of the 256 MiB are holes
    with open(a, "rb") as f:
        stride = (256 * MIB // 10) // 4096 * 4096
        segments = []
        for i in range(5):
            f.seek(i * stride)
            segments.append(f.read(4 * MIB))
        f.seek(4 * MIB)
        assert f.read(4096) == bytes(4096)  # a hole right after the first segment
    ratios = [len(zlib.compress(s[:1 * MIB], 1)) / MIB for s in segments]
    assert ratios[0] > 0.99 and ratios[1] > 0.99  # incompressible
    assert 0.4 < ratios[2] < 0.9 and 0.4 < ratios[3] < 0.9  # text-like
    assert segments[2] != segments[3]
    assert segments[4][:65536] * 64 == segments[4]  # one block, repeated


def test_write_varied_data_now_is_a_guarded_volume_write(lab, volume):
    from django.contrib.auth import get_user_model

    from security import roles
    from security import services as security_services
    from security.guards import GuardDenied
    from security.models import RoleDefinition

    user = get_user_model().objects.create_user("rita", password="x")
    reader = security_services.principal_for_user(user)
    security_services.assign_role(lab.trainer, assignee=reader, role=RoleDefinition.objects.get(name=roles.READER),
                                  scope=lab.lab_group.resource_id)
    with pytest.raises(GuardDenied):
        services.write_varied_data_now(reader, volume, total_bytes=8 * MIB, seed=1)
    volume.refresh_from_db()
    assert volume.sample_writes == 0

    written = services.write_varied_data_now(lab.trainer, volume, total_bytes=8 * MIB, seed=1)
    assert written.sample_writes == 1 and written.sample_written_at is not None
    assert 8 * MIB <= written.allocated_bytes == os.stat(volume.image_path).st_blocks * 512
