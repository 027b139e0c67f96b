"""Security's state changes: role assignments, managed identities, the lab clock, alerts.

Each write goes through `guarded` (evaluate, one transaction, the activity log).
"""

from __future__ import annotations

import datetime as dt
import uuid
import logging
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from security import clock, roles, scopes
from security.audit import caller_label, guarded, record
from security.conditions import CONDITION_VERSION, Condition, ConditionError, parse_stored, request_for
from security.guards import GuardDenied, evaluate
from security.models import ActivityLogEntry, Alert, LabClock, Principal, RoleAssignment, RoleDefinition
from security.operations import (  # callers read these names here too
    ALERT_CHANGE_STATE,
    LAB_CLOCK_WRITE,
    ROLE_ASSIGNMENT_DELETE,
    ROLE_ASSIGNMENT_READ,
    ROLE_ASSIGNMENT_WRITE,
)
from security.rbac import authorize
from security.roles import OWNER

logger = logging.getLogger(__name__)

SYSTEM_PRINCIPAL_NAME = "Strongroom system"
PRIVILEGED_ROLE_ALERT = "Privileged role assigned"  # Strongroom's own alert, beside the reference's


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
    condition: dict | None = None,
    assignment_id: uuid.UUID | None = None,
) -> RoleAssignment:
    """Assign ``role`` to ``assignee`` at ``scope`` (as ``assignment_id``, when the caller names it, as
    ARM's PUT does). ``condition`` (`security.conditions` data) constrains
    which roles the assignee may then assign and remove: only on Role Based Access Control Administrator
    or User Access Administrator. Assigning a privileged administrator role raises "Privileged role assigned"."""
    scope = scopes.normalize(scope)
    details = {"role": role.name, "assignee": assignee.display_name, "assigneeId": str(assignee.id)}
    if ends_at:
        details["endsAt"] = ends_at.isoformat()
    change = request_for(role, assignee).as_change()
    with guarded(principal, ROLE_ASSIGNMENT_WRITE, scope, change=change, details=details) as op:
        now = clock.now()
        if ends_at is not None and ends_at <= (starts_at or now):
            raise ValidationError({"ends_at": "The end must be after the start (and in the future)."})
        parsed = _valid_condition(role, condition)
        existing = (
            RoleAssignment.objects.active_at(now)
            .filter(principal=assignee, role=role, scope__iexact=scope)
            .exists()
        )
        if existing:
            raise ValidationError(
                f"RoleAssignmentExists: {assignee.display_name} already holds {role.name} at this scope.",
                code="RoleAssignmentExists",
            )
        if assignment_id is not None and RoleAssignment.objects.filter(pk=assignment_id).exists():
            raise ValidationError(
                f"RoleAssignmentExists: a role assignment named '{assignment_id}' already exists; choose a new GUID.",
                code="RoleAssignmentExists",
            )
        assignment = RoleAssignment.objects.create(
            **({"id": assignment_id} if assignment_id is not None else {}),
            principal=assignee,
            role=role,
            scope=scope,
            starts_at=starts_at,
            ends_at=ends_at,
            description=description,
            created_by=principal if isinstance(principal, Principal) else None,
            condition=parsed.to_data() if parsed else None,
            condition_version=CONDITION_VERSION if parsed else "",
        )
        op.details["assignmentId"] = str(assignment.id)
        if parsed:
            op.details["condition"] = parsed.render()
            op.details["conditionVersion"] = CONDITION_VERSION
        _alert_if_privileged(principal, assignment)
    return assignment


def _valid_condition(role: RoleDefinition, data) -> Condition | None:
    """The condition ``data`` describes, checked for ``role``; a ValidationError saying what is wrong."""
    if data is None:
        return None
    if role.name not in roles.DELEGATION_ROLES:
        raise ValidationError({"condition": f"Only {' and '.join(roles.DELEGATION_ROLES)} assignments can carry a "
                                            f"condition; {role.name} cannot. Assign it without one."})
    try:
        condition = Condition.parse(data)
    except ConditionError as exc:
        raise ValidationError({"condition": str(exc)}) from None
    known = {str(pk).lower() for pk in RoleDefinition.objects.filter(pk__in=condition.role_ids).values_list("pk", flat=True)}
    unknown = [r for r in condition.role_ids if r not in known]
    if unknown:
        raise ValidationError({"condition": f"No role definition has the id {unknown[0]}: select the roles from the list."})
    return condition


def _alert_if_privileged(principal, assignment: RoleAssignment) -> None:
    """"Privileged role assigned" for Owner, User Access Administrator or Role Based Access Control
    Administrator (Sev1; Sev2 when a condition constrains the delegation). Work Strongroom does itself
    (the system principal: training sandboxes) is in the activity log only; the first Owner's bootstrap and
    the system roles are not assigned through here."""
    role = assignment.role
    if role.name not in roles.PRIVILEGED_ADMINISTRATOR_ROLES or getattr(principal, "kind", "") == Principal.Kind.SYSTEM:
        return
    condition = condition_text(assignment)
    scope = assignment.scope
    raise_alert(
        name=PRIVILEGED_ROLE_ALERT,
        category=Alert.Category.SECURITY,
        severity=Alert.Severity.SEV2 if condition else Alert.Severity.SEV1,
        resource_id=scope,
        description=(
            f"{caller_label(principal)} assigned {role.name} to {assignment.principal.display_name} at {scope}. "
            + ("A condition constrains which roles it may assign." if condition else
               "Nothing constrains it: the assignee can grant any role here, including Owner.")
        ),
        details={"role": role.name, "roleDefinitionId": str(role.id), "assignee": assignment.principal.display_name,
                 "assigneeId": str(assignment.principal_id), "assignmentId": str(assignment.id),
                 "assignedBy": caller_label(principal), "condition": condition},
    )


def condition_text(assignment: RoleAssignment) -> str:
    """The assignment's condition as Azure's code view shows it ("" without one)."""
    condition = parse_stored(assignment.condition)
    return condition.render() if condition else ""


def set_assignment_condition(principal, assignment: RoleAssignment, condition: dict | None) -> RoleAssignment:
    """Add, change or remove the condition of ``assignment`` (a write of the role assignment, as Azure's
    PUT with a new condition is). Removing the condition of a privileged assignment raises the alert again."""
    details = {"role": assignment.role.name, "assignee": assignment.principal.display_name,
               "assignmentId": str(assignment.id), "previousCondition": condition_text(assignment)}
    change = request_for(assignment.role, assignment.principal).as_change()
    with guarded(principal, ROLE_ASSIGNMENT_WRITE, assignment.scope, change=change, details=details) as op:
        if assignment.role.name not in roles.DELEGATION_ROLES:
            raise ValidationError({"condition": f"Only {' and '.join(roles.DELEGATION_ROLES)} assignments can carry "
                                                f"a condition; {assignment.role.name} cannot."})
        parsed = _valid_condition(assignment.role, condition)
        assignment.condition = parsed.to_data() if parsed else None
        assignment.condition_version = CONDITION_VERSION if parsed else ""
        assignment.save(update_fields=["condition", "condition_version"])
        op.details["condition"] = parsed.render() if parsed else ""
        if parsed is None and details["previousCondition"]:
            _alert_if_privileged(principal, assignment)
    return assignment


def remove_role_assignment(principal, assignment: RoleAssignment) -> None:
    details = {
        "role": assignment.role.name,
        "assignee": assignment.principal.display_name,
        "assignmentId": str(assignment.id),
    }
    change = request_for(assignment.role, assignment.principal).as_change()  # Azure's @Resource attributes
    with guarded(principal, ROLE_ASSIGNMENT_DELETE, assignment.scope, change=change, details=details):
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
        """Whether the subject may perform ``action`` here whatever it concerns (a condition that
        constrains it is not enough: see `conditions`)."""
        return authorize(self.subject, action, self.scope).allowed

    def conditions(self, action: str) -> list[str]:
        """The conditions under which the subject may still perform ``action`` here, in words."""
        result = authorize(self.subject, action, self.scope)
        if result.allowed or not result.unfulfilled:
            return []
        names = role_names(r for _, c in result.unfulfilled for r in c.role_ids)
        return [f"{label}: {condition.describe(names)}" for label, condition in result.unfulfilled]


def role_names(ids) -> dict[str, str]:
    """Role definition id (lower case) -> name, for the ids given."""
    ids = set(ids)
    return {str(pk).lower(): name for pk, name in RoleDefinition.objects.filter(pk__in=ids).values_list("pk", "name")}


def check_access(principal, subject: Principal, scope: str) -> CheckAccessResult:
    """What ``subject`` holds at ``scope``. Reading assignments needs roleAssignments/read there."""
    decision = evaluate(principal, ROLE_ASSIGNMENT_READ, scope)
    if not decision.allowed:
        raise GuardDenied(decision)
    entries = [e for e in assignments_at(scope) if e.assignment.principal_id == subject.pk]
    return CheckAccessResult(subject, scopes.normalize(scope), entries)


def effective_actions_for(subject: Principal, scope: str, actions: list[str]) -> dict[str, bool]:
    return {action: authorize(subject, action, scope).allowed for action in actions}


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
    "set_assignment_condition",
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
        # Two runs at once: the Owner role's row serializes them, so the second sees the first's Owner.
        RoleDefinition.objects.select_for_update().get(name=OWNER)
        if root_owners().exists():
            raise ValidationError("Another Owner was created at the same moment; nothing was made.")
        user.set_password(password)
        user.save()
        principal = principal_for_user(user)
        bootstrap_root_owner(principal)
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
