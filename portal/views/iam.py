"""Access control (IAM) at any scope: its role assignments, adding and removing them, and "Check access"."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from portal import resources
from portal.forms import CheckAccessForm, ConditionForm, RoleAssignmentForm
from portal.models import ResourceGroup, Subscription
from portal.shortcuts import can, form_errors_from, parse_uuid, submit
from portal.templatetags.portal_ui import describe_scopes
from security import clock, roles, scopes
from security import services as security_services
from security.conditions import CONDITION_VERSION, parse_stored, request_for
from security.models import RoleAssignment
from security.operations import RESOURCE_GROUP_WRITE, ROLE_ASSIGNMENT_DELETE, ROLE_ASSIGNMENT_WRITE, SUBSCRIPTION_READ
from security.rbac import authorize


def _scope_context(request, scope: str):
    """The resource behind an IAM scope, 404 when it does not exist or cannot be read."""
    scope = scopes.normalize(scope)
    rtype = resources.type_of(scope)
    obj = resources.resolve(scope) if rtype else None
    if obj is None or not authorize(request.principal, rtype.read_action, obj.resource_id).allowed:
        raise Http404("No such resource, or you do not have access to it.")
    return scope, rtype, obj


# Product names keep their capitals inside a sentence ("Create Elastic SANs here", not "elastic SANs").
_PRODUCT_NAMES = ("Azure ", "Elastic SAN")


def _plural_in_sentence(label: str) -> str:
    if not label.startswith(_PRODUCT_NAMES):
        label = label[0].lower() + label[1:]
    return f"{label}s"


def _capabilities(rtype, scope: str) -> list[tuple[str, str]]:
    """What "Check access" asks about at a scope: (plain words, action), per kind of resource."""
    label = rtype.label.lower()
    manage_access = ("Manage access here (add or remove role assignments)", ROLE_ASSIGNMENT_WRITE)
    # Resources that live in groups (vaults, ...): "Create backup vaults here", from the registry.
    contained = [
        (f"Create {_plural_in_sentence(t.label)} here", _action_base(t.read_action) + "/write")
        for t in resources.all_types()
        if t.in_resource_group
    ]
    if rtype.model is Subscription:
        return [
            ("Read this subscription and what is in it", SUBSCRIPTION_READ),
            ("Create resource groups in it", RESOURCE_GROUP_WRITE),
            *contained,
            manage_access,
        ]
    base = _action_base(rtype.read_action)
    return [
        (f"Read this {label}", rtype.read_action),
        (f"Create or change this {label}", base + "/write"),
        (f"Delete this {label}", base + "/delete"),
        *(contained if rtype.model is ResourceGroup else []),
        manage_access,
    ]


def _action_base(read_action: str) -> str:
    """"Microsoft.X/things/read" -> "Microsoft.X/things" (Azure's write/delete share the stem)."""
    return read_action[: -len("/read")] if read_action.lower().endswith("/read") else read_action


def _iam_context(request, scope, rtype, obj, **extra):
    entries = sorted(
        security_services.assignments_at(scope),
        key=lambda e: (e.inherited, e.assignment.role.name, e.assignment.principal.display_name),
    )
    info = describe_scopes(e.assignment.scope for e in entries)
    conditioned = {e.assignment.pk: parse_stored(e.assignment.condition) for e in entries if e.assignment.condition}
    names = security_services.role_names(r for c in conditioned.values() for r in c.role_ids)
    rows = [
        {
            "entry": entry,
            "assignment": entry.assignment,
            "inherited": entry.inherited,
            "from": info[scopes.normalize(entry.assignment.scope).lower()],
            "condition": _condition_row(conditioned.get(entry.assignment.pk), names),
            # Removing it: the signed-in user's own conditions judge this assignment's role and principal.
            "can_remove": not entry.inherited and authorize(
                request.principal, ROLE_ASSIGNMENT_DELETE, scope, request=request_for(entry.assignment.role,
                                                                                      entry.assignment.principal)
            ).allowed,
            # Changing its condition is a write of this assignment, judged the same way.
            "can_edit": not entry.inherited and entry.assignment.role.name in roles.DELEGATION_ROLES and authorize(
                request.principal, ROLE_ASSIGNMENT_WRITE, scope, request=request_for(entry.assignment.role,
                                                                                     entry.assignment.principal)
            ).allowed,
        }
        for entry in entries
    ]
    write = authorize(request.principal, ROLE_ASSIGNMENT_WRITE, scope)
    tab = request.GET.get("tab", "assignments")
    if tab not in ("assignments", "add", "check", "condition"):
        tab = "assignments"
    editing = _editing(request, scope, rows) if tab == "condition" else None
    if tab == "condition" and editing is None:
        tab = "assignments"
    return {
        "scope": scope,
        "resource": obj,
        "resource_type": rtype,
        "resource_url": rtype.url_for(obj),
        "rows": rows,
        "entries": entries,
        "direct_count": sum(1 for r in rows if not r["inherited"]),
        "inherited_count": sum(1 for r in rows if r["inherited"]),
        "can_write": write.allowed or bool(write.unfulfilled),
        "write_conditions": [] if write.allowed else _my_conditions(write),
        "can_delete": can(request.principal, ROLE_ASSIGNMENT_DELETE, scope),
        "tab": tab,
        "blade": "iam",
        "lab_now": clock.now(),
        "add_form": extra.pop("add_form", None) or RoleAssignmentForm(viewer=request.principal),
        "check_form": extra.pop("check_form", None) or CheckAccessForm(viewer=request.principal),
        "editing": editing,
        "condition_form": extra.pop("condition_form", None) or (
            ConditionForm(initial=ConditionForm.initial_for(editing["assignment"].condition)) if editing else None),
        **extra,
    }


def _editing(request, scope, rows):
    """The row whose condition "View/Edit" opened (?assignment=<id>): one assigned at this scope to a role
    that may carry a condition; None otherwise (the list is shown instead)."""
    wanted = parse_uuid(request.GET.get("assignment") or request.POST.get("assignment"))
    for row in rows:
        a = row["assignment"]
        if a.pk == wanted and not row["inherited"] and a.role.name in roles.DELEGATION_ROLES:
            return row
    return None


def _condition_row(condition, names):
    """What the Condition column shows: the condition in words and as Azure's code view has it."""
    if condition is None:
        return None
    return {"summary": condition.describe(names), "text": condition.render(), "version": CONDITION_VERSION}


def _my_conditions(write) -> list[str]:
    names = security_services.role_names(r for _, c in write.unfulfilled for r in c.role_ids)
    return [f"{label}: {condition.describe(names)}" for label, condition in write.unfulfilled]


@login_required
def iam(request):
    scope, rtype, obj = _scope_context(request, request.GET.get("scope", ""))
    return render(request, "portal/iam.html", _iam_context(request, scope, rtype, obj))


@login_required
@require_POST
def iam_add(request):
    scope, rtype, obj = _scope_context(request, request.POST.get("scope", ""))
    form = RoleAssignmentForm(request.POST, viewer=request.principal)
    saved = submit(
        request, form,
        lambda: security_services.assign_role(
            request.principal,
            assignee=form.cleaned_data["member"],
            role=form.cleaned_data["role"],
            scope=scope,
            ends_at=form.cleaned_data["ends_at"],
            description=form.cleaned_data["description"],
            condition=form.cleaned_data["condition"],
        ),
        lambda assignment: f"Added {assignment.role.name} for {assignment.principal.display_name}.",
        f"{reverse('portal:iam')}?scope={scope}",
    )
    if saved:
        return saved
    request.GET = request.GET.copy()
    request.GET["tab"] = "add"
    return render(request, "portal/iam.html", _iam_context(request, scope, rtype, obj, add_form=form), status=400)


@login_required
@require_POST
def iam_remove(request, assignment_id):
    scope, rtype, obj = _scope_context(request, request.POST.get("scope", ""))
    assignment = get_object_or_404(RoleAssignment, pk=assignment_id)
    # Inherited assignments are removed where they are assigned (as in Azure), not from below.
    if scopes.normalize(assignment.scope).lower() != scope.lower():
        raise Http404("That assignment is not assigned at this scope.")
    security_services.remove_role_assignment(request.principal, assignment)
    messages.success(request, f"Removed {assignment.role.name} for {assignment.principal.display_name}.")
    return redirect(f"{reverse('portal:iam')}?scope={scope}")


@login_required
@require_POST
def iam_condition(request, assignment_id):
    """Save the condition of a role assignment ("View/Edit" in the Condition column)."""
    scope, rtype, obj = _scope_context(request, request.POST.get("scope", ""))
    assignment = get_object_or_404(RoleAssignment.objects.select_related("role", "principal"), pk=assignment_id)
    if scopes.normalize(assignment.scope).lower() != scope.lower():
        raise Http404("That assignment is not assigned at this scope.")
    form = ConditionForm(request.POST)
    if form.is_valid() and not form.cleaned_data.get("delegation"):
        form.add_error("delegation", "Choose what the user can do.")
    if form.is_valid():
        condition = form.condition_data(form.cleaned_data)
        if form.is_valid():  # condition_data may add an error
            try:
                security_services.set_assignment_condition(request.principal, assignment, condition)
            except ValidationError as exc:
                if assignment.role.name not in roles.DELEGATION_ROLES:  # no Edit page to show it on
                    messages.error(request, " ".join(exc.messages))
                    return redirect(f"{reverse('portal:iam')}?scope={scope}")
                form_errors_from(form, exc)
            else:
                said = "Saved the condition of" if condition else "Removed the condition of"
                messages.success(request, f"{said} {assignment.role.name} for {assignment.principal.display_name}.")
                return redirect(f"{reverse('portal:iam')}?scope={scope}")
    request.GET = request.GET.copy()
    request.GET.update({"tab": "condition", "assignment": str(assignment.pk)})
    context = _iam_context(request, scope, rtype, obj, condition_form=form)
    return render(request, "portal/iam.html", context, status=400)


@login_required
def iam_check_access(request):
    scope, rtype, obj = _scope_context(request, request.GET.get("scope", ""))
    form = CheckAccessForm(request.GET if "member" in request.GET else None, viewer=request.principal)
    result = None
    capabilities = []
    if form.is_valid():
        result = security_services.check_access(request.principal, form.cleaned_data["member"], scope)
        capabilities = [
            {"label": label, "action": action, "allowed": result.can(action), "conditions": result.conditions(action)}
            for label, action in _capabilities(rtype, scope)
        ]
    info = describe_scopes(e.assignment.scope for e in (result.entries if result else []))
    check_rows = [
        {"assignment": e.assignment, "inherited": e.inherited, "from": info[scopes.normalize(e.assignment.scope).lower()]}
        for e in (result.entries if result else [])
    ]
    context = _iam_context(
        request, scope, rtype, obj, check_form=form, check_result=result, check_rows=check_rows, capabilities=capabilities
    )
    context["tab"] = "check"
    return render(request, "portal/iam.html", context)
