"""Strongroom's token endpoint, in Microsoft Entra ID's shape, for azure-identity's ``ClientSecretCredential``.

With ``authority="https://<strongroom>"`` and ``disable_instance_discovery=True``, MSAL asks for
``{authority}/{tenant}/v2.0/.well-known/openid-configuration``, then posts the client credentials grant to the
``token_endpoint`` that document names: ``{authority}/{tenant}/oauth2/v2.0/token``. Both are plain Django views
(form-encoded, no api-version, no bearer token, exempt from CSRF: a client posts its own credentials, there
is no session to ride on). Failures answer as Entra does: ``{"error", "error_description": "AADSTS...: ...",
"error_codes", "timestamp", "trace_id", "correlation_id", "error_uri"}``.

The checking, the throttling and the activity log are security's (`security.client_signin`); this module
only translates. Tokens are `portal.api.tokens`' (the service principal's id, the client id as ``appid``, the
secret's id as ``sid``, so that removing the secret revokes them: `security.applications.token_problem`).
"""

from __future__ import annotations

import datetime as dt
import uuid

from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods

from portal.api import tokens
from security.applications import SecretProblem
from security.client_signin import sign_in

# The resources a client credentials token is for: Azure Resource Manager under either of its names.
RESOURCES = ("https://management.azure.com", "https://management.core.windows.net")
_STATUS = {"invalid_client": 401}


def _tenant_ok(tenant: str) -> bool:
    return tenant.lower() == tokens.tenant_id().lower()


def _base(request, tenant: str) -> str:
    return f"{request.scheme}://{request.get_host()}/{tenant}"


def entra_error(error: str, code: str, message: str, status: int | None = None) -> JsonResponse:
    """Entra ID's error answer: ``code`` is "AADSTS<n>", ``message`` its words."""
    now = dt.datetime.now(dt.timezone.utc)
    trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
    number = int(code.removeprefix("AADSTS")) if code.removeprefix("AADSTS").isdigit() else 0
    description = (f"{code}: {message} Trace ID: {trace} Correlation ID: {correlation} "
                   f"Timestamp: {now:%Y-%m-%d %H:%M:%SZ}")
    body = {"error": error, "error_description": description, "error_codes": [number],
            "timestamp": f"{now:%Y-%m-%d %H:%M:%SZ}", "trace_id": trace, "correlation_id": correlation,
            "error_uri": f"https://login.microsoftonline.com/error?code={number}"}
    response = JsonResponse(body, status=status or _STATUS.get(error, 400))
    response["Cache-Control"] = "no-store"
    return response


def _tenant_not_found(tenant: str) -> JsonResponse:
    return entra_error("invalid_request", "AADSTS90002",
                       f"Tenant '{tenant[:100]}' not found. Check to make sure you have the correct tenant ID and are "
                       f"signing into the correct cloud. This Strongroom's tenant is {tokens.tenant_id()}.")


@never_cache
@require_GET
def openid_configuration(request, tenant: str):
    """The OpenID Connect discovery document MSAL reads the token endpoint from."""
    if not _tenant_ok(tenant):
        return _tenant_not_found(tenant)
    base = _base(request, tenant)
    return JsonResponse({
        "token_endpoint": f"{base}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "jwks_uri": f"{base}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": tokens.issuer(),
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": f"{base}/oidc/userinfo",
        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "oid", "tid", "appid"],
        "tenant_region_scope": None,
        "cloud_instance_name": request.get_host(),
        "grant_types_supported": ["client_credentials"],
    })


@never_cache
@require_GET
def keys(request, tenant: str):
    """No published keys: Strongroom's tokens are signed with a key only it holds, and clients treat them as
    opaque (as Azure's clients treat ARM's)."""
    if not _tenant_ok(tenant):
        return _tenant_not_found(tenant)
    return JsonResponse({"keys": []})


def _scope_problem(scope: str) -> JsonResponse | None:
    scopes = scope.split()
    if not scopes:
        return entra_error("invalid_request", "AADSTS900144", "The request body must contain the following parameter: 'scope'.")
    for item in scopes:
        if not item.endswith("/.default"):
            return entra_error("invalid_scope", "AADSTS1002012",
                               f"The provided value for scope {item[:200]} is not valid. Client credential flows must "
                               f"have a scope value with /.default suffixed to the resource identifier "
                               f"(application ID URI).")
        resource = item.removesuffix("/.default").rstrip("/")
        if resource.lower() not in RESOURCES:
            return entra_error("invalid_resource", "AADSTS500011",
                               f"The resource principal named {resource[:200]} was not found in the tenant named "
                               f"{tokens.tenant_id()}. Strongroom issues tokens for Azure Resource Manager only: "
                               f"use the scope https://management.azure.com/.default.")
    return None


def _basic_credentials(request) -> tuple[str, str]:
    """client_secret_basic: ``Authorization: Basic base64(client_id:client_secret)`` (URL-encoded parts)."""
    import base64
    from urllib.parse import unquote_plus

    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic" or not value:
        return "", ""
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return "", ""
    user, _, password = decoded.partition(":")
    return unquote_plus(user), unquote_plus(password)


@csrf_exempt
@sensitive_post_parameters("client_secret", "client_assertion")  # never in an error report
@never_cache
@require_http_methods(["POST"])
def token(request, tenant: str):
    """The client credentials grant: a bearer token for the service principal whose client id and secret these are."""
    if not _tenant_ok(tenant):
        return _tenant_not_found(tenant)
    form = request.POST
    basic_id, basic_secret = _basic_credentials(request)
    client_id = (form.get("client_id") or basic_id).strip()
    secret = form.get("client_secret") or basic_secret
    grant = form.get("grant_type", "")
    for name, value in (("grant_type", grant), ("client_id", client_id)):
        if not value:
            return entra_error("invalid_request", "AADSTS900144",
                               f"The request body must contain the following parameter: '{name}'.")
    if grant != "client_credentials":
        return entra_error("unsupported_grant_type", "AADSTS70003",
                           f"The app requested an unsupported grant type '{grant[:100]}'. Strongroom supports "
                           f"'client_credentials' only.")
    if not secret:
        return entra_error("invalid_client", "AADSTS7000218",
                           "The request body must contain the following parameter: 'client_assertion' or "
                           "'client_secret'.")
    problem = _scope_problem(form.get("scope", ""))
    if problem is not None:
        return problem
    try:
        app, secret_row = sign_in(request, client_id, secret, tenant=tenant)
    except SecretProblem as exc:
        return entra_error(exc.error, exc.code, exc.message)
    access_token, lifetime = tokens.issue(app.principal, sid=str(secret_row.pk), appid=str(app.client_id),
                                          idtyp="app")
    response = JsonResponse({"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime,
                             "access_token": access_token})
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    return response
