"""Resource Guard pages, the Approvals queue, My access requests and the Request access form.

Thin: reads start from `security.mua.guards_visible_to` (a guard the principal may not read is 404),
writes call `security.mua`; a GuardDenied that is not caught becomes the explained 403 page.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from portal import resources
from portal import services as portal_services
from portal.models import Region
from portal.mua import forms
from portal.shortcuts import can, delete_or_explain, parse_uuid, report_outcome, require_id, safe_next, submit
from portal.wizards import TabbedWizardView
from security import clock, mua
from security.guards import GuardDenied, evaluate
from security.models import AccessRequest, Principal, ResourceGuard
from security.operations import GUARD_DELETE, GUARD_WRITE


def _guard_or_404(request, pk) -> ResourceGuard:
    guard = mua.guards_visible_to(request.principal).filter(pk=pk).first()
    if guard is None:
        raise Http404("No such Resource Guard, or you do not have access to it.")
    return guard


def _require(request, operation, guard) -> None:
    """A principal who can read the guard but not change it meets the explained denial at once."""
    decision = evaluate(request.principal, operation, guard)
    if not decision.allowed:
        raise GuardDenied(decision)


def _linked(guard) -> list[dict]:
    rows = []
    for proxy in guard.proxies.all():
        rid = proxy.protected_resource_id
        rows.append({"proxy": proxy, "name": proxy.protected_resource_name, "url": resources.url_of(rid),
                     "label": resources.label_of(rid), "resource_group": rid.split("/")[4] if rid.count("/") > 4 else ""})
    return rows


def _guard_context(request, guard, blade, **extra):
    principal = request.principal
    return {
        "guard": guard,
        "resource": guard,
        "blade": blade,
        "approvers": list(guard.approvers.all()),
        "auto_approval_warning": mua.AUTO_APPROVAL_WARNING,
        "can_write": can(principal, GUARD_WRITE, guard.resource_id),
        "can_delete": can(principal, GUARD_DELETE, guard.resource_id),
        "subscription": resources.resolve(guard.subscription_id),
        "resource_group": resources.resolve(guard.resource_group_id),
        "region_name": _region_name(guard.region),
        "my_grant": mua.active_grant(principal, guard),
        "my_pending": mua.pending_request(principal, guard),
        **extra,
    }


def _region_name(name: str) -> str:
    region = Region.objects.filter(pk=name).first()
    return region.display_name if region else name


# --- list and create ----------------------------------------------------------------------------


@login_required
def guard_list(request):
    principal = request.principal
    guards = list(mua.guards_visible_to(principal).prefetch_related("proxies"))
    for guard in guards:
        guard.region_name = _region_name(guard.region)
        guard.linked_count = len(guard.proxies.all())
        guard.group_name = guard.resource_group_name
        sub = resources.resolve(guard.subscription_id)
        guard.subscription_name = str(sub) if sub else guard.subscription_id
    can_create = portal_services.resource_groups_for(principal, GUARD_WRITE).exists()
    return render(request, "security/guard_list.html", {"guards": guards, "can_create": can_create})


class GuardCreateWizard(LoginRequiredMixin, TabbedWizardView):
    form_list = [
        ("basics", forms.GuardBasicsForm),
        ("operations", forms.ProtectedOperationsForm),
        ("approvers", forms.ApproversForm),
        ("review", forms.GuardReviewForm),
    ]
    step_titles = {"basics": "Basics", "operations": "Protected operations", "approvers": "Approvers"}
    step_templates = {
        "basics": "security/wizard/_basics.html",
        "operations": "security/wizard/_operations.html",
        "approvers": "security/wizard/_approvers.html",
    }
    title = "Create Resource Guard"
    subtitle = "Resource Guard"
    submit_label = "Create"
    error_field_aliases = {"vault_critical_operation_exclusions": "protected"}

    def get_prefix(self, request, *args, **kwargs):
        return "guard_create"

    def get_breadcrumbs(self):
        return [("Resource Guards", reverse("mua:guard_list"))]

    def get_form_kwargs(self, step=None):
        return {"principal": self.request.principal}

    def get_context_data(self, form, **kwargs):
        context = super().get_context_data(form=form, **kwargs)
        context["mandatory_operations"] = [c for c in mua.CRITICAL_OPERATIONS if c.mandatory]
        if self.steps.current == "operations":
            optional = [c for c in mua.CRITICAL_OPERATIONS if not c.mandatory]
            context["optional_rows"] = list(zip(form["protected"], optional))
        return context

    def done(self, form_list, form_dict, **kwargs):
        basics = form_dict["basics"].cleaned_data
        guard = mua.create_resource_guard(
            self.request.principal,
            resource_group_id=basics["resource_group"].resource_id,
            name=basics["name"],
            region=basics["region"].pk,
            description=basics.get("description", ""),
            exclusions=form_dict["operations"].exclusions(),
            approvers=list(form_dict["approvers"].cleaned_data.get("approvers") or []),
        )
        messages.success(self.request, f"Resource Guard '{guard.name}' was created.")
        return redirect("mua:guard_detail", pk=guard.pk)


# --- the guard's page ---------------------------------------------------------------------------


@login_required
def guard_detail(request, pk):
    guard = _guard_or_404(request, pk)
    return render(request, "security/guard_overview.html",
                  _guard_context(request, guard, "overview", linked=_linked(guard)))


@login_required
def guard_operations(request, pk):
    """Properties > Backup vault: Disable per optional operation, then Save (mandatory ones locked)."""
    guard = _guard_or_404(request, pk)
    rows = mua.protected_operations(guard)
    error = None
    status = 200
    if request.method == "POST":
        _require(request, GUARD_WRITE, guard)
        # Each optional row posts "protect" or "disable"; mandatory ones post nothing and are ignored.
        exclusions = []
        for c in mua.CRITICAL_OPERATIONS:
            if request.POST.get(f"op-{c.action}") == "disable":
                exclusions.append(c.action)
        try:
            mua.update_resource_guard(request.principal, guard, exclusions=exclusions)
        except ValidationError as exc:
            error, status = " ".join(exc.messages), 400
        else:
            messages.success(request, f"Protected operations of '{guard.name}' were saved.")
            return redirect("mua:guard_operations", pk=guard.pk)
    return render(request, "security/guard_operations.html",
                  _guard_context(request, guard, "operations", rows=rows, error=error), status=status)


@login_required
def guard_approvers(request, pk):
    guard = _guard_or_404(request, pk)
    form = forms.ApproversForm(request.POST if request.method == "POST" else None,
                               initial={"approvers": [p.pk for p in guard.approvers.all()]})
    desc_form = forms.DescriptionForm(initial={"description": guard.description})
    status = 200
    if request.method == "POST":
        _require(request, GUARD_WRITE, guard)
        if request.POST.get("form") == "description":
            desc_form = forms.DescriptionForm(request.POST)
            saved = submit(
                request, desc_form,
                lambda: mua.update_resource_guard(request.principal, guard, description=desc_form.cleaned_data["description"]),
                lambda _: "The description was saved.", "mua:guard_approvers", pk=guard.pk,
            )
            if saved:
                return saved
            form = forms.ApproversForm(initial={"approvers": [p.pk for p in guard.approvers.all()]})
        else:
            saved = submit(request, form,
                           lambda: mua.set_approvers(request.principal, guard, list(form.cleaned_data["approvers"])),
                           lambda _: f"Approvers of '{guard.name}' were saved.", "mua:guard_approvers", pk=guard.pk)
            if saved:
                return saved
        status = 400
    return render(request, "security/guard_approvers.html",
                  _guard_context(request, guard, "approvers", form=form, desc_form=desc_form), status=status)


@login_required
def guard_delete(request, pk):
    guard = _guard_or_404(request, pk)
    _require(request, GUARD_DELETE, guard)
    error, status = None, 200
    if request.method == "POST":
        if request.POST.get("confirm_name", "").strip() != guard.name:
            error, status = f"Type the Resource Guard name '{guard.name}' to confirm.", 400
        else:
            done, error = delete_or_explain(request, lambda: mua.delete_resource_guard(request.principal, guard),
                                            f"Resource Guard '{guard.name}' was deleted.", "mua:guard_list")
            if done is not None:
                return done
            status = 409
    return render(request, "security/guard_delete.html",
                  _guard_context(request, guard, "overview", linked=_linked(guard), error=error), status=status)


# --- requests -----------------------------------------------------------------------------------


def _request_outcome(guard: ResourceGuard, access: AccessRequest) -> str:
    if access.state == AccessRequest.State.APPROVED:
        return (f"Approved automatically (the guard has no approvers): you hold {access.role.name} on "
                f"'{guard.name}' until {access.expires_at:%Y-%m-%d %H:%M} UTC.")
    return f"Your request was sent for approval to {', '.join(a.display_name for a in guard.approvers.all())}."


@login_required
def request_access(request, pk):
    """The Request access form (from the denial page, or the guard's page)."""
    guard = _guard_or_404(request, pk)
    operation = (request.POST.get("operation") or request.GET.get("operation") or "").strip()
    target = (request.POST.get("target") or request.GET.get("target") or "").strip()
    critical = mua.critical_operation(operation)
    form = forms.RequestAccessForm(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        sent = submit(
            request, form,
            lambda: mua.request_access(
                request.principal, guard, justification=form.cleaned_data["justification"],
                hours=form.cleaned_data["hours"], operation=critical.action if critical else "",
                target_resource_id=target if critical else "",
            ),
            lambda access: _request_outcome(guard, access), "mua:my_requests",
        )
        if sent:
            return sent
        status = 400
    return render(request, "security/request_access.html", {
        "guard": guard, "form": form, "critical": critical, "target": target, "operation": operation,
        "target_url": resources.url_of(target) if target else "", "target_name": target.rsplit("/", 1)[-1] if target else "",
        "approvers": list(guard.approvers.all()), "next": safe_next(request, ""),
        "my_grant": mua.active_grant(request.principal, guard), "my_pending": mua.pending_request(request.principal, guard),
    }, status=status)


def _display_state(access: AccessRequest, now) -> tuple[str, str]:
    """(label, status class): an approved grant past its end shows as Expired before the task runs."""
    state = access.state
    if state == AccessRequest.State.APPROVED and access.expires_at and access.expires_at <= now:
        state = AccessRequest.State.EXPIRED
    if state == AccessRequest.State.PENDING and access.created_at + mua.PENDING_REQUEST_LIFETIME <= now:
        state = AccessRequest.State.EXPIRED
    label = AccessRequest.State(state).label
    if state == AccessRequest.State.APPROVED:
        label = "Active"
    css = {
        AccessRequest.State.PENDING: "status-running",
        AccessRequest.State.APPROVED: "status-ok",
        AccessRequest.State.REJECTED: "status-failed",
        AccessRequest.State.EXPIRED: "status-info",
        AccessRequest.State.CANCELLED: "status-info",
    }[state]
    return label, css


def _last(resource_id: str) -> str:
    return resource_id.rstrip("/").rsplit("/", 1)[-1] if resource_id else ""


def _remaining_text(delta) -> str:
    if delta is None:
        return ""
    minutes = int(delta.total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min left"
    return f"{minutes} min left" if minutes else "less than a minute left"


@login_required
def my_requests(request):
    now = clock.now()
    rows = []
    for access in mua.requests_of(request.principal).order_by("-created_at")[:100]:
        label, css = _display_state(access, now)
        rows.append({"access": access, "state_label": label, "state_class": css,
                     "remaining": _remaining_text(mua.remaining(access, now)),
                     "decided_by": mua.approvers_label(access), "duration": mua.duration_label(access.duration),
                     "operation": mua.critical_operation(access.operation),
                     "target_name": _last(access.target_resource_id)})
    return render(request, "security/my_requests.html", {"rows": rows, "now": now})


@login_required
@require_POST
def cancel_request(request, request_id):
    access = get_object_or_404(AccessRequest.objects.select_related("guard"), pk=request_id,
                               requester=request.principal)
    report_outcome(request, lambda: mua.cancel_request(request.principal, access),
                   lambda _: f"Your request on '{access.guard.name}' was cancelled.")
    return redirect("mua:my_requests")


# --- approvals ----------------------------------------------------------------------------------


@login_required
def approvals(request):
    principal = request.principal
    pending = list(mua.approvals_for(principal))
    errors = {}
    status = 200
    if request.method == "POST":
        access = get_object_or_404(AccessRequest.objects.select_related("guard", "requester", "role"),
                                   pk=require_id(request.POST.get("request_id"), "access request", parse=parse_uuid))
        form = forms.DecisionForm(request.POST)
        if form.is_valid():
            decide = mua.approve_request if form.cleaned_data["decision"] == "approve" else mua.reject_request
            try:
                decide(principal, access, comment=form.cleaned_data["comment"])
            except ValidationError as exc:
                errors[str(access.pk)] = " ".join(exc.messages)
            else:
                verb = "Approved" if decide is mua.approve_request else "Rejected"
                messages.success(request, f"{verb} {access.requester.display_name}'s request on "
                                          f"'{access.guard.name}'.")
                return redirect("mua:approvals")
        else:
            errors[str(access.pk)] = " ".join(e for errs in form.errors.values() for e in errs)
        status = 400
    now = clock.now()
    decided = (
        AccessRequest.objects.select_related("guard", "requester", "role", "role_played_by")
        .filter(decided_by=principal).order_by("-decided_at")[:20]
    )
    recent = []
    for access in decided:
        label, css = _display_state(access, now)
        recent.append({"access": access, "state_label": label, "state_class": css})
    rows = [{"access": a, "operation": mua.critical_operation(a.operation), "error": errors.get(str(a.pk), ""),
             "duration": mua.duration_label(a.duration), "target_name": _last(a.target_resource_id),
             "target_url": resources.url_of(a.target_resource_id) if a.target_resource_id else ""}
            for a in pending]
    guards_i_approve = list(principal.approver_of_guards.all()) if isinstance(principal, Principal) else []
    return render(request, "security/approvals.html",
                  {"rows": rows, "recent": recent, "guards_i_approve": guards_i_approve}, status=status)
