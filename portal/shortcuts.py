"""Helpers every app's views use: visibility-aware lookups, the denial page, and reading ids, page
numbers and search text from query strings and forms without ever turning bad input into a 500."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.core.exceptions import BadRequest, ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme

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


# --- reading input ------------------------------------------------------------------------------------

MAX_ID = 2**63 - 1  # the largest value of a bigint primary key (PostgreSQL and SQLite alike)
MAX_PAGE = 10**6  # more pages than any list has; the offset stays far inside 64 bits
MAX_SEARCH = 200  # characters of search text; a longer LIKE pattern is refused by SQLite ("too complex")


class BadInput(BadRequest):
    """A request value that cannot mean anything: answered 400 with ``message`` (what was wrong, what to
    do) on the portal's page by `GuardDeniedMiddleware`."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def parse_id(value) -> int | None:
    """A database id from a query string or form: ASCII digits in the bigint range, else None.

    ``str.isdigit`` is not enough: it accepts "²" (which ``int`` refuses) and 2**70 (which no database
    column holds)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if 0 < value <= MAX_ID else None
    value = (value or "").strip() if isinstance(value, str) else ""
    if not value or len(value) > 19 or not (value.isascii() and value.isdigit()):
        return None
    number = int(value)
    return number if 0 < number <= MAX_ID else None


def parse_uuid(value) -> uuid.UUID | None:
    """A UUID from a query string or form, else None."""
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str) or not value.strip() or len(value) > 64:
        return None
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        return None


def filter_by_id(queryset, field: str, value, *, parse=parse_id):
    """Filter a list by an id from the query string. No value: unfiltered. A value that names nothing
    (malformed, out of range): an empty list, as a filter on an unknown id would show."""
    if value in (None, ""):
        return queryset
    parsed = parse(value)
    return queryset.filter(**{field: parsed}) if parsed is not None else queryset.none()


def unknown_filters(values: dict, labels: dict, *, parse=parse_id) -> list[dict]:
    """The id filters that name nothing (malformed, out of range), for the empty list to say which:
    [{"label": "vault", "value": "abc"}]."""
    return [{"label": label, "value": values.get(key) or ""} for key, label in labels.items()
            if values.get(key) and parse(values.get(key)) is None]


def page_number(value) -> int:
    """A page number from the query string: junk reads as the first page, a huge number as MAX_PAGE
    (a list clamps it to its last page; an OFFSET past 64 bits would be a database error)."""
    value = value.strip() if isinstance(value, str) else str(value or "")
    if not (value.isascii() and value.isdigit()):
        return 1
    return max(1, min(int(value), MAX_PAGE)) if len(value) <= 9 else MAX_PAGE


def search_text(value, *, name: str = "search") -> str:
    """Search text from the query string, stripped; 400 when it cannot be searched for."""
    text = (value or "").strip()
    if "\x00" in text:
        raise BadInput(f"The {name} text contains a NUL character, which cannot be searched for. "
                       "Remove it and search again.")
    if len(text) > MAX_SEARCH:
        raise BadInput(f"The {name} text is {len(text):,} characters long; use at most {MAX_SEARCH} "
                       "characters and search again.")
    return text


def require_id(value, what: str, *, parse=parse_id):
    """An id a form must carry (a hidden field, a button's value): 400 naming it when missing or malformed."""
    parsed = parse(value)
    if parsed is None:
        shown = "nothing" if not value else f"'{value[:40]}'" if isinstance(value, str) else repr(value)
        raise BadInput(f"The {what} sent with this form is not valid (got {shown}). "
                       "Reload the page and choose it again.")
    return parsed


def can(principal, action: str, resource_id: str) -> bool:
    return authorize(principal, action, resource_id).allowed


def safe_next(request, fallback: str, *, field: str = "next") -> str:
    """The ``next`` URL a form or link carries, when it leads to this site; else ``fallback``.

    Every redirect to a place named by the request goes through here, so no link can send a
    signed-in user to another site ("//evil.example", "https://evil.example", "/\\evil.example").
    Only a path of this site ("/...") is taken: anything else (a bare word would even be looked up
    as a view name by ``redirect``) falls back.
    """
    target = (request.POST.get(field) or request.GET.get(field) or "").strip()
    if target.startswith("/") and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return fallback


def confirmed_delete(request, obj, *, kind: str, delete) -> tuple[bool, str | None]:
    """A delete confirmed by typing the object's name: (deleted, error).

    On a POST whose ``confirm_name`` is ``obj.name``, ``delete()`` runs; its ValidationError (a rule
    that refuses, such as "delete its volumes first") comes back as the error, in words. A GuardDenied
    goes on up, to the explained 403 page.
    """
    if request.method != "POST":
        return False, None
    if request.POST.get("confirm_name", "").strip() != obj.name:
        return False, f"Type the {kind} name '{obj.name}' to confirm."
    try:
        delete()
    except ValidationError as exc:
        return False, " ".join(exc.messages)
    return True, None


def report_outcome(request, action, success, *, level=messages.success) -> bool:
    """Run ``action()`` for a button that comes back to its page, and say how it went there: the words
    ``success(result)`` gives, or the reasons of its ValidationError (a GuardDenied goes on up, to the
    explained 403 page)."""
    try:
        result = action()
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return False
    level(request, success(result))
    return True


def delete_or_explain(request, delete, success: str, redirect_to, **url_kwargs):
    """Run ``delete()`` for a delete page: (the redirect to ``redirect_to``, "") with ``success`` flashed, or
    (None, the words of the ValidationError that refused it) for the page to show again (a 409). A
    GuardDenied goes on up, to the explained 403 page."""
    try:
        delete()
    except ValidationError as exc:
        return None, " ".join(exc.messages)
    messages.success(request, success)
    return redirect(redirect_to, **url_kwargs), ""


def submit(request, form, action, success, redirect_to, **url_kwargs):
    """The flow of a form that, once saved, leaves its page: when ``form`` is valid, ``action()`` calls the
    service and the words ``success(result)`` gives are flashed before redirecting to ``redirect_to`` (a
    view name with ``url_kwargs``, a URL, or a callable giving one from the result). Returns that
    redirect, or None when the page must show the form again: invalid, or the service's ValidationError
    put onto the form. A GuardDenied goes on up, to the explained 403 page."""
    if not form.is_valid():
        return None
    try:
        result = action()
    except ValidationError as exc:
        form_errors_from(form, exc)
        return None
    messages.success(request, success(result))
    target = redirect_to(result) if callable(redirect_to) else redirect_to
    return redirect(target, **url_kwargs)


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
        if isinstance(exception, BadInput):
            return render(request, "portal/bad_input.html", {"message": exception.message}, status=400)
        return None
