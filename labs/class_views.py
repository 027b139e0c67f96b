"""The instructor's class pages: the list, Create a class (answered with the printable sign-in sheet), the
live class page (trainees x steps, polled), its CSV export, resets per trainee, pair or class, closing the
class, and moving the lab clock (which moves every open class: the page says so before it moves).

Only a Lab Instructor (the data action ``Strongroom.Lab/classes/read``) sees any of them; everyone else gets
404. Every change goes through `labs.classes` or `security.services`, whose guards decide.
"""

from __future__ import annotations

import csv
import datetime as dt

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from labs import catalogue, class_progress, classes, services
from labs.models import LabClass, Seat
from portal.forms import ClockForm
from portal.shortcuts import form_errors_from, report_outcome
from security import clock
from security import operations as ops
from security import services as security_services


class ClassForm(forms.Form):
    name = forms.CharField(max_length=60, label="Class name")
    labs = forms.MultipleChoiceField(label="Labs", widget=forms.CheckboxSelectMultiple, choices=())
    trainees = forms.IntegerField(min_value=1, label="Number of trainees", initial=20)
    stuck_minutes = forms.IntegerField(
        min_value=1, max_value=240, initial=10, label="Stuck after (minutes)",
        help_text="A trainee on the same step for longer shows as stuck on the class page.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["labs"].choices = [(lab.slug, lab.title) for lab in catalogue.available()]
        cap = classes.cap()
        self.fields["trainees"].widget.attrs["max"] = cap
        self.fields["trainees"].help_text = (f"At most {cap} (each trainee gets an account and a sandbox of their "
                                             "own). Paired labs pair seats 1–2, 3–4, …; an odd one out works alone.")


def _require_instructor(request):
    if not services.can(request.real_principal, ops.LAB_CLASS_READ):
        raise Http404("Classes are available in lab mode to Lab Instructors.")


def _class_or_404(request, class_slug: str) -> LabClass:
    _require_instructor(request)
    return get_object_or_404(LabClass.objects.select_related("instructor"), slug=class_slug)


@login_required
@require_GET
def class_list(request):
    _require_instructor(request)
    open_classes = list(classes.classes_for(request.real_principal).select_related("instructor"))
    closed = list(LabClass.objects.filter(closed_at__isnull=False).select_related("instructor")[:20])
    titles = {lab.slug: lab.title for lab in catalogue.all_labs()}
    for lab_class in (*open_classes, *closed):
        lab_class.lab_titles = [titles.get(slug, slug) for slug in lab_class.labs]
    return render(request, "labs/classes/class_list.html", {
        "open_classes": open_classes, "closed_classes": closed, "database_problem": classes.database_problem()})


@login_required
@require_http_methods(["GET", "POST"])
def class_create(request):
    """The form; its POST answers with the sign-in sheet itself (the passwords exist only in this answer)."""
    _require_instructor(request)
    problem = classes.database_problem()
    form = ClassForm(request.POST or None)
    if request.method == "POST" and not problem and form.is_valid():
        data = form.cleaned_data
        try:
            created = classes.create_class(request.real_principal, name=data["name"], labs=data["labs"],
                                           trainees=data["trainees"], stuck_minutes=data["stuck_minutes"])
        except ValidationError as exc:
            form_errors_from(form, exc)
        else:
            return _sheet(request, created)
    return render(request, "labs/classes/class_create.html", {"form": form, "database_problem": problem,
                                                               "cap": classes.cap()})


def _sheet(request, created: classes.ClassCreated) -> HttpResponse:
    usernames = {c.seat: c.username for c in created.credentials}
    slips = [{"credential": c, "partner_username": usernames.get(c.partner, "")} for c in created.credentials]
    lab_class = created.lab_class
    response = render(request, "labs/classes/sheet.html", {
        "lab_class": lab_class, "slips": slips, "labs": class_progress.class_labs(lab_class),
        "sign_in_url": request.build_absolute_uri(reverse("login"))})
    add_never_cache_headers(response)  # the passwords must not stay in a cache
    return response


def _page_context(request, lab_class: LabClass) -> dict:
    """The class page's context. Its polled part (htmx, every 5 s) is the live matrix alone: the lab clock's
    form and the open classes it names are read for the full page only."""
    rows = class_progress.class_rows(lab_class)
    labs = class_progress.class_labs(lab_class)
    context = {"lab_class": lab_class, "rows": rows, "labs": labs, "closed": lab_class.closed_at is not None,
               "stuck_count": sum(1 for r in rows if r.stuck), "now": clock.now()}
    if not request.htmx:
        context.update({"can_move_clock": security_services.can_move_lab_clock(request.real_principal),
                        "clock_form": ClockForm(initial={"amount": 1, "unit": "hours"}),
                        "open_classes": list(class_progress.open_classes())})
    return context


@login_required
@require_GET
def class_page(request, class_slug):
    lab_class = _class_or_404(request, class_slug)
    template = "labs/classes/class_page.html#live" if request.htmx else "labs/classes/class_page.html"
    return render(request, template, _page_context(request, lab_class))


@login_required
@require_GET
def class_export(request, class_slug):
    lab_class = _class_or_404(request, class_slug)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="class-{lab_class.slug}.csv"'
    writer = csv.writer(response)
    for row in class_progress.csv_rows(lab_class):
        writer.writerow(row)
    return response


def _seat_names(seats: list[Seat]) -> str:
    return ", ".join(f"seat {s.number} ({s.trainee.user.username})" for s in seats)


def _reset(request, lab_class: LabClass, seats: list[Seat]) -> None:
    report_outcome(request, lambda: classes.reset_seats(request.real_principal, seats),
                   lambda done: f"New sandboxes for {_seat_names(done)}: their labs start again at step 1. "
                                "The old sandboxes are retired and taken down as far as their guards allow.")


@login_required
@require_POST
def class_reset_seat(request, class_slug, number):
    """Reset one trainee: a paired trainee's partner is reset with them (a pair resets together)."""
    lab_class = _class_or_404(request, class_slug)
    seat = get_object_or_404(lab_class.seats.select_related("trainee__user", "sandbox"), number=number)
    _reset(request, lab_class, [seat])
    return redirect("labs:class_page", class_slug=lab_class.slug)


@login_required
@require_POST
def class_reset_pair(request, class_slug, pair):
    lab_class = _class_or_404(request, class_slug)
    seats = list(lab_class.seats.select_related("trainee__user", "sandbox").filter(pair=pair))
    if not seats:
        raise Http404("There is no such pair in this class.")
    _reset(request, lab_class, seats)
    return redirect("labs:class_page", class_slug=lab_class.slug)


def _confirmed(request, lab_class: LabClass) -> str:
    """"" when the class name was typed again, else what to do."""
    if request.POST.get("confirm_name", "").strip() == lab_class.name:
        return ""
    return f"Type the class name “{lab_class.name}” exactly to confirm."


@login_required
@require_http_methods(["GET", "POST"])
def class_reset(request, class_slug):
    """Reset the whole class, once its name is typed again."""
    lab_class = _class_or_404(request, class_slug)
    error = ""
    if request.method == "POST":
        error = _confirmed(request, lab_class)
        if not error:
            _reset(request, lab_class, list(lab_class.seats.select_related("trainee__user", "sandbox")))
            return redirect("labs:class_page", class_slug=lab_class.slug)
    return render(request, "labs/classes/confirm.html", {"lab_class": lab_class, "error": error, "action": "reset"})


@login_required
@require_http_methods(["GET", "POST"])
def class_close(request, class_slug):
    """Close the class, once its name is typed again: sandboxes retired, accounts disabled."""
    lab_class = _class_or_404(request, class_slug)
    error = ""
    if request.method == "POST":
        error = _confirmed(request, lab_class)
        if not error and report_outcome(
                request, lambda: classes.close_class(request.real_principal, lab_class),
                lambda closed: f"The class “{closed.name}” is closed: its sandboxes are retired and its "
                               f"{closed.size} trainee accounts can no longer sign in."):
            return redirect("labs:class_page", class_slug=lab_class.slug)
    return render(request, "labs/classes/confirm.html", {"lab_class": lab_class, "error": error, "action": "close"})


@login_required
@require_http_methods(["GET", "POST"])
def class_clock(request, class_slug):
    """Move the lab clock from a class: first what it moves (every open class, named), then the move."""
    lab_class = _class_or_404(request, class_slug)
    if not security_services.can_move_lab_clock(request.real_principal):
        raise Http404("The lab clock is not available.")
    if request.method == "POST":
        form = ClockForm(request.POST)
        if form.is_valid():
            delta = dt.timedelta(**{form.cleaned_data["unit"]: form.cleaned_data["amount"]})
            try:
                moved_to = security_services.move_lab_clock(request.real_principal, forward=delta)
            except ValidationError as exc:
                form_errors_from(form, exc)
            else:
                names = ", ".join(c.name for c in class_progress.open_classes())
                messages.success(request, f"The lab clock now reads {moved_to:%Y-%m-%d %H:%M} UTC, for every open "
                                          f"class ({names}).")
                return redirect("labs:class_page", class_slug=lab_class.slug)
    else:  # from the class page's form: the amount chosen there, to confirm
        asked = ClockForm(request.GET)
        form = ClockForm(initial=asked.cleaned_data if asked.is_valid() else {"amount": 1, "unit": "hours"})
    return render(request, "labs/classes/clock.html", {
        "lab_class": lab_class, "form": form, "open_classes": list(class_progress.open_classes()),
        "now": clock.now()})
