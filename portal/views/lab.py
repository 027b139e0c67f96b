"""Lab controls: playing a persona, moving the lab clock, asking the workers to answer."""

from __future__ import annotations

import datetime as dt

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.timesince import timesince
from django.views.decorators.http import require_POST

from portal import services
from portal.forms import ClockForm
from portal.middleware import SESSION_PERSONA
from portal.models import LabPersona
from portal.shortcuts import BadInput, form_errors_from, require_id, safe_next
from security import clock
from security import services as security_services


@login_required
@require_POST
def switch_persona(request):
    if not services.can_play_personas(request.real_principal):
        raise Http404("Lab personas are not available.")
    persona_id = request.POST.get("persona", "").strip()
    persona = None
    if persona_id:  # empty: back to yourself
        persona = LabPersona.objects.filter(pk=require_id(persona_id, "persona")).first()
        if persona is None:
            raise BadInput(f"There is no lab persona {persona_id}. Choose one from the 'Playing' list in the top bar.")
    services.assume_persona(request.real_principal, persona)  # refused: the session keeps the persona it had
    if persona is None:
        request.session.pop(SESSION_PERSONA, None)
        messages.info(request, "You are acting as yourself again.")
    else:
        request.session[SESSION_PERSONA] = persona.pk
        messages.info(request, f"You are now playing {persona.title} ({persona.principal.display_name}).")
    return redirect(safe_next(request, reverse("portal:home")))


@login_required
def lab_clock(request):
    # Only a principal holding the lab-clock data action at the root sees the page (a Lab Instructor);
    # moving it goes through the guarded service all the same.
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
    if not services.can_play_personas(request.real_principal):
        raise Http404("The worker check is not available.")
    services.check_workers(request.real_principal)
    messages.info(request, "Asked the background workers to answer: watch Notifications.")
    return redirect("portal:lab_clock")
