"""Blobs as files: upload, list with a prefix, download, delete; traversal and links refused."""

import io
import os

import pytest
from django.core.exceptions import ValidationError

from portal.inventory import blobs, fs, services
from security.models import ActivityLogEntry


FILES = {
    "notes with spaces.txt": b"spaces are fine\n",
    "résumé café.txt": "unicodé\n".encode(),
    "日本語/メモ.txt": b"\xe3\x83\xa1\xe3\x83\xa2\n",
}


def test_it_round_trips_blobs_with_spaces_unicode_and_folders(put, lab, container):
    """GIVEN files with spaces, accents, CJK and a folder prefix
    WHEN they are uploaded under "reports/2024"
    THEN each is a file below the container's folder, listed with its size, and reads back exactly."""
    put(lab.trainer, container, FILES, prefix="reports/2024")
    listed = {b.name: b.size for b in services.list_blobs(lab.trainer, container)}
    assert listed == {f"reports/2024/{n}": len(d) for n, d in FILES.items()}
    for name, data in FILES.items():
        assert (container.path / "reports" / "2024" / name).read_bytes() == data
        with services.open_blob(lab.trainer, container, f"reports/2024/{name}") as handle:
            assert handle.read() == data


def test_it_filters_by_prefix_as_a_string_prefix(put, lab, container):
    put(lab.trainer, container, {"reports/q1.csv": b"1", "reports/q2.csv": b"22", "readme.md": b"r", "logs/a.log": b"a"})
    names = lambda p: [b.name for b in blobs.iter_blobs(container, p)]  # noqa: E731
    assert names("reports/") == ["reports/q1.csv", "reports/q2.csv"]
    assert names("re") == ["readme.md", "reports/q1.csv", "reports/q2.csv"]
    assert names("reports/q2") == ["reports/q2.csv"]
    assert names("nothing/") == []


TRAVERSALS = [
    "../escape.txt",
    "a/../../escape.txt",
    "a/..",
    "/etc/passwd",
    "a\\..\\escape.txt",
    "a\x00b",
    "a//b",
    "a/",
    ".",
    "./a",
    "a/./b",
    "",
    "bad\nname",
]


@pytest.mark.parametrize("name", TRAVERSALS)
def test_it_refuses_traversal_and_malformed_names_and_writes_nothing(put, lab, container, tmp_path, name):
    before = sorted(p for p in tmp_path.rglob("*"))
    with pytest.raises(ValidationError) as caught:
        put(lab.trainer, container, {name: b"x"})
    assert caught.value.message_dict["files"][0]  # a message that says what was wrong
    assert sorted(p for p in tmp_path.rglob("*")) == before
    refused = ActivityLogEntry.objects.filter(status=ActivityLogEntry.Status.FAILED, sub_status="BadRequest")
    assert refused.exists()


@pytest.mark.parametrize("prefix", ["../", "a/../..", "/abs", "a\\b"])
def test_it_refuses_traversal_in_the_upload_folder(put, lab, container, prefix):
    with pytest.raises(ValidationError):
        put(lab.trainer, container, {"file.txt": b"x"}, prefix=prefix)
    assert not list(blobs.iter_blobs(container))


def test_it_explains_what_was_wrong(put, lab, container):
    with pytest.raises(ValidationError) as caught:
        put(lab.trainer, container, {"a/../../x": b"x"})
    assert "Path traversal is not allowed" in caught.value.message_dict["files"][0]


def test_it_checks_every_name_before_writing_any(put, lab, container):
    with pytest.raises(ValidationError):
        put(lab.trainer, container, {"good.txt": b"g", "../bad.txt": b"b"})
    assert not list(blobs.iter_blobs(container))


def test_it_refuses_to_overwrite_unless_asked(put, lab, container):
    put(lab.trainer, container, {"a.txt": b"one"})
    with pytest.raises(ValidationError) as caught:
        put(lab.trainer, container, {"a.txt": b"two"})
    assert "already exists" in caught.value.message_dict["files"][0]
    put(lab.trainer, container, {"a.txt": b"two"}, overwrite=True)
    assert (container.path / "a.txt").read_bytes() == b"two"


def test_it_refuses_a_blob_below_another_blob(put, lab, container):
    put(lab.trainer, container, {"a": b"file"})
    with pytest.raises(ValidationError) as caught:
        put(lab.trainer, container, {"a/b.txt": b"x"})
    assert "cannot also be a folder" in caught.value.message_dict["files"][0]


def test_it_deletes_blobs_and_the_folders_they_leave_empty(put, lab, container):
    put(lab.trainer, container, {"x/y/z.txt": b"1", "x/keep.txt": b"2"})
    services.delete_blobs(lab.trainer, container, ["x/y/z.txt"])
    assert not (container.path / "x" / "y").exists()
    assert (container.path / "x" / "keep.txt").exists()


def test_it_deletes_nothing_when_one_name_is_missing(put, lab, container):
    put(lab.trainer, container, {"a.txt": b"1"})
    with pytest.raises(ValidationError):
        services.delete_blobs(lab.trainer, container, ["a.txt", "missing.txt"])
    assert (container.path / "a.txt").exists()


def test_it_never_follows_a_link_planted_inside_a_container(put, lab, container, tmp_path):
    """GIVEN a symbolic link inside the container pointing at a folder and a file outside every root
    WHEN blobs are listed, downloaded or uploaded through it
    THEN the link is not listed, reading it is refused, and nothing is written outside."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret")
    os.symlink(outside, container.path / "linkdir")
    os.symlink(outside / "secret.txt", container.path / "secret.txt")
    assert list(blobs.iter_blobs(container)) == []
    with pytest.raises(fs.UnsafePath):
        services.open_blob(lab.trainer, container, "secret.txt")
    with pytest.raises(fs.UnsafePath):
        services.open_blob(lab.trainer, container, "linkdir/secret.txt")
    with pytest.raises(ValidationError) as caught:
        put(lab.trainer, container, {"linkdir/new.txt": b"x"})
    assert "symbolic link" in caught.value.message_dict["files"][0]
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


def test_it_streams_large_uploads_through_a_temporary_file(put, lab, container):
    data = os.urandom(3 * 1024 * 1024 + 17)
    put(lab.trainer, container, {"big.bin": data})
    assert (container.path / "big.bin").read_bytes() == data
    assert not [p for p in container.path.iterdir() if p.name.startswith(blobs.TEMP_PREFIX)]


def test_it_restores_modification_times_when_given(lab, container):
    services.upload_blobs(lab.trainer, container, [services.Upload("old.txt", io.BytesIO(b"x"), mtime=1_600_000_000)])
    assert (container.path / "old.txt").stat().st_mtime == 1_600_000_000


def test_it_removes_the_container_folder_with_the_container(put, lab, container):
    put(lab.trainer, container, {"a/b.txt": b"1"})
    path = container.path
    services.delete_container(lab.trainer, container)
    assert not path.exists()


def test_it_removes_a_managed_account_folder_with_the_account(put, lab, account, container):
    put(lab.trainer, container, {"a.txt": b"1"})
    path = account.data_path
    services.delete_storage_account(lab.trainer, account)
    assert not path.exists()
