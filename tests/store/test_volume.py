import os
import random

from tests.store.helpers import file_sha


def make_image(path, size=256 << 20, seed=1):
    rnd = random.Random(seed)
    with open(path, "wb") as f:
        f.truncate(size)
        for off in (0, 5 << 20, 100 << 20, size - (1 << 20)):
            f.seek(off)
            f.write(rnd.randbytes(700_000))
        f.seek(50 << 20)
        f.write(bytes(3 << 20))  # allocated zeros: stored as nothing


def test_sparse_volume_round_trip_stays_sparse(make_store, tmp_path):
    img = tmp_path / "vol.img"
    make_image(img)
    store = make_store()
    s1 = store.backup_volume(str(img))
    assert s1.stats["bytes_read"] < 12 << 20  # holes were skipped
    out = tmp_path / "restored.img"
    store.restore(s1.id, str(out))
    assert os.path.getsize(out) == os.path.getsize(img)
    assert file_sha(out) == file_sha(img)
    assert os.stat(out).st_blocks * 512 <= 8 << 20  # still sparse
    # change one block: only that block is new
    with open(img, "r+b") as f:
        f.seek(100 << 20)
        f.write(b"X" * 4096)
    s2 = store.backup_volume(str(img))
    assert s2.stats["chunks_new"] == 1
    store.restore(s2.id, str(out))
    assert file_sha(out) == file_sha(img)
    assert store.verify(s2.id).ok
