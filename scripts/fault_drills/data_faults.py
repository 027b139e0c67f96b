"""Drills on the data and the requests: a full disk, a flipped byte in a pack, concurrent "Backup now"."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time

from .common import MIB
from .outcomes import check_store, judge_jobs, settle, wait_for_jobs, wait_for_progress
from .report import Row

SMALL_DISK_MIB = 160


def _vault_on_small_disk(ctx):
    """A vault (with its policy and one instance) whose store sits on a small tmpfs of its own."""
    from protection import datasource_types
    from protection.policies import services as policy_services
    from vaults import services as vault_services
    from vaults.storage import store_path

    vault = vault_services.create_vault(ctx.lab.trainer, name="bv-drills-disk", region=ctx.lab.lab.region,
                                        resource_group=ctx.lab.lab.lab_group)
    policy = policy_services.create_policy(ctx.lab.trainer, vault=vault, name="drills-disk",
                                           datasource_type=datasource_types.ADLS,
                                           spec=policy_services.default_spec(datasource_types.ADLS))
    instance = ctx.lab.instance(vault=vault, policy=policy)
    path = store_path(vault)
    aside = path.with_name(path.name + ".before-mount")
    path.rename(aside)
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SMALL_DISK_MIB}m,mode=0700", "tmpfs", str(path)], check=True)
    ctx.cleanups.append(lambda: subprocess.run(["umount", "-l", str(path)], check=False))
    shutil.copytree(aside, path, dirs_exist_ok=True)
    shutil.rmtree(aside)
    return vault, instance, path


def _fill_up(path, ballast) -> None:
    """Fill what is left but ~4 MiB: the backup runs out of space part way."""
    free = shutil.disk_usage(path).free
    with open(ballast, "wb") as f:
        try:
            f.write(b"\0" * max(0, free - 4 * MIB))
        except OSError:
            pass


def _backup_once_space_is_back(ctx, row: Row, instance, fault_at: float) -> None:
    """Space is back: a smaller backup must work now."""
    from portal.inventory import services as inv
    from protection.backups import services as backups

    names = [b.name for b in inv.list_blobs(ctx.lab.trainer, instance.drill_container)]
    inv.delete_blobs(ctx.lab.trainer, instance.drill_container, names)
    ctx.lab.put(instance.drill_container, 16)
    again = backups.backup_now(ctx.lab.trainer, instance, retention_rule="Default")
    second = wait_for_jobs([again.pk], time.monotonic())
    state2 = second[again.pk][0]
    row.runs += 1
    judge_jobs(row, second, fault_at)
    row.notes.append(f"the next (16 MiB) backup once space was back: {state2['status']} {state2['error_code']}")


def drill_disk(ctx) -> Row:
    """The vault's store on a small filesystem of its own (tmpfs), filled up while a backup runs."""
    from protection.backups import services as backups

    first = len(ctx.lab.instances)
    row = ctx.row("full disk mid-backup")
    if os.geteuid() != 0:
        row.notes.append("skipped: mounting a small filesystem for the store needs root")
        return row
    vault, instance, path = _vault_on_small_disk(ctx)
    deaths_before = ctx.fleet.deaths()
    ctx.lab.put(instance.drill_container, 128)
    ballast = path / "ballast"
    job = backups.backup_now(ctx.lab.trainer, instance, retention_rule="Default")
    wait_for_progress(job.pk)
    fault_at = time.monotonic()
    _fill_up(path, ballast)
    row.runs += 1
    outcomes = wait_for_jobs([job.pk], fault_at)
    judge_jobs(row, outcomes, fault_at)
    state = outcomes[job.pk][0]
    row.notes.append(f"with the disk full the job ended {state['status']} "
                     f"{state['error_code']}: {(state['error_message'] or '')[:200]}")
    ballast.unlink()
    used = shutil.disk_usage(path).used
    row.notes.append(f"store uses {used / MIB:.0f} MiB of {SMALL_DISK_MIB} MiB after the failed backup (before GC)")
    _backup_once_space_is_back(ctx, row, instance, fault_at)
    settle(row, ctx, deaths_before, first, vault=vault)
    return row


def _packs_of(store, snapshot_id):
    """Names of the packs holding a snapshot's chunks (through the store's index)."""
    seen = set()
    for rec in store.records(snapshot_id):
        for c in rec.get("c", ()):
            h = c[1] if len(c) == 3 else c[0]
            loc = store.index.locate(bytes.fromhex(h))
            if loc is not None:
                seen.add(loc[0])
    return seen


def _first_pack_file(ctx, point):
    """The file of the first pack (by name) holding the recovery point's data."""
    from vaults.storage import open_store, store_path

    with open_store(ctx.lab.vault) as store:
        packs = sorted({loc for loc in _packs_of(store, point.manifest_id)})
    return next(p for p in (store_path(ctx.lab.vault) / "packs").rglob("*")
                if p.is_file() and p.name == packs[0].split("/")[-1])


def _verify_flipped(ctx, row: Row, point, pack_file, where: str, offset: int) -> None:
    """Flip one bit at ``offset`` of the pack, run Verify, judge it, and repair the pack."""
    from protection.models import RecoveryPoint
    from protection.restores import services as restore_services
    from security.models import Alert

    original = pack_file.read_bytes()
    flipped = bytearray(original)
    flipped[offset] ^= 0x01
    os.chmod(pack_file, 0o600)
    pack_file.write_bytes(bytes(flipped))
    alerts_before = Alert.objects.count()
    verify = restore_services.start_verify(ctx.lab.trainer, point)
    started = time.monotonic()
    result = wait_for_jobs([verify.pk], started)
    state = result[verify.pk][0]
    point.refresh_from_db()
    row.runs += 1
    if result[verify.pk][1] is None:
        row.stuck += 1
    else:
        row.recovery.append(result[verify.pk][1] - started)
    detected = point.health == RecoveryPoint.Health.DAMAGED and Alert.objects.count() > alerts_before
    if not detected:
        row.lost += 1
    row.notes.append(f"byte flipped in {where}: Verify {state['status']} {state['error_code']}, point "
                     f"{point.health}, alert {'raised' if Alert.objects.count() > alerts_before else 'NOT raised'}")
    pack_file.write_bytes(original)  # repair, so the store verifies again
    RecoveryPoint.objects.filter(pk=point.pk).update(health=RecoveryPoint.Health.NOT_VERIFIED)


def drill_bitflip(ctx) -> Row:
    from protection.models import RecoveryPoint
    from protection.backups import services as backups

    first = len(ctx.lab.instances)
    row = ctx.row("flipped byte in a pack")
    instance = ctx.lab.instance(data_mib=24)
    job = backups.backup_now(ctx.lab.trainer, instance, retention_rule="Default")
    outcome = wait_for_jobs([job.pk], time.monotonic())
    point = RecoveryPoint.objects.get(pk=outcome[job.pk][0]["recovery_point_id"])
    pack_file = _first_pack_file(ctx, point)
    size = pack_file.stat().st_size
    for where, offset in (("a chunk", size // 3), ("the trailer", size - 2)):
        _verify_flipped(ctx, row, point, pack_file, where, offset)
    check_store(row, ctx.lab.vault, ctx.lab.instances[first:])
    return row


def _click_at_once(ctx, instance, clicks: int):
    """``clicks`` threads press "Backup now" together; returns (jobs made, refusals, other errors)."""
    from django.core.exceptions import ValidationError
    from django.db import connection

    from protection.backups import services as backups

    barrier = threading.Barrier(clicks)
    made, refused, errors = [], [], []

    def click():
        try:
            barrier.wait()
            made.append(backups.backup_now(ctx.lab.trainer, instance, retention_rule="Default").pk)
        except ValidationError as exc:
            refused.append("; ".join(exc.messages))
        except Exception as exc:  # noqa: BLE001 — reported in the table
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            connection.close()

    threads = [threading.Thread(target=click) for _ in range(clicks)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return made, refused, errors


def drill_concurrent(ctx, clicks: int = 8) -> Row:
    from protection.models import Job

    first = len(ctx.lab.instances)
    row = ctx.row(f'concurrent "Backup now" ×{clicks}')
    instance = ctx.lab.instance(data_mib=16)
    started = time.monotonic()
    made, refused, errors = _click_at_once(ctx, instance, clicks)
    row.runs = clicks
    jobs_now = Job.objects.filter(instance=instance, operation="Backup").count()
    if jobs_now != 1:
        row.notes.append(f"{jobs_now} backup jobs were created (expected exactly one)")
        row.lost += max(0, 1 - jobs_now)
    row.unreadable += len(errors)
    row.notes.append(f"{len(made)} job(s) created, {len(refused)} refused"
                     + (f" (e.g. \"{refused[0][:140]}\")" if refused else "") + (f"; errors: {errors[:2]}" if errors else ""))
    judge_jobs(row, wait_for_jobs(made, time.monotonic()), started)
    row.left_dead = ctx.fleet.left_dead()
    check_store(row, ctx.lab.vault, ctx.lab.instances[first:])
    return row
