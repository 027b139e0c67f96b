import functools

from django.conf import settings

from portal.models import LabPersona, Operation
from security import clock


def shell(request):
    """What the top bar needs on every page: who acts, personas, the clock, running operations."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {"lab_mode": settings.STRONGROOM_LAB_MODE}
    from portal.services import can_open_labs, can_play_personas
    from security.services import can_move_lab_clock

    offset = clock.offset_seconds()
    owner = getattr(request, "real_principal", None) or getattr(request, "principal", None)
    trainer = can_play_personas(owner)  # a Lab Instructor (lab mode)
    # Lazy and read at most once: counted where the top bar shows them (full pages), never on a polled part.
    running = _once(lambda: Operation.objects.filter(
        principal=owner, dismissed=False, status=Operation.Status.IN_PROGRESS).count()) if owner is not None else 0
    from security.mua import approvals_for

    return {
        "lab_mode": settings.STRONGROOM_LAB_MODE,
        "is_trainer": trainer,
        # Access requests waiting for the acting principal's approval (the badge beside Approvals).
        # Lazy: counted only where a full page shows the navigation, never on a polled fragment.
        "approvals_pending": (lambda: approvals_for(request.principal).count()) if request.principal is not None else 0,
        "personas": _once(lambda: list(LabPersona.objects.select_related("principal"))) if trainer else [],
        "acting_principal": request.principal,
        "real_principal": request.real_principal,
        "current_persona": request.persona,
        "lab_clock_now": clock.now() if offset else None,
        # Called only by the templates that show the Lab clock entry (one query, on full pages).
        "can_move_lab_clock": (lambda: can_move_lab_clock(owner)) if settings.STRONGROOM_LAB_MODE else False,
        # Likewise for the Training labs entry (the labs app's pages act as the real person, never a persona).
        "can_open_labs": (lambda: can_open_labs(owner)) if settings.STRONGROOM_LAB_MODE else False,
        # Security > Sign-in lockouts: None for whoever may not read them, else how many are in force now.
        "signin_lockouts_nav": lambda: _signin_lockouts_nav(request.principal),
        # Security > App registrations: shown to whoever may read them (Reader or more at the root).
        "app_registrations_nav": lambda: _can_read_apps(request.principal),
        "lab_clock_offset": offset,
        "notifications_running": running,
    }


def _once(read):
    """``read`` as a template value: called where a template first uses it, then remembered (a template
    calls a callable each time it names it)."""
    return functools.cache(read)


def _signin_lockouts_nav(principal):
    from security import scopes, signin
    from security.operations import SIGN_IN_LOCKOUT_READ
    from security.rbac import authorize

    if principal is None or not authorize(principal, SIGN_IN_LOCKOUT_READ, scopes.ROOT).allowed:
        return None
    return len(signin.current_lockouts())


def _can_read_apps(principal) -> bool:
    from security import applications

    return principal is not None and applications.may_list(principal)
