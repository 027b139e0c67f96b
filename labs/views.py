"""The Labs pages: the catalogue, a lab's page (steps, hints, Check my work, the sandbox), and the POSTs."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from labs import catalogue, classes, roleplay, services
from labs.context import LabContext
from labs.models import LabRun
from labs.sandboxes import SandboxNames
from portal.shortcuts import parse_uuid, report_outcome, require_id
from security.guards import GuardDenied
from security import operations as ops
from security.models import AccessRequest


PREVIEW_NAMES = SandboxNames("‹code›")  # before the lab starts: "sbx‹code›dst"


def _lab_or_404(slug: str) -> catalogue.Lab:
    lab = catalogue.get(slug)
    if lab is None or lab.unavailable():
        raise Http404("There is no such lab here.")
    return lab


def _progress(run: LabRun | None, lab: catalogue.Lab, ctx: LabContext | None) -> dict:
    """What the lab page shows of a run: each step's state, the current step (its instructions with the
    sandbox's names put in), its hints. ``ctx`` is the run's context (read once per request)."""
    if run is None:
        return {"steps": [{"step": s, "state": "todo", "title": catalogue.fill_names(s.title, PREVIEW_NAMES)} for s in lab.steps],
                "done": 0, "current": None}
    names = catalogue.names_for(lab, ctx)
    results = {r.step: r for r in run.results.all()}
    current = next((s for s in lab.steps if not getattr(results.get(s.key), "passed", False)), None)
    rows = []
    for step in lab.steps:
        result = results.get(step.key)
        state = "passed" if result and result.passed else ("current" if step is current else "todo")
        current_row = step is current
        shown = services.hints_shown(step, result) if current_row else 0
        rows.append({"step": step, "state": state, "result": result, "title": catalogue.fill_names(step.title, names),
                     "instructions": step.instructions_html(names) if current_row else "",
                     "hints": step.hints_for(names)[:shown] if current_row else (),
                     "more_hints": current_row and shown < len(step.hints)})
    done = sum(1 for r in rows if r["state"] == "passed")
    checking = bool(run.check_requested_at and (run.checked_at is None or run.check_requested_at > run.checked_at))
    return {"steps": rows, "done": done, "current": current, "complete": current is None, "checking": checking}


def home_panel_context(request) -> dict:
    """The Home page's Labs panel (lab mode): the labs offered and where this person is in each."""
    principal = getattr(request, "real_principal", None)
    if not services.can(principal, ops.LAB_START):
        return {}
    runs = {r.lab: r for r in LabRun.objects.filter(trainee=principal, active=True)}
    labs = [{"lab": lab, "run": runs.get(lab.slug),
             "done": runs[lab.slug].results.filter(passed=True).count() if lab.slug in runs else 0}
            for lab in catalogue.available()]
    return {"lab_cards": labs}


@login_required
@require_GET
def lab_list(request):
    principal = request.real_principal
    if not (services.can(principal, ops.LAB_START) or services.is_instructor(principal)):
        raise Http404("Training labs are available in lab mode to Lab Trainees and Lab Instructors.")
    context = home_panel_context(request)
    if services.is_instructor(principal):
        titles = {lab.slug: lab.title for lab in catalogue.all_labs()}
        context["retired"] = list(services.retired_sandboxes()[:50])
        context["runs"] = list(LabRun.objects.filter(active=True).select_related("trainee", "sandbox")[:200])
        for row in (*context["retired"], *context["runs"]):
            row.lab_title = titles.get(row.lab, row.lab)
    context["unavailable"] = [(lab, lab.unavailable()) for lab in catalogue.all_labs() if lab.unavailable()]
    return render(request, "labs/lab_list.html", context)


def _page_context(request, lab: catalogue.Lab, run: LabRun | None) -> dict:
    """The lab page's context. Its polled part (htmx, every 3 s per trainee) shows the progress only: the
    role-play panel beside it is read for the full page alone."""
    ctx = services.context_for(run) if run is not None else None
    own = run is not None and run.trainee_id == request.real_principal.pk
    return {"lab": lab, "run": run, "world": ctx.world if ctx else None, **_progress(run, lab, ctx),
            "partner": ctx.partner if ctx else None,
            "is_instructor": services.is_instructor(request.real_principal),
            "role_play": roleplay.pending_requests(run, ctx) if own and not request.htmx else []}


@login_required
@require_GET
def lab_page(request, slug):
    lab = _lab_or_404(slug)
    run = services.active_run(request.real_principal, lab.slug)
    template = "labs/lab_page.html#progress" if request.htmx else "labs/lab_page.html"
    return render(request, template, _page_context(request, lab, run))


@login_required
@require_GET
def run_page(request, run_id):
    """A trainee's run as their instructor sees it (with Solve this step)."""
    run = get_object_or_404(LabRun.objects.select_related("sandbox", "trainee"), pk=run_id)
    if run.trainee_id != request.real_principal.pk and not services.is_instructor(request.real_principal):
        raise Http404("This is another trainee's lab.")
    lab = _lab_or_404(run.lab)
    template = "labs/lab_page.html#progress" if request.htmx else "labs/lab_page.html"
    return render(request, template, {**_page_context(request, lab, run), "watching": True})


@login_required
@require_POST
def start(request, slug):
    lab = _lab_or_404(slug)
    report_outcome(request, lambda: services.start_lab(request.real_principal, lab.slug),
                   lambda run: f"Your sandbox {run.sandbox.code} is ready. Follow step 1 below.")
    return redirect("labs:lab_page", slug=lab.slug)


def _own_run(request, slug) -> LabRun:
    run = services.active_run(request.real_principal, slug)
    if run is None:
        raise Http404("You have not started this lab.")
    return run


@login_required
@require_POST
def check(request, slug):
    run = _own_run(request, slug)
    report_outcome(request, lambda: services.request_check(request.real_principal, run),
                   lambda _: "Checking your work: the steps below update in a few seconds.", level=messages.info)
    return redirect("labs:lab_page", slug=slug)


@login_required
@require_POST
def hint(request, slug, step):
    run = _own_run(request, slug)
    report_outcome(request, lambda: services.reveal_hint(request.real_principal, run, step),
                   lambda text: "Here is a hint." if text else "There are no more hints for this step.",
                   level=messages.info)
    return redirect("labs:lab_page", slug=slug)


@login_required
@require_POST
def reset(request, slug):
    run = _own_run(request, slug)
    report_outcome(request, lambda: classes.reset_run(request.real_principal, run),
                   lambda new: f"Your old sandbox {run.sandbox.code} is retired; your new sandbox {new.sandbox.code} "
                               "is ready. The lab starts again at step 1.")
    return redirect("labs:lab_page", slug=slug)


@login_required
@require_POST
def role_play(request, slug):
    """Self-study: decide your own pending access request as your sandbox's security admin (role-played)."""
    run = _own_run(request, slug)
    access = get_object_or_404(AccessRequest, pk=require_id(request.POST.get("request_id"), "access request",
                                                            parse=parse_uuid))
    approve = request.POST.get("decision", "approve") != "reject"
    report_outcome(request, lambda: roleplay.decide_as_security_admin(
        request.real_principal, access, approve=approve, comment=request.POST.get("comment", "")),
        lambda decided: f"As {decided.decided_by.display_name} (role-played) you "
                        f"{'approved' if approve else 'rejected'} your request on '{decided.guard.name}'. "
                        "The activity log names you as the one who played it.")
    return redirect("labs:lab_page", slug=slug)


@login_required
@require_POST
def solve(request, run_id, step):
    run = get_object_or_404(LabRun.objects.select_related("sandbox", "trainee"), pk=run_id)
    lab = _lab_or_404(run.lab)
    if step not in {s.key for s in lab.steps}:
        raise Http404("There is no such step.")
    try:
        report_outcome(request, lambda: services.solve_step(request.real_principal, run, step),
                       lambda _: f"Solved '{lab.step(step).title}' for {run.trainee.display_name}; "
                                 "the check runs once its jobs end.")
    except GuardDenied as exc:
        if exc.decision.operation == ops.LAB_SOLVE_FOR_TRAINEE:
            raise  # the instructor may not solve: the explained 403 page
        # The step itself was refused, as it would be for the trainee: say so here, with the way out.
        messages.error(request, f"'{lab.step(step).title}' could not be solved for {run.trainee.display_name}: "
                                f"{exc.decision.guard} refused it. {exc.decision.reason} {exc.decision.remedy}".strip())
    return redirect("labs:run_page", run_id=run.pk)


@login_required
@require_POST
def reset_for_trainee(request, run_id):
    run = get_object_or_404(LabRun.objects.select_related("sandbox", "trainee"), pk=run_id)
    report_outcome(request, lambda: classes.reset_run(request.real_principal, run),
                   lambda new: f"{run.trainee.display_name} has a new sandbox {new.sandbox.code}.")
    return redirect("labs:lab_list")
