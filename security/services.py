"""Security's state changes: role assignments, managed identities, the lab clock, alerts.

Each write goes through `guarded` (evaluate, one transaction, the activity log).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from security import clock, scopes
from security.audit import guarded, record
from security.guards import GuardDenied, evaluate
from security.models import ActivityLogEntry, Alert, LabClock, Principal, RoleAssignment, RoleDefinition
from security.operations import (  # callers read these names here too
    ALERT_CHANGE_STATE,
    LAB_CLOCK_WRITE,
    ROLE_ASSIGNMENT_DELETE,
    ROLE_ASSIGNMENT_READ,
    ROLE_ASSIGNMENT_WRITE,
)
from security.rbac import active_assignments, authorize, role_allows
from security.roles import OWNER

logger = logging.getLogger(__name__)

SYSTEM_PRINCIPAL_NAME = "Strongroom system"


# --- principals -----------------------------------------------------------------------------


def principal_for_user(user) -> Principal:
    principal = getattr(user, "principal", None)
    if principal is None:
        name = user.get_full_name() or user.get_username()
        principal, _ = Principal.objects.get_or_create(
            user=user, defaults={"kind": Principal.Kind.USER, "display_name": name}
        )
    return principal


def system_principal() -> Principal:
    principal, _ = Principal.objects.get_or_create(
        kind=Principal.Kind.SYSTEM,
        display_name=SYSTEM_PRINCIPAL_NAME,
        defaults={"enabled": True},
    )
    return principal


def create_managed_identity(resource_id: str, display_name: str) -> Principal:
    """A system-assigned identity for a resource. Called inside the resource's own guarded write."""
    return Principal.objects.create(
        kind=Principal.Kind.MANAGED_IDENTITY, display_name=display_name, resource_id=resource_id
    )


def set_managed_identity_enabled(identity: Principal, enabled: bool) -> None:
    """Turn a resource's identity on or off. Called inside the resource's own guarded write."""
    Principal.objects.filter(pk=identity.pk).update(enabled=enabled)
    identity.enabled = enabled


def delete_managed_identity(identity: Principal) -> None:
    """Remove an identity with its assignments. Called inside the resource's own guarded delete."""
    identity.assignments.all().delete()
    identity.delete()


# --- role assignments ------------------------------------------------------------------------


def assign_role(
    principal,
    *,
    assignee: Principal,
    role: RoleDefinition,
    scope: str,
    starts_at: dt.datetime | None = None,
    ends_at: dt.datetime | None = None,
    description: str = "",
) -> RoleAssignment:
    scope = scopes.normalize(scope)
    details = {"role": role.name, "assignee": assignee.display_name, "assigneeId": str(assignee.id)}
    if ends_at:
        details["endsAt"] = ends_at.isoformat()
    with guarded(principal, ROLE_ASSIGNMENT_WRITE, scope, details=details) as op:
        now = clock.now()
        if ends_at is not None and ends_at <= (starts_at or now):
            raise ValidationError({"ends_at": "The end must be after the start (and in the future)."})
        existing = (
            RoleAssignment.objects.active_at(now)
            .filter(principal=assignee, role=role, scope__iexact=scope)
            .exists()
        )
        if existing:
            raise ValidationError(
                f"RoleAssignmentExists: {assignee.display_name} already holds {role.name} at this scope."
            )
        assignment = RoleAssignment.objects.create(
            principal=assignee,
            role=role,
            scope=scope,
            starts_at=starts_at,
            ends_at=ends_at,
            description=description,
            created_by=principal if isinstance(principal, Principal) else None,
        )
        op.details["assignmentId"] = str(assignment.id)
    return assignment


def remove_role_assignment(principal, assignment: RoleAssignment) -> None:
    details = {
        "role": assignment.role.name,
        "assignee": assignment.principal.display_name,
        "assignmentId": str(assignment.id),
    }
    with guarded(principal, ROLE_ASSIGNMENT_DELETE, assignment.scope, details=details):
        RoleAssignment.objects.filter(pk=assignment.pk).delete()


def remove_assignments_of_deleted_scope(principal, scope: str, *, cause: str) -> int:
    """Remove every role assignment at ``scope`` and below it, because that resource is being deleted.

    Called inside the deleting service's own guarded block (same transaction): the delete action is
    what authorizes it, as in Azure, where a resource's role assignments go with the resource. Without
    this, a new resource of the same name would inherit them. Each removal is logged. Returns how many.
    """
    scope = scopes.normalize(scope)
    if scope == scopes.ROOT:
        raise ValueError("The root scope is never deleted.")
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("Remove a deleted scope's role assignments inside the delete's own transaction.")
    doomed = list(
        RoleAssignment.objects.select_for_update()
        .filter(Q(scope__iexact=scope) | Q(scope__istartswith=scope + "/"))
        .select_related("principal", "role")
    )
    for assignment in doomed:
        record(
            principal,
            ROLE_ASSIGNMENT_DELETE,
            assignment.scope,
            status=ActivityLogEntry.Status.SUCCEEDED,
            details={
                "role": assignment.role.name,
                "assignee": assignment.principal.display_name,
                "assignmentId": str(assignment.id),
                "cause": cause,
                "deletedScope": scope,
            },
        )
    RoleAssignment.objects.filter(pk__in=[a.pk for a in doomed]).delete()
    return len(doomed)


@dataclass(frozen=True)
class AccessEntry:
    assignment: RoleAssignment
    inherited: bool  # assigned at a scope above the one asked about


def assignments_at(scope: str, *, include_below: bool = False):
    """Assignments that apply at ``scope``: there and above (inherited), optionally below too."""
    scope = scopes.normalize(scope)
    above = [s.lower() for s in scopes.ancestors(scope)]
    rows = RoleAssignment.objects.active_at(clock.now()).select_related("principal", "role")
    result = []
    for assignment in rows:
        at = scopes.normalize(assignment.scope).lower()
        if at in above:
            result.append(AccessEntry(assignment, inherited=at != scope.lower()))
        elif include_below and scopes.covers(scope, assignment.scope):
            result.append(AccessEntry(assignment, inherited=False))
    return result


@dataclass(frozen=True)
class CheckAccessResult:
    subject: Principal
    scope: str
    entries: list[AccessEntry]

    def can(self, action: str) -> bool:
        return authorize(self.subject, action, self.scope).allowed


def check_access(principal, subject: Principal, scope: str) -> CheckAccessResult:
    """What ``subject`` holds at ``scope``. Reading assignments needs roleAssignments/read there."""
    decision = evaluate(principal, ROLE_ASSIGNMENT_READ, scope)
    if not decision.allowed:
        raise GuardDenied(decision)
    entries = [e for e in assignments_at(scope) if e.assignment.principal_id == subject.pk]
    return CheckAccessResult(subject, scopes.normalize(scope), entries)


def effective_actions_for(subject: Principal, scope: str, actions: list[str]) -> dict[str, bool]:
    scope_set = {s.lower() for s in scopes.ancestors(scope)}
    held = [a.role for a in active_assignments(subject) if scopes.normalize(a.scope).lower() in scope_set]
    return {action: any(role_allows(r, action) for r in held) for action in actions}


# --- lab clock -------------------------------------------------------------------------------


_DATA_ACTION = {"data_action": True}


def can_move_lab_clock(principal) -> bool:
    """Whether ``principal`` may move the lab clock: lab mode, and the lab-clock data action at the root
    (role "Lab Instructor"; Owner's "*" and superuser status do not include it)."""
    return bool(settings.STRONGROOM_LAB_MODE and principal is not None
                and authorize(principal, LAB_CLOCK_WRITE, scopes.ROOT, data_action=True).allowed)


def move_lab_clock(principal, *, forward: dt.timedelta | None = None, reset: bool = False) -> dt.datetime:
    """Move the lab clock forward, or back to real time. Lab mode only; only a principal holding the data
    action ``LAB_CLOCK_WRITE`` at the root (a Lab Instructor, such as the lab's trainer) may move it.

    Before the clock moves back, every time-bound decision due at the lab time being left is recorded
    (`clock.settle`): grants that ended stay ended, purges and expiries that fell due still happen.
    """
    details = {"reset": reset}
    if forward is not None:
        details["forwardSeconds"] = int(forward.total_seconds())
    with guarded(principal, LAB_CLOCK_WRITE, scopes.ROOT, change=_DATA_ACTION, details=details) as op:
        if not settings.STRONGROOM_LAB_MODE:
            raise ValidationError("The lab clock can be moved only in lab mode.")
        row, _ = LabClock.objects.select_for_update().get_or_create(pk=1)
        if reset:
            if row.offset_seconds:
                clock.forget_cached_offset()
                leaving = timezone.now() + dt.timedelta(seconds=row.offset_seconds)
                op.details["settledAt"] = leaving.isoformat()
                op.details["settled"] = {k: v for k, v in clock.settle(leaving).items() if v}
            row.offset_seconds = 0
        else:
            if forward is None or forward.total_seconds() <= 0:
                raise ValidationError({"forward": "Move the clock forward by a positive amount."})
            if forward > dt.timedelta(days=3650):
                raise ValidationError({"forward": "Move the clock by at most ten years at once."})
            row.offset_seconds += int(forward.total_seconds())
        row.save()
    clock.forget_cached_offset()
    return clock.now()


# --- alerts ----------------------------------------------------------------------------------


def raise_alert(
    *,
    name: str,
    category: str,
    severity: str,
    resource_id: str,
    description: str,
    details: dict | None = None,
) -> Alert:
    """Fire an alert. Called by the services whose operation causes it (never by a view)."""
    now = clock.now()
    alert = Alert.objects.create(
        name=name,
        category=category,
        severity=severity,
        affected_resource_id=resource_id,
        description=description,
        details=details or {},
        raised_at=now,
        updated_at=now,
    )
    transaction.on_commit(lambda: _email_alert(alert.pk))
    return alert


def _email_alert(alert_id) -> None:
    recipients = settings.STRONGROOM_ALERT_EMAILS
    if not recipients:
        return
    alert = Alert.objects.get(pk=alert_id)
    try:
        send_mail(
            subject=f"[Strongroom] {alert.severity} {alert.name}",
            message=(
                f"{alert.name} ({alert.get_severity_display()}, {alert.category})\n"
                f"Resource: {alert.affected_resource_id}\nTime: {alert.raised_at.isoformat()}\n\n"
                f"{alert.description}\n"
            ),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=recipients,
        )
    except Exception:  # mail is best effort: the alert itself is already recorded
        logger.exception("Could not e-mail alert %s", alert_id)
        return
    Alert.objects.filter(pk=alert_id).update(emailed=True)


def change_alert_state(principal, alert: Alert, state: str) -> Alert:
    if state not in Alert.State.values:
        raise ValidationError({"state": f"Choose one of {', '.join(Alert.State.values)}."})
    details = {"alert": alert.name, "from": alert.state, "to": state}
    with guarded(principal, ALERT_CHANGE_STATE, alert.affected_resource_id, details=details):
        if alert.state == Alert.State.CLOSED:
            raise ValidationError("A closed alert cannot change state.")
        alert.state = state
        alert.updated_at = clock.now()
        alert.save(update_fields=["state", "updated_at"])
    return alert


__all__ = [
    "ActivityLogEntry",
    "assign_role",
    "change_alert_state",
    "check_access",
    "can_move_lab_clock",
    "move_lab_clock",
    "principal_for_user",
    "raise_alert",
    "record",
    "create_first_owner",
    "root_owners",
    "remove_assignments_of_deleted_scope",
    "remove_role_assignment",
    "system_principal",
]


def root_owners():
    """The principals who hold Owner at the root scope now."""
    owner = RoleDefinition.objects.get(name=OWNER)
    held = RoleAssignment.objects.active_at(clock.now()).filter(role=owner, scope=scopes.ROOT)
    return Principal.objects.filter(pk__in=held.values("principal_id"))


def create_first_owner(*, username: str, password: str, display_name: str = "", email: str = "") -> Principal:
    """A production installation's first administrator: a sign-in account that is Owner at the root scope.

    Refused once an Owner exists (later Owners are assigned in Access control (IAM) by an Owner, through the
    guards), and for a username already taken or a password the validators refuse; on refusal nothing is
    made. The assignment is the one bootstrap write (`bootstrap_root_owner`), logged as the system's."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.password_validation import validate_password

    username = (username or "").strip()
    if not username:
        raise ValidationError({"username": "Give the Owner a username."})
    existing = list(root_owners().values_list("display_name", flat=True)[:3])
    if existing:
        raise ValidationError(
            f"This installation already has an Owner ({', '.join(existing)}). Further Owners are assigned by an "
            f"Owner in Access control (IAM), where the guards and the activity log see it.")
    User = get_user_model()
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationError({"username": f"The username '{username}' is taken; choose another."})
    first, _, last = (display_name or "").strip().partition(" ")
    user = User(username=username, email=(email or "").strip(), first_name=first, last_name=last, is_staff=True)
    try:
        validate_password(password, user=user)
    except ValidationError as exc:
        raise ValidationError({"password": exc.messages}) from None
    with transaction.atomic():
        user.set_password(password)
        user.save()
        principal = principal_for_user(user)
        if bootstrap_root_owner(principal) is None:  # another process made an Owner meanwhile
            raise ValidationError("Another Owner was created at the same moment; nothing was made.")
    return principal


def bootstrap_root_owner(principal: Principal) -> RoleAssignment | None:
    """Make ``principal`` Owner at the root scope when nobody is yet.

    The first Owner cannot be authorized by anyone (as the creator of an Azure tenant); this one
    write is made by the system principal and logged. Idempotent: does nothing once an Owner exists.
    """
    owner = RoleDefinition.objects.get(name=OWNER)
    now = clock.now()
    if RoleAssignment.objects.active_at(now).filter(role=owner, scope=scopes.ROOT).exists():
        return None
    with transaction.atomic():
        assignment = RoleAssignment.objects.create(principal=principal, role=owner, scope=scopes.ROOT,
                                                   description="Bootstrap: first administrator")
        record(
            system_principal(),
            ROLE_ASSIGNMENT_WRITE,
            scopes.ROOT,
            status=ActivityLogEntry.Status.SUCCEEDED,
            details={"role": OWNER, "assignee": principal.display_name, "bootstrap": True},
        )
    return assignment
