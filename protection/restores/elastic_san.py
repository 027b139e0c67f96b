"""Restore an Elastic SAN recovery point as a new volume (never over an existing one).

The engine writes the image into a hidden file of the target volume group's folder (sparse: holes
stay holes), its checksum is compared with the one recorded at backup, and only then is the volume
created through the inventory service (`create_volume`, as the vault identity, which Elastic SAN
Volume Importer allows) and the image renamed over the empty one it made, in one transaction. A
failure or a cancel before that removes the hidden file; a failure while registering removes the
volume again. Finally the new volume's checksum is recorded through the inventory's checksum job,
so its page shows the same checksum as the recovery point.
"""

from __future__ import annotations

import contextlib
import logging
import os

from django.db import transaction
from django.urls import reverse

from protection.jobs import runner as jobs
from protection.restores import layout, validation

TEMP_PREFIX = ".strongroom-restore-"
logger = logging.getLogger(__name__)


def temp_name(job) -> str:
    return f"{TEMP_PREFIX}{job.pk.hex}.img"


def remove_leftovers(group, job) -> None:
    from portal.inventory import volumes

    with contextlib.suppress(Exception):
        volumes.remove_image(group.data_path / temp_name(job))


def data_bytes(store, snapshot_id: str) -> int:
    """Bytes of the blocks that hold data (what the engine will write; holes are not counted)."""
    total = 0
    for rec in store.records(snapshot_id):
        if rec.get("t") == "+":
            total += sum(int(c[2]) for c in rec.get("c", ()) if len(c) == 3)
    return total


PAGE = 4096
_FALLOC_PUNCH = 0x01 | 0x02  # FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE


def _puncher():
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fallocate = libc.fallocate
    except (OSError, AttributeError):
        return None
    fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]

    def punch(fd: int, offset: int, length: int) -> None:
        fallocate(fd, _FALLOC_PUNCH, offset, length)  # best effort: a filesystem without it keeps zeros

    return punch


def write_image(point, temp, run, *, name: str, shown_as: str, noun: str) -> int:
    """The recovery point's image into ``temp`` (restored as ``name``, shown as ``shown_as``); returns the
    data bytes written. A damaged image is refused: nothing (no ``noun``) is created from it."""
    from vaults.store import DamageError

    part = layout.volume_part(point)
    with layout.open_point_store(point) as store:
        to_write = data_bytes(store, part.snapshot_id)
        run.report(bytes_total=to_write or None, items_total=1,
                   current_item=f"Restoring {part.item} as {shown_as}", force=True)
        run.check_cancel()
        try:
            store.restore(part.snapshot_id, str(temp), progress=run.engine_progress(name), cancel=run.cancel)
        except DamageError as exc:
            raise jobs.JobError("UserErrorRecoveryPointDamaged",
                                f"The recovery point's image of '{part.item}' is damaged ({len(exc.chunks)} damaged "
                                f"block(s)); no {noun} was created. Run Verify on the recovery point, and restore "
                                "from another one.") from None
    return to_write


def checked_image(run, temp, written: int, name: str, expected: str, noun: str) -> str:
    """The restored image's checksum (after `sparsify_and_checksum`, of the kind ``expected`` is),
    refused as damaged when it differs from the one recorded at backup: nothing (no ``noun``) is
    created from it then."""
    run.bytes_base = written
    run.report(bytes_done=written, current_item=f"Checking the checksum of {name}", force=True)
    checksum = sparsify_and_checksum(temp, like=expected)
    if expected and checksum != expected:
        raise jobs.JobError("UserErrorRecoveryPointDamaged",
                            f"The restored image's checksum ({checksum}) differs from the one recorded at backup "
                            f"({expected}); no {noun} was created.")
    run.check_cancel()
    return checksum


def sparsify_and_checksum(path, progress=None, *, like: str = "") -> str:
    """The image's checksum (`volumes.image_checksum`, of the kind ``like`` is) in one pass that also
    turns all-zero 4 KiB pages back into holes: the engine writes whole chunks, and the volume had
    holes inside them too."""
    from portal.inventory import volumes

    digest = volumes.digest_like(like)
    punch = _puncher()
    zero_page = bytes(PAGE)
    with volumes.open_image(path, write=True) as fd:
        size = os.fstat(fd).st_size
        for position, chunk in volumes.data_runs(fd, size, progress):
            digest.update(position, chunk)
            if punch is None:
                continue
            run_start = None  # runs start on a 64 KiB boundary: pages line up
            for off in range(0, len(chunk) - len(chunk) % PAGE, PAGE):
                if chunk[off:off + PAGE] == zero_page:
                    run_start = off if run_start is None else run_start
                elif run_start is not None:
                    punch(fd, position + run_start, off - run_start)
                    run_start = None
            if run_start is not None:
                punch(fd, position + run_start, len(chunk) - len(chunk) % PAGE - run_start)
        os.fsync(fd)
    return digest.checksum(size)


def restore(job, point, target, resolved, run) -> dict:
    from portal.inventory import fs, volumes
    from portal.inventory import services as inventory
    from security.guards import GuardDenied

    group = resolved["volume_group"]
    identity = point.instance.vault.identity
    expected = layout.volume_checksum(point)
    remove_leftovers(group, job)
    os.close(fs.open_dir(group.data_path, create=True))
    temp = group.data_path / temp_name(job)
    final = None
    volume = None
    try:
        to_write = write_image(point, temp, run, name=target.volume_name, shown_as=target.volume_name, noun="volume")
        checksum = checked_image(run, temp, to_write, target.volume_name, expected, "volume")
        info = volumes.image_info(temp)
        run.report(current_item=f"Creating the volume {target.volume_name}", force=True)
        with transaction.atomic():
            try:
                volume = inventory.create_volume(identity, group, name=target.volume_name, size_gib=resolved["size_gib"])
            except GuardDenied as exc:
                raise jobs.JobError(validation.MISSING_PERMISSIONS,
                                    f"{validation.MISSING_PERMISSIONS_TEXT} {exc.decision.reason}") from None
            final = volume.image_path
            with fs.opened_dir(group.data_path) as dir_fd:
                os.rename(temp.name, final.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        if final is not None:  # the row rolled back; the image it made (or ours, renamed) goes too
            with contextlib.suppress(Exception):
                volumes.remove_image(final)
        raise
    finally:
        with contextlib.suppress(Exception):
            volumes.remove_image(temp)
    run.items_base = 1
    run.report(items_done=1, current_item=f"Recording the checksum of {volume.name}", force=True)
    try:
        volume = inventory.compute_checksum_now(identity, volume)
    except Exception:  # the restore is complete; the volume page offers "Compute checksum"
        logger.warning("Could not record the checksum of restored volume %s", volume.resource_id, exc_info=True)
    url = reverse("portal:volume_detail", args=[volume.pk])
    return {
        "summary": {
            "itemsRestored": 1,
            "bytesRestored": info.size_bytes,
            "dataBytes": to_write,
            "allocatedBytes": info.allocated_bytes,
            "target": volume.name,
            "targetResourceId": volume.resource_id,
            "checksum": checksum,
            "expectedChecksum": expected,
            "checksumMatches": (checksum == expected) if expected else None,
            "links": [{"label": f"Volume {volume.name} in {group.elastic_san.name}/{group.name}", "url": url}],
        },
        "bytes": to_write,
        "items": 1,
    }
