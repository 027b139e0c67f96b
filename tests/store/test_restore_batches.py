"""Issue 22: restore in batches across worker threads (byte-for-byte, sparse images), images cut
into content-defined chunks inside their data regions (store growth on scattered extents), and
stores written before (fixed volume blocks) still backing up and restoring their own way."""
import os
import random

import pytest

from tests.store.helpers import KEY, file_sha, snapshot_tree, write_tree
from vaults.store import LocalBackend, Store, batch
from vaults.store.config import write_config

MiB = 1 << 20


def scattered_image(path, extents=8, seed=5, text_every=0):
    """A sparse image of 6 MiB per extent: 1 MiB extents at random 4 KiB-aligned offsets (not
    1 MiB-aligned, never overlapping), random bytes (every ``text_every``-th extent compressible
    text instead)."""
    rnd = random.Random(seed)
    written = 0
    with open(path, "wb") as f:
        f.truncate(extents * 6 * MiB)
        for i in range(extents):
            off = i * 6 * MiB + rnd.randrange(1, 1024) * 4096
            f.seek(off)
            if text_every and i % text_every == 0:
                f.write((f"extent {i} line of text {rnd.random()}\n" * 40000).encode()[:MiB])
            else:
                f.write(rnd.randbytes(MiB))
            written += MiB
    return written


def test_tree_restore_in_batches_is_byte_identical(make_local_store, tmp_path, monkeypatch):
    """Small batches (many per file, many files per batch) and three workers: same bytes, modes
    and times as the source; duplicates and empty files included."""
    monkeypatch.setattr(batch, "BATCH_BYTES", 96 << 10)
    monkeypatch.setattr(batch, "BATCH_ITEMS", 5)
    src = tmp_path / "src"
    write_tree(str(src), seed=11, files=60, max_size=2 << 20)
    with open(src / "dup-a", "wb") as f:
        f.write(random.Random(2).randbytes(700_000))
    with open(src / "dup-b", "wb") as f:
        f.write(random.Random(2).randbytes(700_000))
    (src / "empty").write_bytes(b"")
    store = make_local_store(workers=3, small=True)
    snap = store.backup_tree(str(src))
    out = tmp_path / "out"
    res = store.restore(snap.id, str(out))
    assert res["files"] == 63
    assert snapshot_tree(str(out)) == snapshot_tree(str(src))


def test_runs_of_adjacent_chunks_are_read_in_one_range(make_local_store, tmp_path, monkeypatch):
    monkeypatch.setattr(batch, "BATCH_BYTES", 4 * MiB)
    monkeypatch.setattr(batch, "BATCH_ITEMS", 64)
    src = tmp_path / "src"
    src.mkdir()
    (src / "big").write_bytes(random.Random(4).randbytes(3 * MiB))
    store = make_local_store(small=True)  # 16-256 KiB chunks: a dozen or more for this file
    snap = store.backup_tree(str(src))
    calls = []
    real = store.backend.get_range

    def counting(name, off, ln):
        calls.append(ln)
        return real(name, off, ln)

    monkeypatch.setattr(store.backend, "get_range", counting)
    store.restore(snap.id, str(tmp_path / "out"))
    assert file_sha(tmp_path / "out" / "big") == file_sha(src / "big")
    assert snap.stats["chunks_new"] >= 10
    assert len(calls) <= snap.stats["packs"] + 1  # one read per pack run, not one per chunk


@pytest.mark.parametrize("chunking", ["cdc", "blocks"])
def test_volume_restore_leaves_zero_runs_as_holes(make_local_store, tmp_path, chunking):
    """Zero runs inside stored chunks (a block straddling an extent, zeroed pages) stay holes."""
    img = tmp_path / "vol.img"
    rnd = random.Random(9)
    with open(img, "wb") as f:
        f.truncate(64 * MiB)
        for off in (3 * MiB + 4096, 20 * MiB + 12288, 41 * MiB):
            f.seek(off)
            # data, 200 KiB of written zeros, data: allocated, but the zeros need no blocks
            f.write(rnd.randbytes(300_000) + bytes(200 << 10) + rnd.randbytes(300_000))
    store = make_local_store(volume_chunking=chunking)
    snap = store.backup_volume(str(img))
    out = tmp_path / "restored.img"
    store.restore(snap.id, str(out))
    assert os.path.getsize(out) == os.path.getsize(img)
    assert file_sha(out) == file_sha(img)
    allocated = os.stat(out).st_blocks * 512
    assert allocated <= 3 * 600_000 + 6 * 4096  # the data, not the zeros nor the block padding


def test_nonzero_spans_skips_only_aligned_zero_blocks():
    z = bytes(4096)
    data = b"a" * 100 + z * 3 + b"b" * 10
    # at file offset 3996 the zeros cover the aligned blocks 4096-16384 exactly
    assert batch.nonzero_spans(data, base=3996) == [(0, 100), (100 + 3 * 4096, len(data))]
    # one byte later they cover only the aligned blocks 8192-16384 (data 4195-12387)
    assert batch.nonzero_spans(data, base=3997) == [(0, 8192 - 3997), (16384 - 3997, len(data))]
    assert batch.nonzero_spans(b"x" * 10000) == [(0, 10000)]
    assert batch.nonzero_spans(z * 2) == []


def test_image_store_growth_follows_the_data(make_local_store, tmp_path):
    """Scattered 1 MiB extents at 4 KiB-aligned offsets: content-defined chunks inside the data
    regions store about the data; fixed 1 MiB blocks straddling them stored up to twice that."""
    img = tmp_path / "vol.img"
    written = scattered_image(img)
    sizes = {}
    for chunking in ("cdc", "blocks"):
        store = make_local_store(name=chunking, volume_chunking=chunking)
        snap = store.backup_volume(str(img))
        sizes[chunking] = snap.stats["bytes_stored"]
        out = tmp_path / f"{chunking}.img"
        store.restore(snap.id, str(out))
        assert file_sha(out) == file_sha(img)
    assert sizes["cdc"] <= written * 1.02
    assert sizes["blocks"] > written * 1.3  # what the chunking fixes (the test can fail)


def test_image_increment_after_a_small_change_stores_little(make_local_store, tmp_path):
    img = tmp_path / "vol.img"
    scattered_image(img, text_every=2)
    store = make_local_store()
    s1 = store.backup_volume(str(img))
    with open(img, "r+b") as f:  # rewrite one page inside some extent
        for off in range(0, 48 * MiB, MiB):
            f.seek(off)
            if f.read(4096).strip(b"\0"):
                f.seek(off)
                f.write(b"Z" * 4096)
                break
    s2 = store.backup_volume(str(img))
    assert s2.stats["bytes_new"] <= 2 * 4 * MiB  # the chunk(s) around the change, not the image
    assert s2.stats["chunks_dup"] >= s1.stats["chunks_new"] - 2
    store.restore(s2.id, str(tmp_path / "out.img"))
    assert file_sha(tmp_path / "out.img") == file_sha(img)


def test_a_store_created_before_keeps_fixed_blocks_and_restores(tmp_path):
    """A store whose config predates ``volume_chunking`` (written here exactly as the old code
    wrote it) keeps cutting images into fixed blocks, and its old and new points restore."""
    backend = LocalBackend(str(tmp_path / "old"), create=True)
    s = Store.init(backend, KEY, cache_dir=str(tmp_path / "c"))
    cfg = {k: v for k, v in s.config.items() if k not in ("wrapped", "volume_chunking")}
    secret = s._secret
    s.close()
    write_config(LocalBackend(str(tmp_path / "old")), cfg, KEY, secret)
    img = tmp_path / "vol.img"
    scattered_image(img, extents=4)
    old = Store.open(LocalBackend(str(tmp_path / "old")), KEY, cache_dir=str(tmp_path / "c"))
    try:
        assert old.volume_chunking == "blocks"
        snap = old.backup_volume(str(img))
        head = next(iter(old.records(snap.id)))
        assert head["bs"] == old.block_size and "ck" not in head
        assert all(c[0] % old.block_size == 0 for r in old.records(snap.id) for c in r.get("c", ()))
        old.restore(snap.id, str(tmp_path / "out.img"))
        assert file_sha(tmp_path / "out.img") == file_sha(img)
        assert old.verify(snap.id).ok
    finally:
        old.close()
    new = Store.init(LocalBackend(str(tmp_path / "new"), create=True), KEY, cache_dir=str(tmp_path / "c2"))
    try:
        assert new.volume_chunking == "cdc"
        snap = new.backup_volume(str(img))
        assert next(iter(new.records(snap.id)))["ck"] == "cdc"
    finally:
        new.close()


def test_a_missing_pack_spoils_only_the_files_in_it(make_local_store, tmp_path):
    """A batch spans several files and packs: a pack gone names exactly the files with chunks in
    it (removed), and every other file is restored whole."""
    src = tmp_path / "src"
    src.mkdir()
    rnd = random.Random(8)
    for i in range(12):
        (src / f"f{i:02d}").write_bytes(rnd.randbytes(rnd.randint(50_000, 400_000)))
    store = make_local_store(small=True)
    snap = store.backup_tree(str(src))
    packs = sorted(store.backend.list("packs/"))
    assert len(packs) >= 3
    victim = packs[len(packs) // 2]
    in_victim = set()
    for rec in store.records(snap.id):
        for h, _ in rec.get("c", ()):
            loc = store.index.locate(bytes.fromhex(h))
            if loc and victim.endswith(loc[0]):
                in_victim.add(rec["p"])
    assert in_victim
    os.unlink(store.backend._path(victim))
    out = tmp_path / "out"
    from vaults.store import DamageError
    with pytest.raises(DamageError) as ei:
        store.restore(snap.id, str(out))
    assert set(ei.value.items) == in_victim
    for i in range(12):
        name = f"f{i:02d}"
        if name in in_victim:
            assert not (out / name).exists()
        else:
            assert file_sha(out / name) == file_sha(src / name)


def test_an_images_regions_are_cut_the_same_whether_read_whole_or_streamed(tmp_path):
    """GIVEN an image whose data regions are smaller than, equal to and larger than the whole-read
    limit (regions up to it are read whole and cut in memory; larger ones are streamed)
    WHEN its chunks are listed
    THEN each region is cut exactly where streaming it cuts (a recovery point taken before keeps
    deduplicating against the next), the chunks hold the region's bytes and cover it."""
    from vaults.store.chunker import CDC, WHOLE_FILE_LIMIT, data_extents, volume_chunks
    from vaults.store.filerange import FileRange

    rnd = random.Random(11)
    cdc = CDC(seed=1234, min_size=64 << 10, avg_size=256 << 10, max_size=1 << 20)
    path = tmp_path / "disk.img"
    lengths = [100, cdc.min_size, cdc.min_size + 1, 3 * MiB + 77, WHOLE_FILE_LIMIT, WHOLE_FILE_LIMIT + 4096]
    with open(path, "wb") as f:
        pos = 0
        for n in lengths:
            pos += 2 * MiB + rnd.randrange(1, 64) * 4096
            f.seek(pos)
            f.write(rnd.randbytes(n))
            pos += n
        f.truncate(pos + MiB)
    fd = os.open(path, os.O_RDONLY)
    try:
        regions = list(data_extents(fd, os.fstat(fd).st_size))
        got = [(off, bytes(data)) for off, data in volume_chunks(fd, os.fstat(fd).st_size, cdc)]
        streamed = []
        for start, end in regions:
            for c in cdc.cutter().cut_stream(FileRange(fd, start, end)):
                streamed.append((start + c.offset, bytes(c.data)))
    finally:
        os.close(fd)
    sizes = [e - s for s, e in regions]
    assert len(regions) == len(lengths)  # both ways are taken: small, whole-read and streamed regions
    assert min(sizes) <= cdc.min_size < max(sizes) and max(sizes) > WHOLE_FILE_LIMIT
    assert any(cdc.min_size < n <= WHOLE_FILE_LIMIT for n in sizes)
    assert [(off, len(d)) for off, d in got] == [(off, len(d)) for off, d in streamed]
    assert got == streamed
