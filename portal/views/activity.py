"""What happened and what needs attention: the activity log, alerts and the notifications panel."""

from __future__ import annotations

import datetime as dt

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseStopPolling

from portal import services
from portal.models import Operation
from portal.shortcuts import page_number, report_outcome, search_text
from portal import resources
from portal.templatetags.portal_ui import ScopeInfo, describe_scope, describe_scopes
from security import chain_check, clock, scopes
from security import operations as ops
from security import services as security_services
from security.models import ActivityLogCheck, ActivityLogEntry, Alert
from security.rbac import active_assignments, authorize, reaches_resources

# --- activity log -------------------------------------------------------------------------------


def reads_whole_log(principal) -> bool:
    """A role with actions at the root: every entry is visible (and so is the chain's size)."""
    return any(scopes.normalize(a.scope) == scopes.ROOT and reaches_resources(a.role)
               for a in active_assignments(principal).select_related("role"))


def activity_for(principal):
    """Entries at scopes where the principal holds any role (Azure: read on the scope). A role of data actions
    only (Strongroom's Lab Trainee and Lab Instructor at '/') reads no resource, so it shows no entry, as it
    shows no subscription (`services.subscriptions_for`)."""
    held = [a.scope for a in active_assignments(principal).select_related("role") if reaches_resources(a.role)]
    if any(scopes.normalize(s) == scopes.ROOT for s in held):
        return ActivityLogEntry.objects.all()
    query = Q(principal_ref=principal)
    for scope in held:
        query |= Q(scope__iexact=scope) | Q(scope__istartswith=scope.rstrip("/") + "/")
    return ActivityLogEntry.objects.filter(query)


def filter_scope(principal, text: str) -> ScopeInfo | None:
    """What the scope filter names: the resource, by its name, for whoever may read it; else only the text
    typed (a resource id must not tell its name to someone who cannot see the resource)."""
    if not text:
        return None
    rtype = resources.type_of(text)
    if rtype is None or authorize(principal, rtype.read_action, scopes.normalize(text)).allowed:
        return describe_scope(text)
    return ScopeInfo(text, text, rtype.label, "")


TIMESPANS = {"1h": dt.timedelta(hours=1), "24h": dt.timedelta(hours=24), "7d": dt.timedelta(days=7), "30d": dt.timedelta(days=30)}
TIMESPAN_LABELS = [("1h", "Last hour"), ("24h", "Last 24 hours"), ("7d", "Last 7 days"), ("30d", "Last 30 days")]


@login_required
def activity_log(request):
    entries = activity_for(request.principal)
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
    visible_entries = activity_for(request.principal)
    # Newest first by insertion order (the id), not by the lab-time stamp: entries written while the
    # lab clock was ahead happened before those written after "Reset to real time".
    page = Paginator(entries.order_by("-id"), 50).get_page(page_number(request.GET.get("page")))
    attach_scope_info(page.object_list)
    return render(
        request,
        "portal/activity_log.html",
        {
            "page": page,
            "filters": filters,
            "filtered": any(filters.values()),
            "filter_scope": filter_scope(request.principal, filters["scope"]),
            "timespans": TIMESPAN_LABELS,
            "statuses": ActivityLogEntry.Status.values,
            "operations": sorted(set(visible_entries.order_by().values_list("operation_name", flat=True).distinct())),
            "callers": sorted(set(visible_entries.order_by().values_list("caller", flat=True).distinct())),
            "chain": chain_state(request.principal),
        },
    )


def chain_state(principal) -> dict:
    """What the page says of the hash chain: its last check, in full for those who see the whole log (the
    others get its state and time, not the log's size)."""
    check = chain_check.latest()
    if check is not None and not check.state:
        check = None  # a check is under way for the first time
    return {
        "check": check,
        "broken": check is not None and check.state == ActivityLogCheck.State.BROKEN,
        "kind": chain_check.KIND_LABELS.get(check.break_kind, check.break_kind) if check else "",
        "what_to_do": chain_check.what_to_do(check) if check else "",
        "whole": reads_whole_log(principal),
        "verify_action": ops.ACTIVITY_LOG_VERIFY,
        "root": scopes.ROOT,
    }


@login_required
@require_POST
def activity_log_verify(request):
    """Verify now: walk the chain at once (about a second per 100,000 entries) and say how it went."""
    check = chain_check.verify_now(request.principal)
    if check.state == ActivityLogCheck.State.BROKEN:
        messages.error(request, f"The activity log's chain is broken at entry #{check.break_sequence}: "
                                f"{chain_check.KIND_LABELS.get(check.break_kind, check.break_kind)}.")
    else:
        messages.success(request, f"Verified: {check.entries_checked:,} entries, the chain is unbroken.")
    return redirect("portal:activity_log")


def attach_scope_info(entries) -> None:
    """Give each activity entry a readable scope (name, kind, link), each distinct scope resolved once."""
    entries = list(entries)
    info = describe_scopes(e.scope for e in entries)
    for entry in entries:
        entry.scope_info = info[scopes.normalize(entry.scope).lower()]


# --- alerts ----------------------------------------------------------------------------------------


@login_required
def alert_list(request):
    alerts = Alert.objects.filter(alert_visibility(request.principal))
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


def alert_visibility(principal):
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
    alert = Alert.objects.filter(alert_visibility(request.principal), pk=pk).first()
    if alert is None:
        raise Http404("No such alert, or you do not have access to it.")
    report_outcome(
        request,
        lambda: security_services.change_alert_state(request.principal, alert, request.POST.get("state", "")),
        lambda _: f"Alert '{alert.name}' is now {alert.state}.",
    )
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
