"""The one NinjaAPI that serves every ARM route, with ARM's errors for everything that can go wrong.

``build_api()`` is called once by the root urls (the composition root): it adds the plumbing's own
routes and each app's router, named by dotted string (``wiring.ROUTERS``), so no floor imports up.
"""

from __future__ import annotations

import logging
import re

from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db import DataError
from django.http import Http404
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, Throttled
from ninja.errors import ValidationError as RequestValidationError

from portal.api import API_VERSION, AUTHORIZATION_API_VERSIONS, SUPPORTED_API_VERSIONS
from portal.api.auth import BearerToken
from portal.api.errors import ArmError, from_guard_denied, from_validation_error
from security.guards import GuardDenied

log = logging.getLogger(__name__)

# ARM routes a path by its last provider (an extension resource such as a PIM request on a Resource Guard
# is Microsoft.Authorization's), and each provider names its own api-versions: (supported, default).
PROVIDER_API_VERSIONS = {
    "microsoft.dataprotection": (SUPPORTED_API_VERSIONS, API_VERSION),
    "microsoft.authorization": (AUTHORIZATION_API_VERSIONS, AUTHORIZATION_API_VERSIONS[0]),
}
_PROVIDER = re.compile(r"/providers/([^/]+)/", re.IGNORECASE)


def provider_of(path: str) -> str:
    """The namespace of the last ``/providers/{namespace}/`` in ``path``, lower case ("" if none)."""
    found = _PROVIDER.findall(path)
    return found[-1].lower() if found else ""


def is_arm_path(path: str) -> bool:
    return provider_of(path) in PROVIDER_API_VERSIONS


def check_api_version(request) -> None:
    """ARM's answer to a missing or unsupported ``api-version``, before anything else is looked at."""
    if not is_arm_path(request.path):
        return
    versions, _default = PROVIDER_API_VERSIONS[provider_of(request.path)]
    version = request.GET.get("api-version")
    supported = ", ".join(f"'{v}'" for v in versions)
    if not version:
        raise ArmError(
            400,
            "MissingApiVersionParameter",
            f"The api-version query parameter (?api-version=) is required for all requests. The supported api-versions are {supported}.",
            target="api-version",
        )
    if version not in versions:
        raise ArmError(
            400,
            "InvalidApiVersionParameter",
            f"The api-version '{version}' is invalid. The supported versions are {supported}.",
            target="api-version",
        )


class VersionedBearer(BearerToken):
    def __call__(self, request):
        check_api_version(request)
        return super().__call__(request)


LRO_RESPONSES = {
    "201": "Created; poll the Azure-AsyncOperation URL",
    "202": "Accepted; poll the Azure-AsyncOperation URL, then the Location URL",
    "204": "No content",
}
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "target": {"type": "string"},
                "details": {"type": "array", "items": {"type": "object"}},
            },
        }
    },
}


class ArmApi(NinjaAPI):
    def _get_urls(self):
        # ninja adds an "api-root" pattern at the prefix; mounted at "" it would take the portal's Home page.
        return [url for url in super()._get_urls() if getattr(url, "name", "") != "api-root"]

    def get_openapi_schema(self, *, path_prefix=None, path_params=None):
        schema = super().get_openapi_schema(path_prefix="" if path_prefix is None else path_prefix, path_params=path_params)
        for path, operations in schema.get("paths", {}).items():
            if not is_arm_path(path):
                continue
            versions, default = PROVIDER_API_VERSIONS[provider_of(path)]
            version_param = {
                "in": "query",
                "name": "api-version",
                "required": True,
                "schema": {"type": "string", "enum": list(versions), "default": default},
            }
            for operation in operations.values():
                params = operation.setdefault("parameters", [])
                if not any(p.get("name") == "api-version" for p in params):
                    params.append(dict(version_param))
                responses = operation.setdefault("responses", {})
                # ARM answers any request with its error envelope, and long-running ones with 201/202.
                for status, description in LRO_RESPONSES.items():
                    responses.setdefault(status, {"description": description})
                responses["default"] = {
                    "description": "ARM's error envelope",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ArmErrorResponse"}}},
                }
        schema.setdefault("components", {}).setdefault("schemas", {})["ArmErrorResponse"] = ERROR_SCHEMA
        return schema


def _arm_error(request, exc: ArmError):
    return exc.response()


def _guard_denied(request, exc: GuardDenied):
    return from_guard_denied(exc).response()


def _validation_error(request, exc: ValidationError):
    return from_validation_error(exc).response()


def _request_validation_error(request, exc: RequestValidationError):
    details = []
    for error in exc.errors:
        location = [str(part) for part in error.get("loc", ()) if part not in ("body", "payload", "query", "path")]
        details.append({"code": "InvalidRequestContent", "message": error.get("msg", "Invalid value."), "target": ".".join(location) or None})
    first = details[0] if details else {"message": "The request content is not valid.", "target": None}
    message = f"The request content was invalid and could not be deserialized: {first['message']}"
    if first["target"]:
        message += f" (at '{first['target']}')"
    return ArmError(400, "InvalidRequestContent", message, target=first["target"], details=details[1:]).response()


def _not_found(request, exc):
    message = str(exc) if isinstance(exc, Http404) and str(exc) else "The requested resource was not found."
    return ArmError(404, "ResourceNotFound", message).response()


def _authentication(request, exc):
    return ArmError(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.").response()


def _throttled(request, exc: Throttled):
    return ArmError(429, "TooManyRequests", "Too many requests; retry after the interval in Retry-After.").response()


def _http_error(request, exc: HttpError):
    code = {400: "BadRequest", 404: "ResourceNotFound", 405: "MethodNotAllowed", 415: "UnsupportedMediaType"}.get(
        exc.status_code, "BadRequest"
    )
    return ArmError(exc.status_code, code, str(exc.message)).response()


def _data_error(request, exc: DataError):
    # The database refused a value the request carried (a NUL character in a name, a number out of range):
    # the request's fault, and its transaction has rolled back.
    log.warning("API request refused by the database: %s %s: %s", request.method, request.path, exc)
    return ArmError(400, "InvalidRequestContent", "The request holds a value that cannot be stored or searched "
                    "for (a NUL character, or a number out of range).").response()


def _unexpected(request, exc: Exception):
    log.exception("API request failed: %s %s", request.method, request.path)
    return ArmError(500, "InternalServerError", "The server had an unexpected error; the request changed nothing that was not committed. Try again, and report it if it persists.").response()


def not_found_handler(request, exception):
    """The site's 404: ARM's error envelope for a path addressed to an API provider (a route that does not
    exist, or a name no route can match), the portal's page otherwise."""
    if is_arm_path(request.path):
        provider = provider_of(request.path)
        return ArmError(
            404,
            "InvalidResourceType" if request.GET.get("api-version") else "NotFound",
            f"No route of the '{provider}' provider answers {request.method} {request.path!r}; check the path "
            "against the SDK's operation (names may not contain '/' or control characters).",
        ).response()
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def build_api() -> ArmApi:
    from portal.api import wiring

    api = ArmApi(
        title="Strongroom Data Protection API",
        version=API_VERSION,
        description="Microsoft.DataProtection, as the Azure SDK for Python (azure-mgmt-dataprotection) speaks it.",
        urls_namespace="arm",
        auth=VersionedBearer(),
        docs_url=None,
        openapi_url="/providers/Strongroom/openapi.json",
    )
    api.add_exception_handler(ArmError, _arm_error)
    api.add_exception_handler(GuardDenied, _guard_denied)
    api.add_exception_handler(ValidationError, _validation_error)
    api.add_exception_handler(RequestValidationError, _request_validation_error)
    api.add_exception_handler(ObjectDoesNotExist, _not_found)
    api.add_exception_handler(Http404, _not_found)
    api.add_exception_handler(AuthenticationError, _authentication)
    api.add_exception_handler(Throttled, _throttled)
    api.add_exception_handler(HttpError, _http_error)
    api.add_exception_handler(DataError, _data_error)
    api.add_exception_handler(Exception, _unexpected)
    for prefix, dotted in wiring.ROUTERS:
        api.add_router(prefix, dotted)
    return api
