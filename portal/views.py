"""Views of the shell: home, tenancy, IAM, activity log, alerts, notifications, lab controls.

Views are thin: they read through `visible`/`get_visible_or_404` and change state only by calling
services; a GuardDenied from a service becomes the explained 403 page (GuardDeniedMiddleware).
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.timesince import timesince
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from portal import resources, services
from portal.forms import CheckAccessForm, ClockForm, ResourceGroupForm, RoleAssignmentForm
from portal.middleware import SESSION_PERSONA
from portal.models import LabPersona, Operation, ResourceGroup, Subscription
from portal.shortcuts import (
    BadInput, can, filter_by_id, form_errors_from, get_visible_or_404, page_number, require_id, safe_next, search_text,
    unknown_filters, visible,
)
from portal.templatetags.portal_ui import describe_scope, describe_scopes
from security import clock, scopes
from security import services as security_services
from security.models import ActivityLogEntry, Alert, Principal, RoleAssignment
from security.rbac import active_assignments, authorize


class SignInView(auth_views.LoginView):
    """Django's sign-in, plus the demo sign-ins when the portal runs as a lab."""

    template_name = "portal/signin.html"
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        if settings.STRONGROOM_LAB_MODE:
            demo = [{"username": "trainer", "name": "Terry Trainer", "title": "Trainer",
                     "description": "Owner of everything; can play the personas and move the lab clock."}]
            for persona in LabPersona.objects.select_related("principal__user"):
                user = persona.principal.user
                if user is not None:
                    demo.append({"username": user.get_username(), "name": persona.principal.display_name,
                                 "title": persona.title, "description": persona.description})
            context["demo_accounts"] = demo
            context["demo_password"] = settings.STRONGROOM_DEMO_PASSWORD
        return context


@login_required
def home(request):
    principal = request.principal
    subscriptions = list(services.subscriptions_for(principal))
    groups = services.resource_groups_for(principal)
    assignments = list(active_assignments(principal).order_by("scope", "role__name"))
    scope_info = describe_scopes(a.scope for a in assignments)
    for assignment in assignments:
        assignment.scope_info = scope_info[scopes.normalize(assignment.scope).lower()]
    recent = list(_activity_for(principal)[:6])
    _attach_scope_info(recent)
    return render(
        request,
        "portal/home.html",
        {
            "subscriptions": subscriptions,
            "resource_groups": groups[:8],
            "resource_group_count": groups.count(),
            "my_assignments": assignments,
            "recent_activity": recent,
            "new_alerts": Alert.objects.filter(_alert_visibility(principal), state=Alert.State.NEW).count(),
            "can_create_group": any(
                can(principal, services.RESOURCE_GROUP_WRITE, s.resource_id + "/resourceGroups/x") for s in subscriptions
            ),
        },
    )


@login_required
@require_GET
def search(request):
    query = search_text(request.GET.get("q", ""))
    results = []
    if query:
        for rtype in resources.all_types():
            rows = visible(request.principal, rtype.model.objects.all(), rtype.read_action)
            field = "display_name" if rtype.model is Subscription else "name"
            for obj in rows.filter(**{f"{field}__icontains": query})[:10]:
                results.append(
                    {
                        "label": rtype.label,
                        "name": str(obj),
                        "url": rtype.url_for(obj),
                        "id": obj.resource_id,
                        "where": _where(obj),
                    }
                )
    from portal.pages import find_service_pages

    service_pages = find_service_pages(query, trainer=services.can_play_personas(request.user)) if query else []
    template = "portal/search.html#results" if request.htmx else "portal/search.html"
    return render(request, template, {"query": query, "results": results, "service_pages": service_pages})


def _where(obj) -> str:
    """Where a search hit lives, in words: its subscription, or its resource group."""
    if isinstance(obj, Subscription):
        return ""
    if isinstance(obj, ResourceGroup):
        return obj.subscription.display_name
    group = getattr(obj, "resource_group", None)
    return f"{group.name} · {group.subscription.display_name}" if group else ""


# --- subscriptions ----------------------------------------------------------------------------


@login_required
def subscription_list(request):
    principal = request.principal
    groups = list(services.resource_groups_for(principal))
    assignments = list(active_assignments(principal))
    rows = []
    for subscription in services.subscriptions_for(principal):
        roles = sorted(
            {a.role.name for a in assignments if scopes.covers(a.scope, subscription.resource_id)}
        )
        rows.append(
            {
                "subscription": subscription,
                "group_count": sum(1 for g in groups if g.subscription_id == subscription.pk),
                "roles": roles,
            }
        )
    return render(request, "portal/subscription_list.html", {"rows": rows})


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
            "blade": "overview",
            "can_create_group": can(
                request.principal, services.RESOURCE_GROUP_WRITE, subscription.resource_id + "/resourceGroups/x"
            ),
        },
    )


# --- resource groups --------------------------------------------------------------------------


@login_required
def resource_group_list(request):
    groups = services.resource_groups_for(request.principal)
    subscription_filter = request.GET.get("subscription", "").strip()
    groups = filter_by_id(groups, "subscription_id", subscription_filter)  # an unknown id: an empty list
    page = Paginator(groups, 25).get_page(page_number(request.GET.get("page")))
    return render(
        request,
        "portal/resource_group_list.html",
        {
            "page": page,
            "subscriptions": services.subscriptions_for(request.principal),
            "subscription_filter": subscription_filter,
            "unknown_filters": unknown_filters({"subscription": subscription_filter}, {"subscription": "subscription"}),
        },
    )


DEFAULT_REGION = "eastus"  # preselected, as the portal preselects a sensible default


@login_required
def resource_group_create(request):
    subscriptions = services.subscriptions_for(request.principal)
    initial = {"region": DEFAULT_REGION}
    if request.GET.get("subscription"):
        initial["subscription"] = request.GET.get("subscription")
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
    writable = [
        s for s in subscriptions if can(request.principal, services.RESOURCE_GROUP_WRITE, s.resource_id + "/resourceGroups/x")
    ]
    return render(
        request,
        "portal/resource_group_create.html",
        {"form": form, "writable_subscriptions": writable, "has_subscriptions": subscriptions.exists()},
    )


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
            "blade": "overview",
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
    return render(
        request,
        "portal/resource_group_delete.html",
        {
            "group": group,
            "resource": group,
            "error": error,
            "contents": services.resources_in_group(group),
            "can_delete": can(request.principal, services.RESOURCE_GROUP_DELETE, group.resource_id),
            "blade": "overview",
        },
    )


# --- IAM ----------------------------------------------------------------------------------------


def _scope_context(request, scope: str):
    """The resource behind an IAM scope, 404 when it does not exist or cannot be read."""
    scope = scopes.normalize(scope)
    rtype = resources.type_of(scope)
    obj = resources.resolve(scope) if rtype else None
    if obj is None or not authorize(request.principal, rtype.read_action, obj.resource_id).allowed:
        raise Http404("No such resource, or you do not have access to it.")
    return scope, rtype, obj


def _capabilities(rtype, scope: str) -> list[tuple[str, str]]:
    """What "Check access" asks about at a scope: (plain words, action), per kind of resource."""
    label = rtype.label.lower()
    manage_access = ("Manage access here (add or remove role assignments)", security_services.ROLE_ASSIGNMENT_WRITE)
    # Resources that live in groups (vaults, ...): "Create backup vaults here", from the registry.
    contained = [
        (f"Create {t.label[0].lower() + t.label[1:]}s here", _action_base(t.read_action) + "/write")
        for t in resources.all_types()
        if t.in_resource_group
    ]
    if rtype.model is Subscription:
        return [
            ("Read this subscription and what is in it", services.SUBSCRIPTION_READ),
            ("Create resource groups in it", services.RESOURCE_GROUP_WRITE),
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
    rows = [
        {
            "entry": entry,
            "assignment": entry.assignment,
            "inherited": entry.inherited,
            "from": info[scopes.normalize(entry.assignment.scope).lower()],
        }
        for entry in entries
    ]
    tab = request.GET.get("tab", "assignments")
    if tab not in ("assignments", "add", "check"):
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
        "can_write": can(request.principal, security_services.ROLE_ASSIGNMENT_WRITE, scope),
        "can_delete": can(request.principal, security_services.ROLE_ASSIGNMENT_DELETE, scope),
        "tab": tab,
        "blade": "iam",
        "lab_now": clock.now(),
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
    # Inherited assignments are removed where they are assigned (as in Azure), not from below.
    if scopes.normalize(assignment.scope).lower() != scope.lower():
        raise Http404("That assignment is not assigned at this scope.")
    security_services.remove_role_assignment(request.principal, assignment)
    messages.success(request, f"Removed {assignment.role.name} for {assignment.principal.display_name}.")
    return redirect(f"{reverse('portal:iam')}?scope={scope}")


@login_required
def iam_check_access(request):
    scope, rtype, obj = _scope_context(request, request.GET.get("scope", ""))
    form = CheckAccessForm(request.GET if "member" in request.GET else None)
    result = None
    capabilities = []
    if form.is_valid():
        result = security_services.check_access(request.principal, form.cleaned_data["member"], scope)
        capabilities = [
            {"label": label, "action": action, "allowed": result.can(action)} for label, action in _capabilities(rtype, scope)
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
TIMESPAN_LABELS = [("1h", "Last hour"), ("24h", "Last 24 hours"), ("7d", "Last 7 days"), ("30d", "Last 30 days")]


@login_required
def activity_log(request):
    entries = _activity_for(request.principal).select_related("principal__persona")
    filters = {k: request.GET.get(k, "") for k in ("timespan", "status", "operation", "caller", "scope")}
    for k in ("operation", "caller", "scope"):  # free text, searched with LIKE
        filters[k] = search_text(filters[k], name=f"'{k}' filter")
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
    visible_entries = _activity_for(request.principal)
    # Newest first by insertion order (the id), not by the lab-time stamp: entries written while the
    # lab clock was ahead happened before those written after "Reset to real time".
    page = Paginator(entries.order_by("-id"), 50).get_page(page_number(request.GET.get("page")))
    _attach_scope_info(page.object_list)
    return render(
        request,
        "portal/activity_log.html",
        {
            "page": page,
            "filters": filters,
            "filtered": any(filters.values()),
            "timespans": TIMESPAN_LABELS,
            "statuses": ActivityLogEntry.Status.values,
            "operations": sorted(set(visible_entries.order_by().values_list("operation_name", flat=True).distinct())),
            "callers": sorted(set(visible_entries.order_by().values_list("caller", flat=True).distinct())),
        },
    )


def _attach_scope_info(entries) -> None:
    """Give each activity entry a readable scope (name, kind, link), each distinct scope resolved once."""
    entries = list(entries)
    info = describe_scopes(e.scope for e in entries)
    for entry in entries:
        entry.scope_info = info[scopes.normalize(entry.scope).lower()]


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
    page = Paginator(alerts, 50).get_page(page_number(request.GET.get("page")))
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
    persona_id = request.POST.get("persona", "").strip()
    persona = None
    if persona_id:  # empty: back to yourself
        persona = LabPersona.objects.filter(pk=require_id(persona_id, "persona")).first()
        if persona is None:
            raise BadInput(f"There is no lab persona {persona_id}. Choose one from the 'Playing' list in the top bar.")
    services.assume_persona(request.user, request.real_principal, persona)
    if persona is None:
        request.session.pop(SESSION_PERSONA, None)
        messages.info(request, "You are acting as yourself again.")
    else:
        request.session[SESSION_PERSONA] = persona.pk
        messages.info(request, f"You are now playing {persona.title} ({persona.principal.display_name}).")
    return redirect(safe_next(request, reverse("portal:home")))


@login_required
def lab_clock(request):
    # Only a principal holding the lab-clock action at the root sees the page (the trainer, Owner
    # there); moving it goes through the guarded service all the same.
    if not security_services.can_move_lab_clock(request.real_principal):
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
    now = clock.now()
    real = clock.is_real_time()
    ahead_by = "" if real else timesince(now - dt.timedelta(seconds=clock.offset_seconds()), now, depth=2)
    return render(request, "portal/lab_clock.html", {"form": form, "now": now, "real": real, "ahead_by": ahead_by})


@login_required
@require_POST
def check_workers(request):
    if not services.can_play_personas(request.user):
        raise Http404("The worker check is not available.")
    services.check_workers(request.real_principal)
    messages.info(request, "Asked the background workers to answer: watch Notifications.")
    return redirect("portal:lab_clock")
