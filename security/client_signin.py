"""A service principal signing in with its client id and secret (the token endpoint's client credentials
grant), throttled as people's sign-ins are and recorded in the activity log.

django-axes counts the failures, as for the sign-in page (`security.signin`): the client id stands for the
username, so after STRONGROOM_SIGNIN_FAILURE_LIMIT wrong secrets from one address that client id is locked
for that address for STRONGROOM_SIGNIN_LOCKOUT_MINUTES, is listed in Security > Sign-in lockouts and can be
unlocked there by an Owner. Axes' handler is called directly (not through Django's ``user_login_failed``,
whose receiver here writes a person's sign-in entry): the entry is this module's, operation "Service
principal sign-in", with the client id, the address and Entra's error code, never the secret.
"""

from __future__ import annotations

from dataclasses import dataclass

from security import scopes, signin
from security.applications import SecretProblem, verify_client_secret
from security.audit import record
from security.models import ActivityLogEntry, AppRegistration, ClientSecret
from security.operations import SERVICE_PRINCIPAL_SIGN_IN

LOCKED_CODE = "AADSTS50053"


@dataclass(frozen=True)
class _Caller:
    """The caller of a failed attempt's entry: nobody signed in, named by the client id tried."""

    display_name: str
    pk = None


def _credentials(client_id: str) -> dict:
    return {"username": str(client_id or "")[: signin.MAX_USERNAME]}


def sign_in(request, client_id: str, secret: str, *, tenant: str) -> tuple[AppRegistration, ClientSecret]:
    """The application and secret that sign in, or SecretProblem (counted, logged). A client id locked at the
    request's address is refused before its secret is checked (AADSTS50053)."""
    from axes.handlers.proxy import AxesProxyHandler

    # Counted, logged and echoed as text the database can hold: no control characters (NUL is refused by
    # PostgreSQL in text and JSON). A real client id is a GUID, so nothing that was one is changed.
    client_id = "".join(c if c.isprintable() else "\ufffd" for c in str(client_id or ""))
    credentials = _credentials(client_id)
    if not AxesProxyHandler.is_allowed(request, credentials):
        request.axes_locked_out = False  # the endpoint answers in Entra's JSON, not with the lockout page
        problem = _locked_problem(request, client_id)
        _record_failure(request, client_id, problem, locked=True)
        raise problem
    try:
        app, secret_row = verify_client_secret(client_id, secret, tenant=tenant)
    except SecretProblem as problem:
        AxesProxyHandler.user_login_failed(sender=__name__, credentials=credentials, request=request)
        locked_now = bool(getattr(request, "axes_locked_out", False))
        request.axes_locked_out = False
        _record_failure(request, client_id, problem, locked=locked_now)
        raise
    _forget_failures(request, credentials)
    record(app.principal, SERVICE_PRINCIPAL_SIGN_IN, scopes.ROOT, status=ActivityLogEntry.Status.SUCCEEDED,
           details={"appId": str(app.client_id), "secretId": str(secret_row.pk), "hint": secret_row.hint,
                    "ipAddress": _address(request)})
    return app, secret_row


def _address(request) -> str:
    return getattr(request, "axes_ip_address", None) or signin.client_address(request) or ""


def _locked_problem(request, client_id: str) -> SecretProblem:
    lockout = signin.lockout_of(_credentials(client_id)["username"], _address(request))
    until = f" until {lockout.until:%Y-%m-%d %H:%M} UTC" if lockout else ""
    return SecretProblem(
        LOCKED_CODE, "invalid_client",
        f"The client '{str(client_id)[:100]}' is locked{until} after {signin.failure_limit()} failed sign-ins "
        f"from this address ({_address(request)}). Its secret was not checked. An Owner can unlock it in "
        f"Security > Sign-in lockouts.")


def _record_failure(request, client_id: str, problem: SecretProblem, *, locked: bool) -> None:
    from security.applications import find_application

    app = find_application(client_id) if problem.known_app or problem.code == LOCKED_CODE else None
    caller = app.principal if app is not None else _Caller(f"{str(client_id or '(no client id)')[:100]} (not signed in)")
    details = {"clientId": str(client_id or "")[: signin.MAX_USERNAME], "ipAddress": _address(request),
               "errorCode": problem.code, "knownApplication": app is not None}
    if locked:
        details["lockedOut"] = True
    level = ActivityLogEntry.Level.WARNING if problem.code == LOCKED_CODE else ActivityLogEntry.Level.ERROR
    sub_status = "TooManyRequests" if problem.code == LOCKED_CODE else "Unauthorized"
    message = f"{problem.code}: {problem.message}"
    if locked and problem.code != LOCKED_CODE:
        message += " This client id is now locked out at this address."
    record(caller, SERVICE_PRINCIPAL_SIGN_IN, scopes.ROOT, status=ActivityLogEntry.Status.FAILED,
           sub_status=sub_status, message=message, details=details, level=level)


def _forget_failures(request, credentials: dict) -> None:
    """A good secret forgets that client id's earlier failures from this address (AXES_RESET_ON_SUCCESS)."""
    from axes.models import AccessAttempt
    from django.conf import settings

    if getattr(settings, "AXES_RESET_ON_SUCCESS", False):
        AccessAttempt.objects.filter(username=credentials["username"], ip_address=_address(request)).delete()
