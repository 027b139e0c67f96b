"""A volume recovery point is one consistent image even when the volume is written during the backup:
the backup is paused after its first chunk (in the engine's progress callback), the volume is written,
the backup resumes; the restore equals the pre-write image byte for byte, and the checksum computed in
the same pass is the pre-write image's."""

import contextlib
import hashlib
import os
import random
import threading

import pytest

from tests._image_checksum import content_checksum_of_file
from vaults.store import LocalBackend, Store, pit

from .conftest import KEY

SIZE = 8 << 20


def make_image(path):
    rnd = random.Random(7)
    with open(path, "wb") as f:
        f.truncate(SIZE)
        for off in range(0, SIZE, 1 << 20):  # data in every MiB: many blocks to read
            f.seek(off)
            f.write(rnd.randbytes(300_000))


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def write_everywhere(path, wait=None):
    """A cooperating writer (as "Write sample data" does): takes the exclusive hold, writes every MiB."""
    fd = os.open(path, os.O_RDWR)
    try:
        with pit.hold_for_writing(fd, wait=wait):
            for off in range(0, SIZE, 1 << 20):
                os.pwrite(fd, b"W" * 4096, off + 10)
            os.fsync(fd)
    finally:
        os.close(fd)


class Paused:
    """A progress callback that stops the backup at its first call (after the first chunk was read)
    until the test lets it go on."""

    def __init__(self):
        self.reached = threading.Event()
        self.go = threading.Event()

    def __call__(self, p):
        if not self.reached.is_set():
            self.reached.set()
            assert self.go.wait(60), "the test never resumed the backup"


def open_store(tmp_path):
    return Store.init(LocalBackend(str(tmp_path / "store"), create=True), KEY, cache_dir=str(tmp_path / "cache"),
                      block_size=64 << 10, lock_wait=30)


@contextlib.contextmanager
def image_and_store(tmp_path):
    """A fresh volume image with its SHA-256 before any write, and an empty store (closed afterwards)."""
    img = tmp_path / "vol.img"
    make_image(img)
    store = open_store(tmp_path)
    try:
        yield img, sha(img), store
    finally:
        store.close()


def backup_paused(store, img, **kw):
    paused = Paused()
    result = {}

    def run():
        try:
            result["snap"] = store.backup_volume(str(img), progress=paused, **kw)
        except BaseException as e:  # reported to the test
            result["error"] = e
            paused.reached.set()

    thread = threading.Thread(target=run)
    thread.start()
    assert paused.reached.wait(60)
    assert "error" not in result, result.get("error")
    return paused, thread, result


def check_restore(store, snap, tmp_path, want_sha):
    out = tmp_path / "restored.img"
    store.restore(snap.id, str(out))
    assert sha(out) == want_sha
    # the checksum of the same pass, not of a later read
    assert snap.stats["checksum"] == content_checksum_of_file(out)


def test_without_reflink_writes_wait_while_the_backup_reads(tmp_path, monkeypatch):
    monkeypatch.setattr(pit, "reflink_clone", lambda fd, d: None)  # as on ext4
    with image_and_store(tmp_path) as (img, before, store):
        paused, thread, result = backup_paused(store, img)
        fd = os.open(img, os.O_RDONLY)
        try:
            assert pit.is_held(fd)  # a write now has to wait
        finally:
            os.close(fd)
        with pytest.raises(TimeoutError):
            write_everywhere(img, wait=0.2)  # refused after its wait, nothing written
        assert sha(img) == before
        writer = threading.Thread(target=write_everywhere, args=(img,))
        writer.start()
        paused.go.set()  # resume the backup: the writer goes once the image has been read
        thread.join(60)
        writer.join(60)
        assert "error" not in result, result.get("error")
        snap = result["snap"]
        assert snap.stats["point_in_time"] == pit.HOLD
        assert sha(img) != before  # the write happened, after the backup
        check_restore(store, snap, tmp_path, before)
        assert store.verify(snap.id).ok


def test_with_a_clone_writes_go_on_and_the_point_is_the_clone(tmp_path, monkeypatch):
    """Where the file system clones (simulated here by a full copy into an unlinked file, which is
    what a reflink clone looks like to a reader), the writer does not wait at all."""
    clones = []

    def fake_clone(src_fd, directory):
        name = os.path.join(directory, ".strongroom-pit-test")
        dst = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        os.unlink(name)
        size = os.fstat(src_fd).st_size
        os.ftruncate(dst, size)
        for off in range(0, size, 1 << 20):
            os.pwrite(dst, os.pread(src_fd, 1 << 20, off), off)
        clones.append(dst)
        return dst

    monkeypatch.setattr(pit, "reflink_clone", fake_clone)
    with image_and_store(tmp_path) as (img, before, store):
        paused, thread, result = backup_paused(store, img)
        write_everywhere(img, wait=5)  # no waiting: the backup reads its copy
        assert sha(img) != before
        paused.go.set()
        thread.join(60)
        assert "error" not in result, result.get("error")
        snap = result["snap"]
        assert snap.stats["point_in_time"] == pit.REFLINK
        check_restore(store, snap, tmp_path, before)
        assert clones and [n for n in os.listdir(tmp_path) if n.startswith(".strongroom-pit")] == []
        with pytest.raises(OSError):
            os.fstat(clones[0])  # the clone's descriptor was closed


def test_reading_the_live_image_is_what_broke_before(tmp_path):
    """The control: without a point-in-time copy the write lands in the middle of the backup."""
    with image_and_store(tmp_path) as (img, before, store):
        paused, thread, result = backup_paused(store, img, point_in_time="live")
        write_everywhere(img, wait=5)
        paused.go.set()
        thread.join(60)
        out = tmp_path / "restored.img"
        store.restore(result["snap"].id, str(out))
        assert sha(out) != before


def test_a_real_reflink_clone_where_the_file_system_has_one(tmp_path):
    img = tmp_path / "vol.img"
    make_image(img)
    fd = os.open(img, os.O_RDONLY)
    try:
        clone = pit.reflink_clone(fd, str(tmp_path))
    finally:
        os.close(fd)
    if clone is None:
        pytest.skip(f"{tmp_path} cannot clone (no reflink on this file system); the hold is used instead")
    try:
        assert os.pread(clone, 1 << 20, 0) == open(img, "rb").read(1 << 20)
    finally:
        os.close(clone)
    assert [n for n in os.listdir(tmp_path) if n.startswith(".strongroom-pit")] == []
