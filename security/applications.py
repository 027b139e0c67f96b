"""App registrations, their service principals and client secrets: identity for machines.

An app registration (Entra ID's application) has a client id and a display name; its service principal is
the `Principal` that holds roles and signs in. Creating and deleting one, and adding and removing a client
secret, are guarded directory operations at the root (``Microsoft.Directory/applications/...``), in the
activity log like every change.

Who registers an app is its owner (``created_by``), as in Entra ID. Directory admins (``applications/create``
etc. at the root: Owner) manage every app; a principal holding only ``applications/createAsOwner`` (Entra's
Application Developer; Lab Trainee in lab mode) registers apps of its own and sees and manages those alone
(`visible_applications`; the RBAC guard lets an owner through, `security.guards`).

A client secret's value is generated here, returned once by `add_client_secret` and never stored: only a
keyed hash (HMAC-SHA256 under a key derived from the master key) and its first three characters (the hint
the portal lists). `verify_client_secret` compares in constant time. Expiry follows the one clock (lab time),
as grants do, so a trainee can watch a secret expire when the lab clock moves.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import string
import uuid
from dataclasses import dataclass

from django.core.exceptions import ValidationError

from security import clock, scopes
from security.audit import guarded
from security.crypto import derive_key
from security.models import AppRegistration, ClientSecret, Principal
from security.operations import (
    APPLICATION_CREATE,
    APPLICATION_CREATE_AS_OWNER,
    APPLICATION_CREDENTIALS_UPDATE,
    APPLICATION_DELETE,
    APPLICATION_READ,
)
from security.rbac import is_allowed

MAX_NAME = 120
MAX_DESCRIPTION = 100
# The portal's "Expires" choices, as Azure offers them (180 days is what it recommends).
EXPIRY_CHOICES = [("180", "Recommended: 180 days (6 months)"), ("90", "90 days (3 months)"),
                  ("365", "365 days (12 months)"), ("730", "730 days (24 months)"), ("custom", "Custom")]
DEFAULT_EXPIRY_DAYS = 180
MAX_EXPIRY_DAYS = 730
_ALPHABET = string.ascii_letters + string.digits + "~._-"


# --- secrets at rest -------------------------------------------------------------------------------------


def _key() -> bytes:
    return derive_key("strongroom client secrets v1")


def hash_secret(value: str) -> str:
    return hmac.new(_key(), value.encode(), hashlib.sha256).hexdigest()


def _new_value() -> str:
    """A value in Azure's shape: 40 characters, the 4th to 6th "8Q~" (Azure's version marker)."""
    head = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(3))
    return head + "8Q~" + "".join(secrets.choice(_ALPHABET) for _ in range(34))


def is_active(secret: ClientSecret, now: dt.datetime | None = None) -> bool:
    return secret.revoked_at is None and secret.expires_at > (now or clock.now())


# --- app registrations ---------------------------------------------------------------------------------------


def _clean_name(display_name: str) -> str:
    name = " ".join(str(display_name or "").split())
    if not name:
        raise ValidationError({"display_name": "Enter a name for the application."})
    if len(name) > MAX_NAME or any(ord(c) < 32 for c in name):
        raise ValidationError({"display_name": f"The name must be 1 to {MAX_NAME} printable characters."})
    return name


def creation_action(principal) -> str:
    """The action registering an app is checked as: a directory admin's ``applications/create``, else
    ``applications/createAsOwner`` (what Entra's Application Developer and the Lab Trainee hold)."""
    return APPLICATION_CREATE if is_allowed(principal, APPLICATION_CREATE, scopes.ROOT) else APPLICATION_CREATE_AS_OWNER


def reads_all(principal) -> bool:
    return is_allowed(principal, APPLICATION_READ, scopes.ROOT)


def may_list(principal) -> bool:
    """Whether App registrations opens for ``principal``: a reader of the directory, or one who may register apps
    as their owner (and then sees their own)."""
    return reads_all(principal) or is_allowed(principal, APPLICATION_CREATE_AS_OWNER, scopes.ROOT)


def visible_applications(principal):
    """The app registrations ``principal`` may see: every one for a reader of the directory, else those they
    own while they may register apps as owners, else none."""
    apps = AppRegistration.objects.select_related("principal")
    if reads_all(principal):
        return apps
    if isinstance(principal, Principal) and is_allowed(principal, APPLICATION_CREATE_AS_OWNER, scopes.ROOT):
        return apps.filter(created_by=principal)
    return apps.none()


def create_application(principal, display_name: str) -> AppRegistration:
    """Register an application and create its service principal (holding no role yet); ``principal`` owns it."""
    details = {"displayName": str(display_name or "")[:MAX_NAME]}
    with guarded(principal, creation_action(principal), scopes.ROOT, details=details) as op:
        name = _clean_name(display_name)
        service_principal = Principal.objects.create(kind=Principal.Kind.SERVICE_PRINCIPAL, display_name=name)
        app = AppRegistration.objects.create(
            display_name=name, principal=service_principal,
            created_by=principal if isinstance(principal, Principal) else None,
        )
        op.details.update({"appId": str(app.client_id), "objectId": str(app.pk),
                           "servicePrincipalId": str(service_principal.pk)})
    return app


def delete_application(principal, app: AppRegistration) -> None:
    """Delete the registration, its secrets, its service principal and that principal's role assignments:
    every token issued to it stops working at once (its principal no longer exists)."""
    details = {"displayName": app.display_name, "appId": str(app.client_id), "servicePrincipalId": str(app.principal_id)}
    with guarded(principal, APPLICATION_DELETE, app, details=details) as op:
        service_principal = Principal.objects.select_for_update().get(pk=app.principal_id)
        op.details["roleAssignmentsRemoved"] = service_principal.assignments.count()
        service_principal.assignments.all().delete()
        app.delete()
        service_principal.delete()


# --- client secrets ------------------------------------------------------------------------------------------


def expiry_for(choice: str, custom: dt.date | None = None, now: dt.datetime | None = None) -> dt.datetime:
    """The end of a secret added now for an "Expires" choice: a number of days, or a custom date (its end of
    day, UTC) in the future and at most MAX_EXPIRY_DAYS away."""
    now = now or clock.now()
    if choice == "custom":
        if custom is None:
            raise ValidationError({"end_date": "Choose the date the secret expires."})
        end = dt.datetime.combine(custom, dt.time(23, 59, 59), tzinfo=dt.timezone.utc)
        if end <= now:
            raise ValidationError({"end_date": "The end date must be in the future."})
        if end > now + dt.timedelta(days=MAX_EXPIRY_DAYS + 1):
            raise ValidationError({"end_date": f"A secret can last at most {MAX_EXPIRY_DAYS} days (24 months)."})
        return end
    try:
        days = int(choice)
    except (TypeError, ValueError):
        days = 0
    if days not in {int(c) for c, _ in EXPIRY_CHOICES if c != "custom"}:
        raise ValidationError({"expires": "Choose when the secret expires."})
    return now + dt.timedelta(days=days)


def add_client_secret(principal, app: AppRegistration, *, description: str = "",
                      expires_at: dt.datetime | None = None) -> tuple[ClientSecret, str]:
    """Add a client secret: the row and the value, which exists nowhere else from now on."""
    description = " ".join(str(description or "").split())
    details = {"displayName": app.display_name, "appId": str(app.client_id), "change": "Add client secret",
               "description": description[:MAX_DESCRIPTION]}
    with guarded(principal, APPLICATION_CREDENTIALS_UPDATE, app, details=details) as op:
        if len(description) > MAX_DESCRIPTION:
            raise ValidationError({"description": f"The description can be at most {MAX_DESCRIPTION} characters."})
        now = clock.now()
        expires_at = expires_at or now + dt.timedelta(days=DEFAULT_EXPIRY_DAYS)
        if expires_at <= now:
            raise ValidationError({"expires": "The secret must expire in the future."})
        value = _new_value()
        secret = ClientSecret.objects.create(
            application=app, description=description, hint=value[:3], value_hash=hash_secret(value),
            created_at=now, expires_at=expires_at, created_by=principal if isinstance(principal, Principal) else None,
        )
        op.details.update({"secretId": str(secret.pk), "hint": secret.hint, "expiresAt": expires_at.isoformat()})
    return secret, value


def remove_client_secret(principal, secret: ClientSecret) -> ClientSecret:
    """Revoke a client secret: it no longer signs in, and the tokens issued against it are refused."""
    app = secret.application
    details = {"displayName": app.display_name, "appId": str(app.client_id), "change": "Remove client secret",
               "secretId": str(secret.pk), "hint": secret.hint, "description": secret.description}
    with guarded(principal, APPLICATION_CREDENTIALS_UPDATE, app, details=details):
        locked = ClientSecret.objects.select_for_update().get(pk=secret.pk)
        if locked.revoked_at is not None:
            raise ValidationError("That client secret was removed already.")
        locked.revoked_at = clock.now()
        locked.save(update_fields=["revoked_at"])
    return locked


def active_secrets(app: AppRegistration):
    return app.secrets.filter(revoked_at__isnull=True).order_by("-created_at")


# --- signing in with a secret --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SecretProblem(Exception):
    """Why a client id and secret do not sign in, as Entra ID says it (its AADSTS code)."""

    code: str  # AADSTS700016, ...
    error: str  # OAuth's error: invalid_client, unauthorized_client
    message: str
    known_app: bool = False


def find_application(client_id: str) -> AppRegistration | None:
    try:
        wanted = uuid.UUID(str(client_id))
    except (TypeError, ValueError, AttributeError):
        return None
    return AppRegistration.objects.select_related("principal").filter(client_id=wanted).first()


def verify_client_secret(client_id: str, value: str, *, tenant: str) -> tuple[AppRegistration, ClientSecret]:
    """The application and the secret a client id and secret value name, or SecretProblem."""
    app = find_application(client_id)
    if app is None:
        raise SecretProblem(
            "AADSTS700016", "unauthorized_client",
            f"Application with identifier '{str(client_id)[:100]}' was not found in the directory '{tenant}'. "
            "This can happen if the application has not been installed by the administrator of the tenant or "
            "consented to by any user in the tenant. You may have sent your authentication request to the "
            "wrong tenant.")
    digest = hash_secret(str(value or ""))
    match = None
    for secret in app.secrets.filter(revoked_at__isnull=True):  # compare every one, in constant time each
        if hmac.compare_digest(secret.value_hash, digest):
            match = secret
    if match is None:
        raise SecretProblem(
            "AADSTS7000215", "invalid_client",
            f"Invalid client secret provided. Ensure the secret being sent in the request is the client secret "
            f"value, not the client secret ID, for a secret added to app '{app.client_id}'.", known_app=True)
    if not is_active(match):
        raise SecretProblem(
            "AADSTS7000222", "invalid_client",
            f"The provided client secret keys for app '{app.client_id}' are expired. Visit the Azure portal to "
            f"create new keys for your app: App registrations > {app.display_name} > Certificates & secrets.",
            known_app=True)
    if not app.principal.enabled:
        raise SecretProblem("AADSTS7000112", "unauthorized_client",
                            f"Application '{app.client_id}'({app.display_name}) is disabled.", known_app=True)
    return app, match


def token_problem(principal: Principal, claims: dict) -> str:
    """A token check (`portal.api.tokens.register_check`): a service principal's token stands only while the
    secret it was issued against is neither removed nor expired; "" when fine."""
    if principal.kind != Principal.Kind.SERVICE_PRINCIPAL:
        return ""
    secret = ClientSecret.objects.filter(pk=_uuid(claims.get("sid")), application__principal=principal).first()
    if secret is None:
        return "The access token was issued against a client secret that does not exist."
    if secret.revoked_at is not None:
        return "The access token was issued against a client secret that was removed; request a new token."
    if not is_active(secret):
        return "The access token was issued against a client secret that has expired."
    return ""


def _uuid(value):
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError):
        return None
