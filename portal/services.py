"""Portal state changes: subscriptions, resource groups, operations and lab personas."""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Q

from portal import enqueue, resources
from portal.models import LabPersona, Operation, Region, ResourceGroup, Subscription
from security import clock, scopes
from security.audit import guarded
from security.models import Principal
from security.operations import (
    LAB_SOLVE_FOR_TRAINEE,
    LAB_START,
    PERSONA_ASSUME,
    RESOURCE_GROUP_DELETE,
    RESOURCE_GROUP_READ,
    RESOURCE_GROUP_WRITE,
    SUBSCRIPTION_WRITE,
    WORKER_CHECK,
)
from security.rbac import authorize, visible_to

# The worker check's Celery task (portal/tasks.py), enqueued by this name.
WORKER_CHECK_TASK = "portal.tasks.answer_worker_check"

# Azure: 1-90 characters; letters (Unicode), digits, underscores, hyphens, periods, parentheses;
# cannot end in a period.
RESOURCE_GROUP_NAME = re.compile(r"^[\w\-.()]{1,90}$", re.UNICODE)


# --- reads -----------------------------------------------------------------------------------


def subscriptions_for(principal):
    """Subscriptions in which the principal holds any role (as the Azure subscription picker). A role of
    data actions only (Strongroom's Lab Trainee at '/') shows no subscription."""
    from security.rbac import active_assignments, reaches_resources

    assignment_scopes = [a.scope for a in active_assignments(principal).select_related("role")
                         if reaches_resources(a.role)]
    if any(scopes.normalize(s) == scopes.ROOT for s in assignment_scopes):
        return Subscription.objects.all()
    ids = {scopes.subscription_of(s) for s in assignment_scopes} - {None}
    query = Q(pk__in=[])
    for sid in ids:
        query |= Q(resource_id__iexact=sid)
    return Subscription.objects.filter(query)


def resource_groups_for(principal, action: str = RESOURCE_GROUP_READ):
    return ResourceGroup.objects.filter(visible_to(principal, action).q("resource_id")).select_related(
        "subscription", "region"
    )


# --- subscriptions and resource groups -------------------------------------------------------


def create_subscription(principal, *, display_name: str) -> Subscription:
    display_name = (display_name or "").strip()
    with guarded(principal, SUBSCRIPTION_WRITE, scopes.ROOT, details={"name": display_name}) as op:
        if not display_name or len(display_name) > 64:
            raise ValidationError({"display_name": "Enter a subscription name of 1 to 64 characters."})
        if Subscription.objects.filter(display_name__iexact=display_name).exists():
            raise ValidationError({"display_name": f"A subscription named '{display_name}' already exists."})
        subscription = Subscription.objects.create(display_name=display_name)
        op.result_scope = subscription.resource_id
    return subscription


def validate_resource_group_name(name: str) -> None:
    if not name:
        raise ValidationError({"name": "Enter a resource group name."})
    if not RESOURCE_GROUP_NAME.match(name) or name.endswith("."):
        raise ValidationError(
            {
                "name": "Resource group names can only include alphanumeric, underscore, "
                "parentheses, hyphen, period (except at end), and Unicode characters that match "
                "the allowed characters, and be 1 to 90 characters long."
            }
        )


def create_resource_group(
    principal, *, subscription: Subscription, name: str, region: Region, tags: dict | None = None
) -> ResourceGroup:
    name = (name or "").strip()
    target = f"{subscription.resource_id}/resourceGroups/{name}"
    with guarded(principal, RESOURCE_GROUP_WRITE, target, details={"region": region.name}) as op:
        validate_resource_group_name(name)
        if ResourceGroup.objects.filter(subscription=subscription, name__iexact=name).exists():
            raise ValidationError(
                {"name": f"A resource group named '{name}' already exists in {subscription.display_name}."}
            )
        group = ResourceGroup.objects.create(subscription=subscription, name=name, region=region, tags=tags or {})
        op.result_scope = group.resource_id
    return group


def resources_in_group(group: ResourceGroup) -> list:
    found = []
    for rtype in resources.all_types():
        if rtype.in_resource_group:
            found.extend(rtype.model.objects.filter(resource_group=group))
    return found


def delete_resource_group(principal, group: ResourceGroup) -> None:
    with guarded(principal, RESOURCE_GROUP_DELETE, group.resource_id) as op:
        contents = resources_in_group(group)
        if contents:
            names = ", ".join(sorted(r.name for r in contents)[:5])
            raise ValidationError(
                f"The resource group '{group.name}' still contains {len(contents)} resource(s) "
                f"({names}). Delete them first, then delete the resource group."
            )
        from security.services import remove_assignments_of_deleted_scope

        # Its role assignments go with it (logged): a new group of the same name starts with none.
        removed = remove_assignments_of_deleted_scope(principal, group.resource_id, cause="The resource group was deleted.")
        if removed:
            op.details["roleAssignmentsRemoved"] = removed
        group.delete()


# --- operations (notifications) ---------------------------------------------------------------


def start_operation(principal: Principal, title: str, *, resource_id: str = "", link: str = "") -> Operation:
    return Operation.objects.create(
        principal=principal, title=title, resource_id=resource_id, link=link, started_at=clock.now()
    )


def finish_operation(operation: Operation, *, succeeded: bool, message: str = "", link: str = "",
                     status: str = "") -> None:
    """End ``operation``: Succeeded or Failed, or the final ``status`` its notification should show."""
    operation.status = status or (Operation.Status.SUCCEEDED if succeeded else Operation.Status.FAILED)
    operation.message = message
    operation.ended_at = clock.now()
    if link:
        operation.link = link
    operation.save(update_fields=["status", "message", "ended_at", "link"])


def dismiss_operations(principal: Principal) -> int:
    return Operation.objects.filter(principal=principal, dismissed=False).exclude(
        status=Operation.Status.IN_PROGRESS
    ).update(dismissed=True)


# --- lab personas ------------------------------------------------------------------------------


_DATA_ACTION = {"data_action": True}


def can_play_personas(principal: Principal | None) -> bool:
    """Whether ``principal`` may switch lab persona: lab mode, and the persona data action at the root (role
    "Lab Instructor"). Superuser status and Owner's "*" do not include it."""
    return bool(settings.STRONGROOM_LAB_MODE and principal is not None
                and authorize(principal, PERSONA_ASSUME, scopes.ROOT, data_action=True).allowed)


def can_open_labs(principal: Principal | None) -> bool:
    """Whether the Training labs page is for ``principal`` (lab mode; a Lab Trainee or a Lab Instructor), so
    that the navigation and search offer it only to those it opens for. The labs app decides the rest."""
    return bool(settings.STRONGROOM_LAB_MODE and principal is not None
                and any(authorize(principal, action, scopes.ROOT, data_action=True).allowed
                        for action in (LAB_START, LAB_SOLVE_FOR_TRAINEE)))


def assume_persona(real_principal: Principal, persona: LabPersona | None) -> None:
    """Record a persona switch (asking `evaluate`, so a refusal is in the activity log too). The switch itself
    lives in the instructor's session; the caller stores it only when this returns."""
    details = {"persona": persona.title if persona else "(self)"}
    if persona is not None:
        details["personaPrincipal"] = persona.principal.display_name
    with guarded(real_principal, PERSONA_ASSUME, scopes.ROOT, change=_DATA_ACTION, details=details):
        if not settings.STRONGROOM_LAB_MODE:
            raise ValidationError("Lab personas can be played only in lab mode.")


# --- worker check ------------------------------------------------------------------------------

def check_workers(principal: Principal) -> Operation:
    """Ask a Celery worker to answer; the notification turns green when one does.

    Shows a trainer (and the tests) that web, broker, worker and database are wired together.
    """
    with guarded(principal, WORKER_CHECK, scopes.ROOT, change=_DATA_ACTION) as op:
        operation = start_operation(principal, "Checking background workers")
        op.details["operationId"] = str(operation.pk)
        enqueue.after_commit(WORKER_CHECK_TASK, str(operation.pk))
    return operation


def complete_worker_check(operation_id: str, *, worker: str) -> None:
    operation = Operation.objects.filter(pk=operation_id, status=Operation.Status.IN_PROGRESS).first()
    if operation is None:  # redelivered, or already answered
        return
    finish_operation(operation, succeeded=True, message=f"Worker {worker} answered.")
