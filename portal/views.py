"""Views of the shell: home, tenancy, IAM, activity log, alerts, notifications, lab controls.

Views are thin: they read through `visible`/`get_visible_or_404` and change state only by calling
services; a GuardDenied from a service becomes the explained 403 page (GuardDeniedMiddleware).
"""

from __future__ import annotations

import datetime as dt

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from portal import resources, services
from portal.forms import CheckAccessForm, ClockForm, ResourceGroupForm, RoleAssignmentForm
from portal.middleware import SESSION_PERSONA
from portal.models import LabPersona, Operation, ResourceGroup, Subscription
from portal.shortcuts import can, form_errors_from, get_visible_or_404, visible
from security import clock, scopes
from security import services as security_services
from security.models import ActivityLogEntry, Alert, Principal, RoleAssignment
from security.rbac import active_assignments, authorize


@login_required
def home(request):
    principal = request.principal
    return render(
        request,
        "portal/home.html",
        {
            "subscriptions": services.subscriptions_for(principal),
            "resource_groups": services.resource_groups_for(principal)[:8],
            "my_assignments": active_assignments(principal),
            "recent_activity": _activity_for(principal)[:6],
        },
    )


@login_required
@require_GET
def search(request):
    query = request.GET.get("q", "").strip()
    results = []
    if query:
        for rtype in resources.all_types():
            rows = visible(request.principal, rtype.model.objects.all(), rtype.read_action)
            field = "display_name" if rtype.model is Subscription else "name"
            for obj in rows.filter(**{f"{field}__icontains": query})[:10]:
                results.append({"label": rtype.label, "name": str(obj), "url": rtype.url_for(obj), "id": obj.resource_id})
    template = "portal/search.html#results" if request.htmx else "portal/search.html"
    return render(request, template, {"query": query, "results": results})


# --- subscriptions ----------------------------------------------------------------------------


@login_required
def subscription_list(request):
    return render(request, "portal/subscription_list.html", {"subscriptions": services.subscriptions_for(request.principal)})


@login_required
def subscription_detail(request, pk):
    subscription = services.subscriptions_for(request.principal).filter(pk=pk).first()
    if subscription is None:
        raise Http404("No such subscription, or you do not have access to it.")
    groups = services.resource_groups_for(request.principal).filter(subscription=subscription)
    return render(
        request,
        "portal/subscription_detail.html",
        {
            "subscription": subscription,
            "resource": subscription,
            "resource_groups": groups,
            "can_create_group": can(
                request.principal, services.RESOURCE_GROUP_WRITE, subscription.resource_id + "/resourceGroups/x"
            ),
        },
    )


# --- resource groups --------------------------------------------------------------------------


@login_required
def resource_group_list(request):
    groups = services.resource_groups_for(request.principal)
    subscription_filter = request.GET.get("subscription")
    if subscription_filter:
        groups = groups.filter(subscription_id=subscription_filter)
    page = Paginator(groups, 25).get_page(request.GET.get("page"))
    return render(
        request,
        "portal/resource_group_list.html",
        {
            "page": page,
            "subscriptions": services.subscriptions_for(request.principal),
            "subscription_filter": subscription_filter,
        },
    )


@login_required
def resource_group_create(request):
    subscriptions = services.subscriptions_for(request.principal)
    initial = {"subscription": request.GET.get("subscription")} if request.GET.get("subscription") else {}
    form = ResourceGroupForm(request.POST or None, subscriptions=subscriptions, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            group = services.create_resource_group(
                request.principal,
                subscription=form.cleaned_data["subscription"],
                name=form.cleaned_data["name"],
                region=form.cleaned_data["region"],
            )
        except ValidationError as exc:
            form_errors_from(form, exc)
        else:
            messages.success(request, f"Resource group '{group.name}' created.")
            return redirect("portal:resource_group_detail", pk=group.pk)
    return render(request, "portal/resource_group_create.html", {"form": form})


@login_required
def resource_group_detail(request, pk):
    group = get_visible_or_404(
        request.principal, ResourceGroup.objects.select_related("subscription", "region"), services.RESOURCE_GROUP_READ, pk=pk
    )
    contents = []
    for rtype in resources.all_types():
        if rtype.in_resource_group:
            rows = visible(request.principal, rtype.model.objects.filter(resource_group=group), rtype.read_action)
            contents.extend({"obj": obj, "type": rtype, "url": rtype.url_for(obj)} for obj in rows)
    return render(
        request,
        "portal/resource_group_detail.html",
        {
            "group": group,
            "resource": group,
            "contents": sorted(contents, key=lambda c: c["obj"].name.lower()),
            "can_delete": can(request.principal, services.RESOURCE_GROUP_DELETE, group.resource_id),
        },
    )


@login_required
def resource_group_delete(request, pk):
    group = get_visible_or_404(request.principal, ResourceGroup.objects.all(), services.RESOURCE_GROUP_READ, pk=pk)
    error = None
    if request.method == "POST":
        if request.POST.get("confirm_name", "").strip() != group.name:
            error = f"Type the resource group name '{group.name}' to confirm."
        else:
            try:
                services.delete_resource_group(request.principal, group)
            except ValidationError as exc:
                error = " ".join(exc.messages)
            else:
                messages.success(request, f"Resource group '{group.name}' deleted.")
                return redirect("portal:resource_group_list")
    return render(request, "portal/resource_group_delete.html", {"group": group, "resource": group, "error": error})


# --- IAM ----------------------------------------------------------------------------------------


def _scope_context(request, scope: str):
    """The resource behind an IAM scope, 404 when it does not exist or cannot be read."""
    scope = scopes.normalize(scope)
    rtype = resources.type_of(scope)
    obj = resources.resolve(scope) if rtype else None
    if obj is None or not authorize(request.principal, rtype.read_action, obj.resource_id).allowed:
        raise Http404("No such resource, or you do not have access to it.")
    return scope, rtype, obj


def _iam_context(request, scope, rtype, obj, **extra):
    entries = security_services.assignments_at(scope)
    tab = request.GET.get("tab", "assignments")
    return {
        "scope": scope,
        "resource": obj,
        "resource_type": rtype,
        "resource_url": rtype.url_for(obj),
        "entries": sorted(entries, key=lambda e: (e.assignment.role.name, e.assignment.principal.display_name)),
        "can_write": can(request.principal, security_services.ROLE_ASSIGNMENT_WRITE, scope),
        "can_delete": can(request.principal, security_services.ROLE_ASSIGNMENT_DELETE, scope),
        "tab": tab,
        "add_form": extra.pop("add_form", None) or RoleAssignmentForm(),
        "check_form": extra.pop("check_form", None) or CheckAccessForm(),
        **extra,
    }


@login_required
def iam(request):
    scope, rtype, obj = _scope_context(request, request.GET.get("scope", ""))
    return render(request, "portal/iam.html", _iam_context(request, scope, rtype, obj))


@login_required
@require_POST
def iam_add(request):
    scope, rtype, obj = _scope_context(request, request.POST.get("scope", ""))
    form = RoleAssignmentForm(request.POST)
    if form.is_valid():
        ends_at = form.cleaned_data["ends_at"]
        try:
            assignment = security_services.assign_role(
                request.principal,
                assignee=form.cleaned_data["member"],
                role=form.cleaned_data["role"],
                scope=scope,
                ends_at=ends_at,
                description=form.cleaned_data["description"],
            )
        except ValidationError as exc:
            form_errors_from(form, exc)
        else:
            messages.success(
                request, f"Added {assignment.role.name} for {assignment.principal.display_name}."
            )
            return redirect(f"{reverse('portal:iam')}?scope={scope}")
    request.GET = request.GET.copy()
    request.GET["tab"] = "add"
    return render(request, "portal/iam.html", _iam_context(request, scope, rtype, obj, add_form=form), status=400)


@login_required
@require_POST
def iam_remove(request, assignment_id):
    scope, rtype, obj = _scope_context(request, request.POST.get("scope", ""))
    assignment = get_object_or_404(RoleAssignment, pk=assignment_id)
    if not scopes.covers(assignment.scope, scope):
        raise Http404("That assignment does not apply here.")
    security_services.remove_role_assignment(request.principal, assignment)
    messages.success(request, f"Removed {assignment.role.name} for {assignment.principal.display_name}.")
    return redirect(f"{reverse('portal:iam')}?scope={scope}")


@login_required
def iam_check_access(request):
    scope, rtype, obj = _scope_context(request, request.GET.get("scope", ""))
    form = CheckAccessForm(request.GET or None)
    result = None
    if form.is_valid():
        result = security_services.check_access(request.principal, form.cleaned_data["member"], scope)
    context = _iam_context(request, scope, rtype, obj, check_form=form, check_result=result)
    context["tab"] = "check"
    return render(request, "portal/iam.html", context)


# --- activity log -------------------------------------------------------------------------------


def _activity_for(principal):
    """Entries at scopes where the principal holds any role (Azure: read on the scope)."""
    held = [a.scope for a in active_assignments(principal)]
    if any(scopes.normalize(s) == scopes.ROOT for s in held):
        return ActivityLogEntry.objects.all()
    query = Q(principal=principal)
    for scope in held:
        query |= Q(scope__iexact=scope) | Q(scope__istartswith=scope.rstrip("/") + "/")
    return ActivityLogEntry.objects.filter(query)


TIMESPANS = {"1h": dt.timedelta(hours=1), "24h": dt.timedelta(hours=24), "7d": dt.timedelta(days=7), "30d": dt.timedelta(days=30)}


@login_required
def activity_log(request):
    entries = _activity_for(request.principal)
    filters = {k: request.GET.get(k, "") for k in ("timespan", "status", "operation", "caller", "scope")}
    if filters["timespan"] in TIMESPANS:
        entries = entries.filter(timestamp__gte=clock.now() - TIMESPANS[filters["timespan"]])
    if filters["status"] in ActivityLogEntry.Status.values:
        entries = entries.filter(status=filters["status"])
    if filters["operation"]:
        entries = entries.filter(Q(operation__icontains=filters["operation"]) | Q(operation_name__icontains=filters["operation"]))
    if filters["caller"]:
        entries = entries.filter(caller__icontains=filters["caller"])
    if filters["scope"]:
        entries = entries.filter(scope__icontains=filters["scope"])
    page = Paginator(entries, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "portal/activity_log.html",
        {"page": page, "filters": filters, "timespans": TIMESPANS, "statuses": ActivityLogEntry.Status.values},
    )


# --- alerts ----------------------------------------------------------------------------------------


@login_required
def alert_list(request):
    alerts = Alert.objects.filter(_alert_visibility(request.principal))
    state = request.GET.get("state", "")
    severity = request.GET.get("severity", "")
    if state in Alert.State.values:
        alerts = alerts.filter(state=state)
    if severity in Alert.Severity.values:
        alerts = alerts.filter(severity=severity)
    page = Paginator(alerts, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "portal/alert_list.html",
        {"page": page, "state": state, "severity": severity, "states": Alert.State, "severities": Alert.Severity},
    )


def _alert_visibility(principal):
    held = [a.scope for a in active_assignments(principal)]
    if any(scopes.normalize(s) == scopes.ROOT for s in held):
        return Q()
    query = Q(pk__in=[])
    for scope in held:
        query |= Q(affected_resource_id__iexact=scope) | Q(affected_resource_id__istartswith=scope.rstrip("/") + "/")
    return query


@login_required
@require_POST
def alert_change_state(request, pk):
    alert = Alert.objects.filter(_alert_visibility(request.principal), pk=pk).first()
    if alert is None:
        raise Http404("No such alert, or you do not have access to it.")
    try:
        security_services.change_alert_state(request.principal, alert, request.POST.get("state", ""))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Alert '{alert.name}' is now {alert.state}.")
    return redirect("portal:alert_list")


# --- notifications (operations) -------------------------------------------------------------------


@login_required
def notifications(request):
    operations = Operation.objects.filter(principal=request.real_principal or request.principal, dismissed=False)[:20]
    operations = list(operations)
    running = any(not op.is_finished for op in operations)
    response = render(request, "portal/_notifications.html", {"operations": operations, "running": running})
    if request.htmx and request.GET.get("poll") and not running:
        stopped = HttpResponseStopPolling()
        stopped.content = response.content
        return stopped
    return response


@login_required
@require_POST
def notifications_dismiss(request):
    services.dismiss_operations(request.real_principal or request.principal)
    return notifications(request)


# --- lab controls ----------------------------------------------------------------------------------


@login_required
@require_POST
def switch_persona(request):
    if not services.can_play_personas(request.user):
        raise Http404("Lab personas are not available.")
    persona_id = request.POST.get("persona", "")
    persona = LabPersona.objects.filter(pk=persona_id).first() if persona_id else None
    services.assume_persona(request.user, request.real_principal, persona)
    if persona is None:
        request.session.pop(SESSION_PERSONA, None)
        messages.info(request, "You are acting as yourself again.")
    else:
        request.session[SESSION_PERSONA] = persona.pk
        messages.info(request, f"You are now playing {persona.title} ({persona.principal.display_name}).")
    next_url = request.POST.get("next") or reverse("portal:home")
    if not next_url.startswith("/"):
        next_url = reverse("portal:home")
    return redirect(next_url)


@login_required
def lab_clock(request):
    if not services.can_play_personas(request.user):
        raise Http404("The lab clock is not available.")
    form = ClockForm(request.POST or None, initial={"amount": 1, "unit": "days"})
    if request.method == "POST":
        try:
            if "reset" in request.POST:
                security_services.move_lab_clock(request.real_principal, reset=True)
                messages.success(request, "The lab clock is back to real time.")
                return redirect("portal:lab_clock")
            if form.is_valid():
                delta = dt.timedelta(**{form.cleaned_data["unit"]: form.cleaned_data["amount"]})
                moved_to = security_services.move_lab_clock(request.real_principal, forward=delta)
                messages.success(request, f"The lab clock now reads {moved_to:%Y-%m-%d %H:%M} UTC.")
                return redirect("portal:lab_clock")
        except ValidationError as exc:
            form_errors_from(form, exc)
    return render(request, "portal/lab_clock.html", {"form": form, "now": clock.now(), "real": clock.is_real_time()})
