"""Long-running operations, as ARM answers them and azure-core's ARMPolling follows them.

A PUT answers 201 with ``Azure-AsyncOperation``; a POST or DELETE answers 202 with
``Azure-AsyncOperation`` and ``Location``. Both URLs are absolute (built from the request's own host,
so the SDK comes back to the server it called), carry ``api-version`` and come with ``Retry-After``.
The status resource goes InProgress -> Succeeded | Failed (with ARM's error object); the result at
``Location`` is 202 while running, then the operation's result (200; an OperationJobExtendedInfo naming no
job when it has none: the SDK's ``operation_result.get`` accepts 200 or 202, never 204).

An operation that follows a Job takes the job's outcome: the upper floor that owns jobs registers
``register_job_outcome(fn)``, with ``fn(job_id) -> JobOutcome | None`` (None while the job runs), and
the status is read from it whenever someone polls, so no signal can be missed.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.http import HttpResponse, JsonResponse

from portal.api import API_VERSION
from portal.api.envelope import timestamp
from portal.models import AsyncOperation
from security import clock

RETRY_AFTER_SECONDS = 1
PROVIDER = "Microsoft.DataProtection"


@dataclass(frozen=True)
class JobOutcome:
    succeeded: bool
    job_id: str  # what OperationJobExtendedInfo.jobId names
    code: str = ""
    message: str = ""


_job_outcome = []


def register_job_outcome(fn) -> None:
    _job_outcome[:] = [fn]


def _subscription_of(resource_id: str) -> str:
    parts = resource_id.strip("/").split("/")
    return parts[1] if len(parts) > 1 and parts[0].lower() == "subscriptions" else ""


def start(request, *, kind: str, resource_id: str, location: str, job_id: str = "") -> AsyncOperation:
    return AsyncOperation.objects.create(
        principal=request.auth,
        kind=kind,
        subscription_id=_subscription_of(resource_id),
        location=location or "global",
        resource_id=resource_id,
        job_id=str(job_id or ""),
        started_at=clock.now(),
    )


def succeed(op: AsyncOperation, result: dict | None = None) -> AsyncOperation:
    op.status, op.result, op.ended_at = AsyncOperation.Status.SUCCEEDED, result, clock.now()
    op.save(update_fields=["status", "result", "ended_at"])
    return op


def fail(op: AsyncOperation, code: str, message: str) -> AsyncOperation:
    op.status, op.error, op.ended_at = AsyncOperation.Status.FAILED, {"code": code, "message": message}, clock.now()
    op.save(update_fields=["status", "error", "ended_at"])
    return op


def refresh(op: AsyncOperation) -> AsyncOperation:
    """Bring a job-following operation up to date with its job."""
    if op.is_finished or not op.job_id or not _job_outcome:
        return op
    outcome = _job_outcome[0](op.job_id)
    if outcome is None:
        return op
    if outcome.succeeded:
        return succeed(op, {"objectType": "OperationJobExtendedInfo", "jobId": outcome.job_id})
    return fail(op, outcome.code or "UserErrorJobFailed", outcome.message or "The job failed.")


def _base(request, op: AsyncOperation) -> str:
    return request.build_absolute_uri(
        f"/subscriptions/{op.subscription_id}/providers/{PROVIDER}/locations/{op.location}"
    )


def status_url(request, op: AsyncOperation) -> str:
    return f"{_base(request, op)}/operationStatus/{op.id}?api-version={API_VERSION}"


def result_url(request, op: AsyncOperation) -> str:
    return f"{_base(request, op)}/operationResults/{op.id}?api-version={API_VERSION}"


def created(request, op: AsyncOperation, body: dict, *, status: int = 201) -> JsonResponse:
    response = JsonResponse(body, status=status)
    response["Azure-AsyncOperation"] = status_url(request, op)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def accepted(request, op: AsyncOperation) -> HttpResponse:
    response = HttpResponse(status=202)
    response["Azure-AsyncOperation"] = status_url(request, op)
    response["Location"] = result_url(request, op)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def status_body(op: AsyncOperation) -> dict:
    body = {
        "id": f"/subscriptions/{op.subscription_id}/providers/{PROVIDER}/locations/{op.location}/operationStatus/{op.id}",
        "name": str(op.id),
        "status": op.status,
        "startTime": timestamp(op.started_at),
    }
    if op.ended_at:
        body["endTime"] = timestamp(op.ended_at)
    if op.status == AsyncOperation.Status.FAILED and op.error:
        body["error"] = dict(op.error)
    if op.status == AsyncOperation.Status.SUCCEEDED and op.result:
        body["properties"] = dict(op.result)
    return body
