"""The URLs long-running operations point to: their status, and their result."""

import uuid

from django.http import HttpResponse, JsonResponse
from ninja import Router

from portal.api import lro
from portal.api.errors import ArmError
from portal.models import AsyncOperation

router = Router(tags=["Operations"])

LOCATION_PATH = "/subscriptions/{subscriptionId}/providers/Microsoft.DataProtection/locations/{location}"


def _operation(request, subscription_id: str, operation_id: str) -> AsyncOperation:
    op = (
        AsyncOperation.objects.filter(pk=_uuid(operation_id), subscription_id__iexact=subscription_id, principal=request.auth).first()
        if _uuid(operation_id)
        else None
    )
    if op is None:  # another principal's operation is as unknown as one that never was
        raise ArmError(404, "ResourceNotFound", f"The operation '{operation_id}' was not found.")
    return lro.refresh(op)


def _uuid(text: str):
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


@router.get(LOCATION_PATH + "/operationStatus/{operationId}", url_name="operation_status")
def operation_status(request, subscriptionId: str, location: str, operationId: str):
    op = _operation(request, subscriptionId, operationId)
    response = JsonResponse(lro.status_body(op))
    if not op.is_finished:  # without it the SDK falls back to polling every 30 s
        response["Retry-After"] = str(lro.RETRY_AFTER_SECONDS)
    return response


@router.get(LOCATION_PATH + "/operationResults/{operationId}", url_name="operation_result")
def operation_result(request, subscriptionId: str, location: str, operationId: str):
    op = _operation(request, subscriptionId, operationId)
    if not op.is_finished:
        response = HttpResponse(status=202)
        response["Location"] = lro.result_url(request, op)
        response["Retry-After"] = str(lro.RETRY_AFTER_SECONDS)
        return response
    if op.status == AsyncOperation.Status.FAILED:
        error = op.error or {"code": "OperationFailed", "message": "The operation failed."}
        raise ArmError(400, error.get("code", "OperationFailed"), error.get("message", ""))
    # Never 204: the SDK's operation_result.get declares 200 or 202 only. A finished operation that ran no
    # job (stopProtection, a delete) is an OperationJobExtendedInfo naming none.
    return JsonResponse(op.result or {"objectType": "OperationJobExtendedInfo"})
