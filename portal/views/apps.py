"""App registrations (Entra ID's, for machines): the list, registering one, its page with the client id, the
tenant id and its client secrets (a new secret's value shown once), and deleting a secret or the app.
`security.applications` does the work; the pages call it and say how it went."""

from __future__ import annotations

import secrets as _random

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from portal.api import tokens
from portal.forms import AppRegistrationForm, ClientSecretForm
from portal.shortcuts import confirmed_delete, form_errors_from, report_outcome, submit
from security import applications, clock, scopes
from security.guards import GuardDenied, evaluate
from security.models import AppRegistration, ClientSecret
from security.operations import (
    APPLICATION_CREDENTIALS_UPDATE,
    APPLICATION_DELETE,
    APPLICATION_READ,
)


def _require_read(request) -> None:
    """App registrations open for a reader of the directory, and for one who may register apps of their own
    (who then sees only those)."""
    if not applications.may_list(request.principal):
        raise GuardDenied(evaluate(request.principal, APPLICATION_READ, scopes.ROOT))


def _app(request, pk) -> AppRegistration:
    """An app ``request.principal`` may see (its owner, or a reader of the directory), else 404 (another
    trainee's app is not even said to exist)."""
    _require_read(request)
    return get_object_or_404(applications.visible_applications(request.principal), pk=pk)


def _create_decision(principal):
    return evaluate(principal, applications.creation_action(principal), scopes.ROOT)


@login_required
def app_list(request):
    _require_read(request)
    apps = applications.visible_applications(request.principal).order_by("display_name", "created_at")
    now = clock.now()
    rows = [{"app": a, "secrets": [s for s in a.secrets.all() if applications.is_active(s, now)]}
            for a in apps.prefetch_related("secrets")]
    return render(request, "portal/apps/app_list.html", {
        "rows": rows, "create": _create_decision(request.principal),
    })


@login_required
def app_create(request):
    _require_read(request)
    form = AppRegistrationForm(request.POST or None)
    if request.method == "POST":
        saved = submit(request, form,
                       lambda: applications.create_application(request.principal, form.cleaned_data["display_name"]),
                       lambda app: f"Registered '{app.display_name}'. Add a client secret for it to sign in, then give "
                                   f"it a role in Access control (IAM).",
                       lambda app: reverse("portal:app_detail", args=[app.pk]))
        if saved:
            return saved
    return render(request, "portal/apps/app_create.html", {
        "form": form, "create": _create_decision(request.principal),
    }, status=400 if request.method == "POST" else 200)


def _secret_form(data=None):
    return ClientSecretForm(data, choices=applications.EXPIRY_CHOICES)


# "+ New client secret" answers its POST with the value (no redirect may carry it), so a reload would post the
# form again and add a second secret. Each rendering of the form carries a one-time token; the session keeps
# the last tokens used (never a value), and a form posted again adds nothing.
_USED_TOKENS = "app_secret_forms_used"
_KEPT_TOKENS = 20


def _first_use(request, token: str) -> bool:
    """True the first time this form token is posted (a form without one counts as new)."""
    if not token:
        return True
    used = request.session.get(_USED_TOKENS, [])
    if token in used:
        return False
    request.session[_USED_TOKENS] = (used + [token])[-_KEPT_TOKENS:]
    return True


def _detail(request, app, *, status=200, **extra):
    now = clock.now()
    secrets = [{"secret": s, "expired": not applications.is_active(s, now)} for s in applications.active_secrets(app)]
    context = {
        "app": app, "secrets": secrets, "tenant_id": tokens.tenant_id(), "secret_form": _secret_form(),
        "form_token": _random.token_urlsafe(16),
        "assignments": app.principal.assignments.select_related("role").order_by("scope"),
        "credentials": evaluate(request.principal, APPLICATION_CREDENTIALS_UPDATE, app),
        "can_delete": evaluate(request.principal, APPLICATION_DELETE, app).allowed,
        **extra,
    }
    response = render(request, "portal/apps/app_detail.html", context, status=status)
    response["Cache-Control"] = "no-store"  # a new secret's value is on the page once: no cache keeps it
    return response


@login_required
def app_detail(request, pk):
    return _detail(request, _app(request, pk))


@never_cache
@login_required
@require_POST
def app_secret_add(request, pk):
    """"+ New client secret": the page again, showing the value this once (never stored, never redirected with).
    The same form posted again (a reload) adds nothing and says why."""
    app = _app(request, pk)
    if not _first_use(request, request.POST.get("form_token", "")):
        return _detail(request, app, status=409, resubmitted=True)
    form = _secret_form(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            expires_at = applications.expiry_for(data["expires"], data.get("end_date"))
            secret, value = applications.add_client_secret(request.principal, app, description=data["description"],
                                                           expires_at=expires_at)
        except ValidationError as exc:
            form_errors_from(form, exc)
        else:
            return _detail(request, app, new_secret=secret, new_value=value)
    return _detail(request, app, status=400, secret_form=form, adding=True)


@login_required
@require_POST
def app_secret_remove(request, pk, secret_id):
    app = _app(request, pk)
    secret = get_object_or_404(ClientSecret.objects.select_related("application"), pk=secret_id, application=app)
    report_outcome(request, lambda: applications.remove_client_secret(request.principal, secret),
                   lambda s: f"Deleted the client secret {s.description or s.hint + '…'}: it no longer signs in, and "
                             f"the tokens issued with it no longer work.")
    return redirect("portal:app_detail", pk=pk)


@login_required
def app_delete(request, pk):
    app = _app(request, pk)
    deleted, error = confirmed_delete(request, app, kind="application",
                                      delete=lambda: applications.delete_application(request.principal, app))
    if deleted:
        messages.success(request, f"Deleted the app registration '{app.display_name}', its secrets, its service "
                                  f"principal and its role assignments.")
        return redirect("portal:app_list")
    return render(request, "portal/apps/app_delete.html", {
        "app": app, "error": error, "can_delete": evaluate(request.principal, APPLICATION_DELETE, app).allowed,
        "assignments": app.principal.assignments.select_related("role").order_by("scope"),
    }, status=400 if error else 200)
