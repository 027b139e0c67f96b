"""A job is authorized again when a worker runs it, not only when it was asked for: a role removed, a
Resource Guard or a lockdown that refuses since the job was queued stops it before any byte moves (as
the person who asked, or as the system principal for what a schedule or a policy started)."""

from __future__ import annotations

from protection.jobs import runner as jobs
from protection.models import Job
from security.audit import record_denial
from security.guards import evaluate
from vaults.networking.guard import NETWORK_GUARD


def authorize_run(job: Job, actor, operation: str, target, *, denied_code: str, details: dict,
                  change: dict | None = None) -> None:
    """Ask ``evaluate`` for ``operation`` on ``target`` as ``actor``; a refusal is logged (activity log) and
    ends the job with ``denied_code`` (a refusal of the vault's network keeps its own code). No ``actor`` (the
    person who asked was deleted since) is a refusal too."""
    if actor is None:
        raise jobs.JobError(denied_code, "Whoever asked for this job no longer exists, so nothing was done. "
                                         "Ask again as someone who may.")
    decision = evaluate(actor, operation, target, {"job_id": str(job.pk), **(change or {})})
    if decision.allowed:
        return
    record_denial(actor, decision, {**details, "jobId": str(job.pk)})
    code = decision.code if decision.guard == NETWORK_GUARD else denied_code
    raise jobs.JobError(code, f"{decision.reason} {decision.remedy}".strip())
