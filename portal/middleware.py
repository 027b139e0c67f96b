"""Who acts for this request: the signed-in user's principal, or the lab persona they play."""

import contextlib
import uuid

from portal.models import LabPersona
from security import context, rbac
from security.services import principal_for_user

SESSION_PERSONA = "lab_persona_id"


class PrincipalMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.principal = None
        request.real_principal = None
        request.persona = None
        if request.user.is_authenticated:
            from portal.services import can_play_personas

            own = principal_for_user(request.user)
            request.real_principal = own
            request.principal = own
            persona_id = request.session.get(SESSION_PERSONA)
            if persona_id and can_play_personas(own):  # the Lab Instructor role, checked on every request
                persona = LabPersona.objects.select_related("principal").filter(pk=persona_id).first()
                if persona is not None:
                    request.persona = persona
                    request.principal = persona.principal
        played_as = request.persona.title if request.persona else ""
        reads = rbac.reading() if request.method in ("GET", "HEAD") else contextlib.nullcontext()
        with context.acting(real_actor=request.real_principal, correlation=uuid.uuid4(), played_as=played_as), reads:
            return self.get_response(request)


# --- a database outage -----------------------------------------------------------------------------

RETRY_AFTER_SECONDS = 5
# SQLite reports some query errors (e.g. "LIKE or GLOB pattern too complex") as OperationalError too:
# only these mean its database could not be reached.
SQLITE_OUTAGE = ("database is locked", "unable to open database file", "disk i/o error")


def is_database_outage(exc) -> bool:
    """The database did not answer (refused, closed the connection, timed out), as opposed to a query error."""
    from django.db import InterfaceError, OperationalError

    if not isinstance(exc, (OperationalError, InterfaceError)):
        return False
    cause = exc.__cause__
    if cause is not None and type(cause).__module__.startswith("sqlite3"):
        return str(exc).lower().startswith(SQLITE_OUTAGE)
    return True


def outage_response(request):
    """The friendly 503 page. Rendered without the database: no user, no context processors."""
    import logging

    from django.http import HttpResponse
    from django.template.loader import render_to_string

    logging.getLogger("strongroom.outage").warning("Database unavailable during %s %s", request.method, request.path)
    reload_by_itself = request.method in ("GET", "HEAD")
    html = render_to_string("portal/unavailable.html", {"retry_after": RETRY_AFTER_SECONDS, "path": request.path,
                                                        "reload_by_itself": reload_by_itself})
    response = HttpResponse(html, status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response


def _remember_outage(sender, request=None, **kwargs):
    """An outage raised outside a view (the session, the user, a middleware's query) reaches Django's 500
    handling, not `process_exception`: note it on the request so `DatabaseUnavailableMiddleware` answers 503."""
    import sys

    if request is not None and is_database_outage(sys.exc_info()[1]):
        request._database_outage = True


class DatabaseUnavailableMiddleware:
    """First in MIDDLEWARE: any page that meets a database outage answers 503 with Retry-After instead
    of a server error. Nothing to undo afterwards: Django drops the broken connection at the end of the
    request, and CONN_HEALTH_CHECKS makes the next request open a new one."""

    def __init__(self, get_response):
        from django.core.signals import got_request_exception

        got_request_exception.connect(_remember_outage, dispatch_uid="strongroom-database-outage")
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if getattr(request, "_database_outage", False):
            return outage_response(request)
        return response

    def process_exception(self, request, exception):
        if is_database_outage(exception):
            return outage_response(request)
        return None
