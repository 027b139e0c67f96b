"""Attaching existing data: only below STRONGROOM_ATTACH_ROOTS, never through a symbolic link."""

import os

import pytest
from django.core.exceptions import ValidationError

from portal.inventory import blobs, fs, services


@pytest.fixture
def attach_root(settings):
    return settings.STRONGROOM_ATTACH_ROOTS[0]


def _attach(lab, path, name="attached1"):
    return services.create_storage_account(
        lab.trainer, resource_group=lab.lab_group, name=name, region=lab.region, attach_path=str(path)
    )


def _refusal(lab, path) -> str:
    with pytest.raises(ValidationError) as caught:
        _attach(lab, path)
    return caught.value.message_dict["attach_path"][0]


def test_it_attaches_a_folder_and_turns_its_subfolders_into_containers(lab, attach_root):
    """GIVEN a folder below an attach root with sub-folders 'photos', 'Bad_Name' and a loose file
    WHEN it is attached as a storage account
    THEN 'photos' is a container whose files are blobs, 'Bad_Name' is skipped, and the data stays put."""
    data = attach_root / "share"
    (data / "photos" / "2024").mkdir(parents=True)
    (data / "photos" / "2024" / "a.jpg").write_bytes(b"jpg")
    (data / "Bad_Name").mkdir()
    (data / "loose.txt").write_bytes(b"x")
    account = _attach(lab, data)
    assert [c.name for c in account.containers.all()] == ["photos"]
    container = account.containers.get()
    assert [(b.name, b.size) for b in blobs.iter_blobs(container)] == [("2024/a.jpg", 3)]
    services.delete_storage_account(lab.trainer, account)
    assert (data / "photos" / "2024" / "a.jpg").read_bytes() == b"jpg"  # detached, not deleted


@pytest.mark.parametrize("path", ["/etc", "/dev", "/"])
def test_it_refuses_folders_outside_the_attach_roots(lab, path):
    assert "not below an allowed attach root" in _refusal(lab, path)


def test_it_refuses_the_root_itself_a_relative_path_and_a_missing_folder(lab, attach_root):
    assert "not below an allowed attach root" in _refusal(lab, attach_root)
    assert "absolute path" in _refusal(lab, "relative/folder")
    assert "does not exist" in _refusal(lab, attach_root / "missing")


def test_it_refuses_dot_dot_that_climbs_out_of_the_root(lab, attach_root, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    assert "not below an allowed attach root" in _refusal(lab, f"{attach_root}/../elsewhere")


def test_it_refuses_a_symlink_escaping_the_root(lab, attach_root, tmp_path):
    """GIVEN a link inside the attach root pointing at a folder outside it
    WHEN someone attaches the link's path
    THEN it is refused as a symbolic link, before anything is resolved or registered."""
    outside = tmp_path / "outside"
    (outside / "secrets").mkdir(parents=True)
    os.symlink(outside, attach_root / "escape")
    message = _refusal(lab, attach_root / "escape")
    assert "symbolic link" in message
    assert "symbolic link" in _refusal(lab, attach_root / "escape" / "secrets")


def test_it_refuses_a_symlink_even_when_it_stays_inside_the_root(lab, attach_root):
    (attach_root / "real").mkdir()
    os.symlink(attach_root / "real", attach_root / "alias")
    assert "symbolic link" in _refusal(lab, attach_root / "alias")


def test_it_refuses_a_file_where_a_folder_is_expected(lab, attach_root):
    (attach_root / "file.txt").write_bytes(b"x")
    assert "is not a folder" in _refusal(lab, attach_root / "file.txt")


def test_it_refuses_overlapping_attachments(lab, attach_root):
    (attach_root / "share" / "inner").mkdir(parents=True)
    _attach(lab, attach_root / "share", name="first1")
    with pytest.raises(ValidationError) as caught:
        _attach(lab, attach_root / "share" / "inner", name="second2")
    assert "overlaps" in caught.value.message_dict["attach_path"][0]


def test_it_refuses_attaching_when_no_root_is_configured(lab, settings, attach_root):
    (attach_root / "share").mkdir()
    settings.STRONGROOM_ATTACH_ROOTS = []
    assert "no attach roots are configured" in _refusal(lab, attach_root / "share")


def test_it_refuses_a_link_swapped_in_after_attaching(lab, attach_root, tmp_path, client):
    """GIVEN an attached account whose container folder is later replaced by a link to elsewhere
    WHEN blobs are listed or written
    THEN the walk refuses the link instead of following it."""
    (attach_root / "share" / "docs").mkdir(parents=True)
    account = _attach(lab, attach_root / "share")
    container = account.containers.get(name="docs")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.txt").write_bytes(b"x")
    os.rmdir(attach_root / "share" / "docs")
    os.symlink(outside, attach_root / "share" / "docs")
    with pytest.raises(fs.UnsafePath):
        list(blobs.iter_blobs(container))
    with pytest.raises(ValidationError):
        services.upload_blobs(lab.trainer, container, [services.Upload("y.txt", [b"y"])])
    assert sorted(p.name for p in outside.iterdir()) == ["x.txt"]
    client.force_login(lab.trainer.user)
    page = client.get(f"/containers/{container.pk}/")
    assert page.status_code == 200 and "is a symbolic link" in page.content.decode()
    assert "x.txt" not in page.content.decode()


def test_it_attaches_an_image_file_as_a_volume_and_refuses_a_linked_one(lab, attach_root, volume_group, tmp_path):
    image = attach_root / "disk.img"
    with open(image, "wb") as f:
        f.truncate(3 * 1024 * 1024)
    volume = services.create_volume(lab.trainer, volume_group, name="attached-vol", attach_path=str(image))
    assert volume.size_bytes == 3 * 1024 * 1024 and volume.size_gib == 1 and volume.is_attached
    outside = tmp_path / "outside.img"
    outside.write_bytes(b"\0" * 4096)
    os.symlink(outside, attach_root / "linked.img")
    with pytest.raises(ValidationError) as caught:
        services.create_volume(lab.trainer, volume_group, name="linked-vol", attach_path=str(attach_root / "linked.img"))
    assert "symbolic link" in caught.value.message_dict["attach_path"][0]
    services.delete_volume(lab.trainer, volume)
    assert image.exists()  # an attached image is never deleted with its volume
