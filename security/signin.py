"""Sign-in throttling: who may try again, what the activity log says of it, and an Owner's unlock.

django-axes counts failed sign-ins per username *and* client address (the AXES_* settings, from
STRONGROOM_SIGNIN_*): after STRONGROOM_SIGNIN_FAILURE_LIMIT failures that username is locked for that address
(another address still gets in) for STRONGROOM_SIGNIN_LOCKOUT_MINUTES, on the portal's sign-in and the admin's
alike. This module gives axes

* `client_address`: the client's address; X-Forwarded-For counts only behind STRONGROOM_TRUSTED_PROXIES proxies;
* `SignInThrottleBackend`: axes' backend, which refuses a locked-out username and address before any password
  is checked;

and the portal

* `current_lockouts`, `lockout_of`: the lockouts in force (username, address, failures, last attempt, until);
* `unlock_sign_in`: an Owner's unlock (`Microsoft.Authorization/signInLockouts/delete` at the root, guarded);
* `record_password_change`: a person's own password change, in the activity log;
* the receivers `connect` hooks up: every failed and every locked-out sign-in is an activity-log entry (the
  username tried and the address, never the password), and a burst of failures raises one alert.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import ValidationError
from django.db.models import Max, Sum
from django.utils import timezone

from security import clock, scopes
from security.audit import guarded, record
from security.models import ActivityLogEntry, Alert
from security.operations import PASSWORD_CHANGE, SIGN_IN, SIGN_IN_LOCKOUT_DELETE
from security.services import raise_alert

BURST_ALERT = "Repeated sign-in failures"  # Strongroom's own alert, beside the reference's
MAX_USERNAME = 150  # Django's username length: longer text typed into the form is cut in the log


# --- the client's address ------------------------------------------------------------------------------


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def lockout_address(text: str | None) -> str | None:
    """The address a lockout counts against: an IPv4 address as it is (also when written IPv4-mapped,
    ::ffff:a.b.c.d), and an IPv6 address as its /64 network's first address, since one client holds a whole
    /64 and could otherwise try 5 passwords from each of its addresses."""
    if not text:
        return text
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return text
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False).network_address)
    return str(address)


def client_address(request) -> str | None:
    """The address a sign-in comes from (axes' AXES_CLIENT_IP_CALLABLE), as a lockout counts it
    (`lockout_address`: an IPv6 client by its /64).

    Without trusted proxies (STRONGROOM_TRUSTED_PROXIES = 0) it is the connection's own address, and an
    X-Forwarded-For header is ignored: anyone can send one. Behind N proxies, each appending the address it
    saw to X-Forwarded-For, the client is the address the outermost proxy saw: N hops from the right,
    counting the connection's own address; what a client wrote further left is never read.
    """
    remote = (request.META.get("REMOTE_ADDR") or "").strip() or None
    trusted = max(0, int(getattr(settings, "STRONGROOM_TRUSTED_PROXIES", 0) or 0))
    if not trusted:
        return lockout_address(remote)
    forwarded = [hop.strip() for hop in (request.META.get("HTTP_X_FORWARDED_FOR") or "").split(",") if hop.strip()]
    hops = forwarded + ([remote] if remote else [])
    if not hops:
        return lockout_address(remote)
    candidate = hops[-(trusted + 1)] if len(hops) > trusted else hops[0]
    return lockout_address(candidate if _is_address(candidate) else remote)


class SignInThrottleBackend(AxesStandaloneBackend):
    """axes' check before any password: a locked-out username and address is refused (PermissionDenied ends
    Django's `authenticate`, which then reports the failure). A check made by the server itself, with no
    request (a class's sign-in sheet tested with `authenticate(username=..., password=...)`), has no
    client to throttle and is left to the next backend."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


# --- lockouts ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lockout:
    username: str
    ip_address: str
    failures: int
    last_attempt: dt.datetime
    until: dt.datetime


def failure_limit() -> int:
    return int(settings.AXES_FAILURE_LIMIT)


def lockout_minutes() -> int:
    return int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)


def _attempts(now: dt.datetime | None = None):
    """axes' failed attempts still counting (as axes counts them: the last failure within the cool-off), one
    row per username and address with their failures added up."""
    from axes.models import AccessAttempt

    now = now or timezone.now()
    return (AccessAttempt.objects.filter(attempt_time__gte=now - settings.AXES_COOLOFF_TIME)
            .values("username", "ip_address")
            .annotate(failures=Sum("failures_since_start"), last_attempt=Max("attempt_time"))
            .filter(failures__gte=failure_limit()))


def _lockout(row) -> Lockout:
    return Lockout(row["username"] or "", row["ip_address"] or "", row["failures"], row["last_attempt"],
                   row["last_attempt"] + settings.AXES_COOLOFF_TIME)


def current_lockouts(now: dt.datetime | None = None) -> list[Lockout]:
    """Every username and address locked out now, the latest first."""
    return [_lockout(row) for row in _attempts(now).order_by("-last_attempt", "username")]


def lockout_of(username: str | None, ip_address: str | None, now: dt.datetime | None = None) -> Lockout | None:
    """The lockout of ``username`` at ``ip_address``, or None when they may try to sign in."""
    row = _attempts(now).filter(username=username, ip_address=ip_address).order_by("-last_attempt").first()
    return _lockout(row) if row else None


def unlock_sign_in(principal, *, username: str, ip_address: str) -> Lockout:
    """Unlock ``username`` at ``ip_address`` (forget its failed attempts there): an Owner's operation at the root,
    `Microsoft.Authorization/signInLockouts/delete`, in the activity log. Returns the lockout it ended."""
    from axes.models import AccessAttempt

    details = {"username": username[:MAX_USERNAME], "ipAddress": ip_address}
    with guarded(principal, SIGN_IN_LOCKOUT_DELETE, scopes.ROOT, details=details) as op:
        lockout = lockout_of(username, ip_address)
        if lockout is None:
            raise ValidationError(
                f"'{username}' is not locked out at the address {ip_address}: the lockout has ended by itself or "
                f"was unlocked already. Nothing was changed."
            )
        AccessAttempt.objects.filter(username=username, ip_address=ip_address).delete()
        op.details.update({"failures": lockout.failures, "lockedUntil": lockout.until.isoformat()})
    return lockout


# --- the activity log ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _NotSignedIn:
    """The caller of a failed sign-in's entry: the username typed (nobody is signed in; no principal)."""

    display_name: str
    pk = None


def _when(moment: dt.datetime) -> str:
    return f"{moment.astimezone(dt.timezone.utc):%Y-%m-%d %H:%M} UTC"


def _sign_in_failed(sender, credentials=None, request=None, **kwargs) -> None:
    """Django's ``user_login_failed``: one activity-log entry per failed sign-in, then the burst check.

    Connected after axes' own receiver (see `connect`), so the request already says what axes decided:
    refused because locked out (``axes_locked_out`` with no failure counted), the failure that locked it
    (``axes_locked_out`` and the count), or a failure below the limit."""
    if request is None:  # the server checking a password itself (no client): nothing to record
        return
    username = str((credentials or {}).get("username") or "")[:MAX_USERNAME]
    address = getattr(request, "axes_ip_address", None) or client_address(request)
    locked = bool(getattr(request, "axes_locked_out", False))
    counted = getattr(request, "axes_failures_since_start", None)
    refused = locked and counted is None
    lockout = lockout_of(username, address) if locked else None
    details = {"username": username, "ipAddress": address or "", "path": getattr(request, "path", ""),
               "knownUser": get_user_model().objects.filter(**{get_user_model().USERNAME_FIELD: username}).exists()}
    until = f" until {_when(lockout.until)}" if lockout else ""
    who = f"'{username}'" if username else "a sign-in with no username"
    if refused:
        details["lockedOut"] = True
        message = (f"Sign-in refused: {who} is locked out at the address {address}{until} after "
                   f"{lockout.failures if lockout else failure_limit()} failed sign-ins. The password was not checked.")
        sub_status, level = "TooManyRequests", ActivityLogEntry.Level.WARNING
    else:
        details["failures"] = counted
        message = f"Sign-in failed for {who} from {address}: wrong username or password"
        if locked:
            details["lockedOut"] = True
            message += f" ({counted} failures): {who} is now locked out at this address{until}."
        elif counted is not None:
            message += f" (failure {counted} of {failure_limit()} before a lockout)."
        else:
            message += "."
        sub_status, level = "Unauthorized", ActivityLogEntry.Level.ERROR
    user = getattr(request, "user", None)
    actor = (getattr(request, "real_principal", None) if user is not None and user.is_authenticated else None)
    record(actor or _NotSignedIn(f"{username or '(no username)'} (not signed in)"), SIGN_IN, scopes.ROOT,
           status=ActivityLogEntry.Status.FAILED, sub_status=sub_status, message=message, details=details,
           level=level)
    _check_burst(username, address)


def record_password_change(principal) -> None:
    """A person changed their own password (no role is needed for it: it is logged, not authorized)."""
    record(principal, PASSWORD_CHANGE, scopes.ROOT, status=ActivityLogEntry.Status.SUCCEEDED)


# --- a burst of failures -------------------------------------------------------------------------------


def _check_burst(username: str, address: str | None) -> None:
    """Raise "Repeated sign-in failures" when STRONGROOM_SIGNIN_BURST_FAILURES failed sign-ins fell within
    STRONGROOM_SIGNIN_BURST_MINUTES: of this username (someone guessing one account's password), or else
    across the installation (someone trying many usernames). One alert per burst: while an open alert of the
    same burst was updated within the window, each further failure updates it (count, last address)
    instead of raising another; a burst that stopped for a whole window, or an alert closed, starts anew."""
    threshold = settings.STRONGROOM_SIGNIN_BURST_FAILURES
    window = dt.timedelta(minutes=settings.STRONGROOM_SIGNIN_BURST_MINUTES)
    if threshold <= 0:
        return
    now = clock.now()
    recent = ActivityLogEntry.objects.filter(operation=SIGN_IN, status=ActivityLogEntry.Status.FAILED,
                                             timestamp__gte=now - window)
    mine = recent.filter(details__username=username).count() if username else 0
    if mine >= threshold:
        key, count, of = f"username:{username}", mine, f"for the username '{username}'"
    else:
        total = recent.count()
        if total < threshold:
            return
        key, count, of = "installation", total, "across the installation"
    open_alert = (Alert.objects.filter(name=BURST_ALERT, details__burst=key, updated_at__gte=now - window)
                  .exclude(state=Alert.State.CLOSED).first())
    if open_alert is not None:
        open_alert.details.update({"failures": max(count, open_alert.details.get("failures", 0)),
                                   "lastAddress": address or "", "lastFailureAt": now.isoformat()})
        open_alert.updated_at = now
        open_alert.save(update_fields=["details", "updated_at"])
        return
    minutes = settings.STRONGROOM_SIGNIN_BURST_MINUTES
    raise_alert(
        name=BURST_ALERT, category=Alert.Category.SECURITY, severity=Alert.Severity.SEV1, resource_id=scopes.ROOT,
        description=(
            f"{count} failed sign-ins {of} within {minutes} minutes (the latest from {address or 'an unknown address'}): "
            f"someone may be guessing passwords. The activity log lists each (operation Sign in, status Failed) "
            f"with the username tried and the address; Security > Sign-in lockouts lists who is locked out. "
            f"Further failures of this burst update this alert instead of raising another."
        ),
        details={"burst": key, "username": username if key != "installation" else "", "failures": count,
                 "windowMinutes": minutes, "lastAddress": address or "", "lastFailureAt": now.isoformat()},
    )


def connect() -> None:
    """Connect the failed-sign-in receiver after axes' own (importing axes' receivers first fixes the order)."""
    import axes.signals  # noqa: F401  (connects axes' receivers: they must run before ours)

    user_login_failed.connect(_sign_in_failed, dispatch_uid="security.signin.sign_in_failed")
