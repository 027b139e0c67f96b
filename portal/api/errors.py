"""ARM's error envelope, and what the services' exceptions become in it.

``{"error": {"code", "message", "target", "details"}}`` is what the Azure SDK parses into
``HttpResponseError``; a guard's refusal keeps the guard's code and words, so a script sees what the
page would have said.
"""

from __future__ import annotations

import contextlib

from django.core.exceptions import ValidationError
from django.http import JsonResponse

from security.guards import GuardDenied

# Guards whose refusal is a conflict with the resource's state rather than a bad request.
CONFLICT_GUARDS = {"Vault deletion rules", "Subnet in use", "Soft delete", "Immutability"}


class ArmError(Exception):
    def __init__(self, status: int, code: str, message: str, target: str | None = None, details: list | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.target = target
        self.details = details or []
        self.headers: dict[str, str] = {}

    def body(self) -> dict:
        error = {"code": self.code, "message": self.message}
        if self.target:
            error["target"] = self.target
        if self.details:
            error["details"] = self.details
        return {"error": error}

    def response(self) -> JsonResponse:
        response = JsonResponse(self.body(), status=self.status)
        for name, value in self.headers.items():
            response[name] = value
        response["x-ms-failure-cause"] = "gateway" if self.status in (401, 403) else "service"
        return response


def not_found(kind: str, name: str, resource_group: str | None = None) -> ArmError:
    where = f" under resource group '{resource_group}'" if resource_group else ""
    return ArmError(404, "ResourceNotFound", f"The Resource '{kind}/{name}'{where} was not found.")


def from_guard_denied(exc: GuardDenied) -> ArmError:
    refusal = exc.decision.refusal
    if refusal is None:  # pragma: no cover - a GuardDenied always carries its refusal
        return ArmError(403, "AuthorizationFailed", str(exc))
    if refusal.guard == "RBAC" or refusal.code == "AuthorizationFailed":  # ARM's 403, whichever guard said it
        return ArmError(403, refusal.code, refusal.reason)
    message = refusal.reason if not refusal.remedy else f"{refusal.reason} {refusal.remedy}"
    status = 409 if refusal.guard in CONFLICT_GUARDS else 400
    return ArmError(status, refusal.code or "OperationNotAllowed", message, target=exc.decision.operation)


def from_validation_error(exc: ValidationError) -> ArmError:
    """A service's ValidationError: the first message, with the field it names as the target."""
    if hasattr(exc, "error_dict"):
        details = []
        for field, errors in exc.error_dict.items():
            for error in errors:
                details.append(
                    {"code": _code(error), "message": " ".join(error.messages), "target": None if field == "__all__" else field}
                )
        first = details[0]
        return ArmError(400, first["code"], first["message"], target=first["target"], details=details[1:])
    messages = exc.messages
    return ArmError(400, _code(exc), " ".join(messages) or "The request is not valid.")


def _code(error: ValidationError) -> str:
    code = getattr(error, "code", None) or ""
    if code.isalnum() and code[:1].isupper():  # an Azure-style code a service chose ("UserErrorX")
        return code
    return "InvalidParameter"


@contextlib.contextmanager
def renamed_fields(mapping: dict):
    """Inside the block, a service's ValidationError names its fields as the request's JSON does
    (``{"retention_days": "properties.securitySettings.softDeleteSettings.retentionDurationInDays"}``),
    so the 400's target is a path the client sent."""
    try:
        yield
    except ValidationError as exc:
        if not hasattr(exc, "error_dict"):
            raise
        raise ValidationError({mapping.get(f, f): errors for f, errors in exc.error_dict.items()}) from None
