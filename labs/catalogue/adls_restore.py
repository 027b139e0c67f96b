"""Lab 3's restore checks: what reached sbx<code>dst (from the Restore jobs' results and the target's
containers), and whether every restored blob equals the recovery point, byte for byte.

A restore counts when its job completed, it wrote into the sandbox's target account, the container kept
its own name, its prefixes are the ones the lab asks for, and the container is still there. Several
restores may together bring back the two containers.
"""

from __future__ import annotations

from dataclasses import dataclass

from labs.catalogue import CheckResult
from labs.catalogue.blob_compare import Comparison, PointUnreadable, container_hashes, point_hashes
from protection.models import Job, JobOperation, JobStatus, RecoveryPoint

PROTECTED = ("documents", "images")  # what the backup instance protects
EXCLUDED = "logs"
PREFIX = "reports/2024/"
# What the restore brings back into the target: container -> prefixes (none: the whole container).
WANTED_RESTORE = {"documents": (PREFIX,), "images": ()}
_DONE = (JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_WARNINGS)
_RUNNING = (JobStatus.IN_PROGRESS, JobStatus.CANCELLING)


def names_of(names) -> str:
    names = list(names)
    return ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else "".join(names)


def when(moment) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


@dataclass(frozen=True)
class Restored:
    container: str
    job: Job
    point: RecoveryPoint
    prefixes: tuple[str, ...]


def _restore_jobs(ctx) -> list[Job]:
    """Restore jobs of the source account's backup instances in the sandbox, newest first."""
    source = ctx.world.source_account
    return list(Job.objects.filter(operation=JobOperation.RESTORE, vault__resource_group__subscription=ctx.world.subscription,
                                   instance__datasource_resource_id__iexact=source.resource_id)
                .select_related("recovery_point__instance__vault").order_by("-start_time"))


def _target_id(job) -> str:
    return ((job.parameters or {}).get("target") or {}).get("account_id", "")


def _account_name(resource_id: str) -> str:
    return resource_id.rstrip("/").rsplit("/", 1)[-1]


def _same_prefixes(container: str, prefixes) -> bool:
    wanted = [p.rstrip("/") for p in WANTED_RESTORE[container]]
    return [p.rstrip("/") for p in prefixes or ()] == wanted


def _mismatch(container: str, entry: dict, target) -> str:
    """Why a container this restore brought back does not count ('' when it does)."""
    name, prefixes = entry.get("name", ""), tuple(entry.get("prefixes") or ())
    if name != container:
        return (f"the container {container} was restored into {target.name} as '{name}': restore it under its own name "
                "(leave Restore as empty).")
    if not _same_prefixes(container, prefixes):
        wanted = WANTED_RESTORE[container]
        got = f"with the prefixes {', '.join(prefixes)}" if prefixes else "whole"
        asked = f"only the prefix {wanted[0]}" if wanted else "the whole container, with no prefix"
        return (f"the container {container} was restored {got}; this lab restores {asked}. Delete the container {container} in "
                f"{target.name}, then restore it again.")
    if not target.containers.filter(name=name).exists():
        return f"the container {container} was restored into {target.name}, but it is no longer there: restore it again."
    return ""


def _collect(jobs, target) -> tuple[dict, dict]:
    """(container -> Restored, container -> why a restore of it does not count) over the completed
    restores into ``target``, newest first."""
    found, problems = {}, {}
    for job in jobs:
        if job.status not in _DONE or _target_id(job).lower() != target.resource_id.lower():
            continue
        for entry in ((job.extended_info or {}).get("restore") or {}).get("containers") or []:
            container = entry.get("source", "")
            if container not in WANTED_RESTORE or container in found:
                continue
            why = _mismatch(container, entry, target)
            if not why and job.recovery_point is not None:
                found[container] = Restored(container, job, job.recovery_point, tuple(entry.get("prefixes") or ()))
            else:
                problems.setdefault(container, why or f"the recovery point {container} was restored from is gone")
    return found, problems


def _elsewhere(jobs, target) -> str:
    """Restores that completed into another account than ``target`` (the near miss), in words."""
    others = sorted({_account_name(_target_id(j)) for j in jobs
                     if j.status in _DONE and _target_id(j).lower() != target.resource_id.lower()})
    if not others:
        return ""
    return (f" Your restore went into {names_of(others)}, not into {target.name} (in "
            f"{target.resource_group.name}).")


def restored(ctx) -> tuple[dict, str]:
    """(container -> Restored, '') when documents (prefix reports/2024/) and images (whole) were restored
    into the target account; else ({...}, what is still missing in words)."""
    target = ctx.world.target_account
    jobs = _restore_jobs(ctx)
    if not jobs:
        return {}, (f"Nothing has been restored from {ctx.names.source_account} yet: restore documents (prefix "
                    f"{PREFIX}) and images into {target.name}.")
    found, problems = _collect(jobs, target)
    if len(found) == len(WANTED_RESTORE):
        return found, ""
    lacking = [c for c in WANTED_RESTORE if c not in found]
    words = [problems.get(c) or f"the container {c} has not been restored into {target.name} yet" for c in lacking]
    message = "; ".join(w[0].upper() + w[1:] if i == 0 else w for i, w in enumerate(words))
    message = message if message.endswith(".") else message + "."
    message += _elsewhere(jobs, target)
    running = next((j for j in jobs if j.status in _RUNNING), None)
    failed = next((j for j in jobs if j.status == JobStatus.FAILED), None)
    if running is not None:
        message += f" A restore started at {when(running.start_time)} is still running: check again when it completes."
    elif failed is not None and failed is jobs[0]:
        message += (f" The last restore (into {_account_name(_target_id(failed))}) failed: {failed.error_code}: "
                    f"{failed.error_message}")
    return found, message


def check_equal(ctx) -> CheckResult:
    """The recovery point restored from is verified Healthy, and every restored blob in the target has
    the SHA-256 of the same blob in that recovery point (nothing missing, nothing extra)."""
    found, problem = restored(ctx)
    if problem:
        return CheckResult.missing(f"Restore first: {problem}")
    target = ctx.world.target_account
    points = {r.point.pk: r.point for r in found.values()}
    for point in points.values():
        moment, instance = when(point.recovery_point_time), point.instance.name
        verifying = Job.objects.filter(operation=JobOperation.VERIFY, recovery_point=point, status__in=_RUNNING)
        if point.health == RecoveryPoint.Health.NOT_VERIFIED and verifying.exists():
            return CheckResult.missing(f"Verify of the recovery point of {moment} is still running: check again when "
                                       "its job has completed.")
        if point.health == RecoveryPoint.Health.NOT_VERIFIED:
            return CheckResult.missing(
                f"The recovery point of {moment} has not been verified yet: open it (Backup instances > {instance} > "
                "Recovery points) and select Verify, then wait for the Verify job.")
        if point.health == RecoveryPoint.Health.DAMAGED:
            return CheckResult.missing(f"Verify found the recovery point of {moment} damaged: it cannot prove the "
                                       "restore. Take a new backup and restore from it.")
    comparison = Comparison()
    for container, item in found.items():
        try:
            expected = point_hashes(item.point, container, item.prefixes)
        except PointUnreadable as exc:
            return CheckResult.missing(f"The blobs of {container} could not be read from the recovery point: {exc}.")
        row = target.containers.filter(name=container).first()
        comparison.add(container, expected, container_hashes(row) if row is not None else {})
    if not comparison.equal:
        return CheckResult.missing(
            f"The restored blobs in {target.name} do not equal the source at the recovery point: "
            f"{comparison.describe(target.name)}. Delete {names_of(comparison.containers)} in {target.name} and "
            "restore again.")
    point = next(iter(points.values()))
    return CheckResult.ok(
        f"All {comparison.blobs} restored blobs ({comparison.bytes:,} bytes) in {target.name} equal "
        f"{ctx.names.source_account} at the recovery point of {when(point.recovery_point_time)}, byte for byte "
        "(SHA-256), and Verify found the recovery point Healthy.")
