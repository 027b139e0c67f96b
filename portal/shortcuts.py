"""Helpers every app's views use: visibility-aware lookups and the denial page."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import render

from security.guards import GuardDenied
from security.rbac import authorize, visible_to


def visible(principal, queryset, read_action: str, field: str = "resource_id"):
    """Rows of ``queryset`` the principal may read; every list starts here."""
    return queryset.filter(visible_to(principal, read_action).q(field))


def get_visible_or_404(principal, queryset, read_action: str, **lookup):
    """The object, or 404 when it does not exist *or* the principal may not read it."""
    try:
        obj = queryset.filter(**lookup).first()
    except (ValidationError, ValueError):  # a malformed id (e.g. not a UUID) names nothing
        raise Http404("No such resource, or you do not have access to it.") from None
    if obj is None or not authorize(principal, read_action, obj.resource_id).allowed:
        raise Http404("No such resource, or you do not have access to it.")
    return obj


def can(principal, action: str, resource_id: str) -> bool:
    return authorize(principal, action, resource_id).allowed


def render_denied(request, exc: GuardDenied, status: int = 403):
    return render(request, "portal/denied.html", {"decision": exc.decision}, status=status)


def form_errors_from(form, exc: ValidationError) -> None:
    """Put a service's ValidationError onto the form: field errors beside fields, the rest on top."""
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)


class GuardDeniedMiddleware:
    """Turn a refusal that reaches the top into the explained 403 page."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, GuardDenied):
            return render_denied(request, exception)
        return None
