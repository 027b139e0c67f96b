"""Waiting for the drills' jobs and judging what they left: lost, stuck, unreadable, half points."""

from __future__ import annotations

import time

from .common import ENDED, STUCK_AFTER, wait_until
from .report import Row


def _db_retry(fn, *args, **kwargs):
    """Run a query, reconnecting while the database restarts."""
    from django.db import OperationalError, InterfaceError, connection

    for _ in range(600):
        try:
            return fn(*args, **kwargs)
        except (OperationalError, InterfaceError):
            connection.close()
            time.sleep(0.2)
    return fn(*args, **kwargs)


def job_state(job_id):
    from protection.models import Job

    return _db_retry(lambda: Job.objects.filter(pk=job_id).values(
        "status", "bytes_done", "worker", "error_code", "error_message", "attempts", "recovery_point_id").first())


def wait_for_progress(job_id, with_worker: bool = False):
    """Wait (2 minutes at most) until the backup runs and has read some bytes (and, with ``with_worker``,
    names the worker running it); returns the job's state then."""

    def progressing():
        s = job_state(job_id)
        return s and s["status"] == "InProgress" and s["bytes_done"] > 0 and (s["worker"] or not with_worker) and s

    return wait_until(progressing, 120, "the backup to show progress", interval=0.02)


def wait_for_jobs(job_ids, fault_over_at: float, extra: float = 0.0) -> dict:
    """Wait until every job ended or STUCK_AFTER (+extra) seconds passed since the fault was over.
    Returns {job_id: (state, ended_at_monotonic or None)}."""
    pending = set(job_ids)
    result = {}
    deadline = fault_over_at + STUCK_AFTER + extra
    while pending and time.monotonic() < deadline:
        for job_id in list(pending):
            state = job_state(job_id)
            if state and state["status"] in ENDED:
                result[job_id] = (state, time.monotonic())
                pending.discard(job_id)
        time.sleep(0.25)
    for job_id in pending:
        result[job_id] = (job_state(job_id), None)
    return result


def judge_jobs(row: Row, outcomes: dict, fault_at: float) -> None:
    """Lost, stuck, unreadable and recovery time from the jobs' ends."""
    from protection.models import RecoveryPoint

    for job_id, (state, ended_at) in outcomes.items():
        if ended_at is None:
            row.stuck += 1
            row.notes.append(f"job {job_id} still {state['status']} (attempts {state['attempts']}) past the deadline")
            continue
        row.recovery.append(ended_at - fault_at)
        if state["status"] in ("Completed", "CompletedWithWarnings"):
            if not state["recovery_point_id"] or not RecoveryPoint.objects.filter(pk=state["recovery_point_id"]).exists():
                row.lost += 1
                row.notes.append(f"job {job_id} completed without a recovery point")
        elif state["status"] == "Failed":
            if not state["error_code"] or state["error_code"] == "InternalError" or not state["error_message"]:
                row.unreadable += 1
            row.notes.append(f"job {job_id} failed: {state['error_code']}: {state['error_message'][:160]}")
        else:
            row.notes.append(f"job {job_id} ended {state['status']}")


def check_store(row: Row, vault, instances) -> None:
    """Half points (both ways) of the drill's instances, and a full verify of the vault's store."""
    from protection.models import RecoveryPoint
    from vaults.storage import open_store

    owned = {}
    points = list(RecoveryPoint.objects.filter(instance__in=[i.pk for i in instances]).select_related("instance"))
    for point in points:
        owned.update({m["id"]: point.instance.name for m in (point.manifests or [])})
    prefixes = tuple(f"bi:{i.pk}:" for i in instances)
    with open_store(vault) as store:
        snapshots = {s.id for s in store.list_snapshots() if s.source_id.startswith(prefixes)}
        orphans = snapshots - set(owned)
        missing = set(owned) - snapshots
        report = store.verify()
    row.half += len(orphans) + len(missing)
    if orphans:
        row.notes.append(f"{len(orphans)} snapshot(s) in the store belong to no recovery point")
    if missing:
        row.notes.append(f"{len(missing)} recovery point snapshot(s) missing from the store "
                         f"(a recovery point whose data is gone: {', '.join(sorted({owned[m] for m in missing}))})")
    row.store_ok = report.ok if row.store_ok is None else (row.store_ok and report.ok)
    if not report.ok:
        row.notes.append(f"store verify: {'; '.join(report.errors[:3]) or report.damaged_items[:3]}")


def settle(row: Row, ctx, deaths_before: int, first: int, vault=None) -> None:
    """How a drill ends: worker deaths since it began, workers left dead, and the store of the instances it
    made (from ``ctx.lab.instances[first]`` on) checked."""
    row.deaths = ctx.fleet.deaths() - deaths_before
    row.left_dead = ctx.fleet.left_dead()
    check_store(row, vault or ctx.lab.vault, ctx.lab.instances[first:])
