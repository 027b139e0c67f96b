"""One image checksum, three implementations held equal: the engine's (computed from the pieces a
backup stores), the portal's (read from the file, also while a restore sparsifies it) and the
definition written plainly (`tests._image_checksum`), on random sparse images: extents at any offset,
written zeros, data in the last partial block. Points taken before the scheme keep their whole-image
SHA-256, which the portal still computes when asked to compare with one."""

import os
import random

import pytest

from portal.inventory import volumes
from protection.restores.elastic_san import sparsify_and_checksum
from tests._image_checksum import content_checksum, content_checksum_of_file, whole_image_sha256
from vaults.store import LocalBackend, Store

KIB = 1024
MIB = 1024 * KIB
KEY = bytes(range(32))


@pytest.fixture(autouse=True)
def _data_root(tmp_path, settings):
    settings.STRONGROOM_DATA_ROOT = tmp_path


def _random_image(path, seed: int) -> None:
    """A sparse image of an odd size: random extents (4 KiB aligned or not, some of zeros, one running
    to the end), written over holes."""
    rng = random.Random(f"image-checksum:{seed}")
    size = rng.randrange(3 * MIB, 9 * MIB) | 1  # never a whole number of blocks
    with open(path, "wb") as f:
        f.truncate(size)
        for _ in range(rng.randrange(4, 12)):
            length = rng.randrange(1, 600 * KIB)
            offset = rng.randrange(size - length)
            if rng.random() < 0.5:
                offset -= offset % (4 * KIB)
            f.seek(offset)
            f.write(bytes(length) if rng.random() < 0.2 else rng.randbytes(length))
        f.seek(size - 300)
        f.write(rng.randbytes(300))


def _engine_checksum(tmp_path, image, chunking: str) -> str:
    store = Store.init(LocalBackend(str(tmp_path / f"store-{chunking}"), create=True), KEY,
                       cache_dir=str(tmp_path / f"cache-{chunking}"), chunk_min=16 * KIB, chunk_avg=64 * KIB,
                       chunk_max=256 * KIB, block_size=64 * KIB, volume_chunking=chunking)
    try:
        return store.backup_volume(str(image), point_in_time="live").stats["checksum"]
    finally:
        store.close()


@pytest.mark.parametrize("seed", range(4))
def test_the_engine_and_the_portal_compute_the_defined_checksum(tmp_path, seed):
    image = tmp_path / "vol.img"
    _random_image(image, seed)
    want = content_checksum_of_file(image)
    assert want.startswith("blocks-sha256:")
    assert volumes.image_checksum(image) == want
    assert _engine_checksum(tmp_path, image, "cdc") == want
    assert _engine_checksum(tmp_path, image, "blocks") == want
    assert sparsify_and_checksum(image) == want
    assert content_checksum_of_file(image) == want  # sparsifying changed no byte


def test_holes_and_written_zeros_give_the_same_checksum_and_the_data_changes_it(tmp_path):
    holes, zeros = tmp_path / "holes.img", tmp_path / "zeros.img"
    data = random.Random(5).randbytes(200 * KIB)
    for path in (holes, zeros):
        volumes.create_image(path, 16 * MIB)
        with open(path, "r+b") as f:
            f.seek(5 * MIB + 123)
            f.write(data)
    with open(zeros, "r+b") as f:
        f.write(bytes(4 * MIB))
    assert os.stat(zeros).st_blocks > os.stat(holes).st_blocks
    assert volumes.image_checksum(holes) == volumes.image_checksum(zeros) == content_checksum_of_file(holes)
    with open(zeros, "r+b") as f:
        f.seek(9 * MIB)
        f.write(b"\x01")
    assert volumes.image_checksum(zeros) != volumes.image_checksum(holes)
    # the same bytes elsewhere are another image
    assert content_checksum(bytes(64 * KIB) + data) != content_checksum(data + bytes(64 * KIB))


def test_a_checksum_recorded_before_the_scheme_is_compared_as_the_whole_images_sha256(tmp_path):
    image = tmp_path / "old.img"
    _random_image(image, 11)
    whole = whole_image_sha256(image)
    assert volumes.is_whole_image_checksum(whole) and not volumes.is_whole_image_checksum(volumes.image_checksum(image))
    assert volumes.image_checksum(image, like=whole) == whole
    assert sparsify_and_checksum(image, like=whole) == whole
    assert volumes.image_checksum(image, like="") == volumes.image_checksum(image)
