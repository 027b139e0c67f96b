"""Starting a lab, checking it, hints, solving a step and resetting a sandbox: every change asks `evaluate`.

A trainee acts on their own runs (role "Lab Trainee"); a Lab Instructor may solve a step or reset a sandbox
for anyone. Checks read real state only (labs.catalogue); their outcome is stored for the lab page, which
polls it. Checks run in the worker (labs.tasks) when the trainee acts or a job of theirs ends, and on
"Check my work": never while a page renders.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from labs import catalogue, sandboxes, teardown
from labs.context import LabContext
from labs.models import LabRun, Sandbox, Seat, StepResult
from portal import enqueue
from security import clock, scopes
from security import operations as ops
from security.audit import guarded
from security.guards import evaluate
from security.models import Principal
from security.rbac import authorize

logger = logging.getLogger(__name__)

CHECK_TASK = "labs.tasks.check_run"
TEARDOWN_TASK = "labs.tasks.take_down_retired"
LAB_SCOPE = scopes.ROOT
_DATA = {"data_action": True}


class LabError(ValidationError):
    """A lab action that cannot be done, with what to do instead."""


def _lab(slug: str) -> catalogue.Lab:
    lab = catalogue.get(slug)
    if lab is None:
        raise LabError(f"There is no lab '{slug}'. Choose one from the Labs page.")
    why = lab.unavailable()
    if why:
        raise LabError(f"The lab '{lab.title}' is not offered here: {why}")
    return lab


def _require_lab_mode() -> None:
    if not settings.STRONGROOM_LAB_MODE:
        raise LabError("Training labs run only in lab mode (STRONGROOM_MODE=lab).")


def can(principal, action: str) -> bool:
    return bool(principal is not None and settings.STRONGROOM_LAB_MODE
                and authorize(principal, action, LAB_SCOPE, data_action=True).allowed)


def is_instructor(principal) -> bool:
    return can(principal, ops.LAB_SOLVE_FOR_TRAINEE)


def active_run(trainee: Principal, slug: str) -> LabRun | None:
    run = LabRun.objects.filter(trainee=trainee, lab=slug, active=True).select_related("sandbox").first()
    if run is not None:
        run.trainee = trainee  # the row was found by it: no query to read it back
    return run


def context_for(run: LabRun, *, run_jobs_inline: bool = False) -> LabContext:
    ctx = LabContext(run.trainee, sandboxes.SandboxWorld(run.sandbox), run.started_at, run_jobs_inline=run_jobs_inline)
    partner = Seat.partner_of_trainee(run.trainee_id)
    ctx.paired = partner is not None
    if partner is not None and partner.sandbox is not None:
        ctx.partner, ctx.partner_world = partner.trainee, sandboxes.SandboxWorld(partner.sandbox)
    return ctx


# --- start ----------------------------------------------------------------------------------------------


def start_lab(trainee: Principal, slug: str, *, run_jobs_inline: bool = False) -> LabRun:
    """Give ``trainee`` a fresh sandbox for lab ``slug`` and begin. Starting a lab already under way is
    refused with what to do (continue it, or reset it)."""
    lab = _lab(slug)
    with guarded(trainee, ops.LAB_START, LAB_SCOPE, change=_DATA, details={"lab": lab.slug}) as op:
        _require_lab_mode()
        if active_run(trainee, lab.slug):
            raise LabError(f"You have already started '{lab.title}'. Continue it from the Labs page, "
                           "or reset its sandbox to begin again.")
        run = _new_run(trainee, lab, run_jobs_inline=run_jobs_inline)
        op.details["sandbox"] = run.sandbox.code
        op.result_scope = run.sandbox.subscription_id or LAB_SCOPE
    return run


def _new_run(trainee: Principal, lab: catalogue.Lab, *, run_jobs_inline: bool) -> LabRun:
    return begin_run(trainee, lab, sandboxes.provision(trainee, lab.slug), run_jobs_inline=run_jobs_inline)


def begin_run(trainee: Principal, lab: catalogue.Lab, sandbox: Sandbox, *, run_jobs_inline: bool = False) -> LabRun:
    """Begin ``lab`` for ``trainee`` in ``sandbox``: its steps to do, and what the lab starts from."""
    run = LabRun.objects.create(trainee=trainee, lab=lab.slug, sandbox=sandbox, started_at=clock.now())
    StepResult.objects.bulk_create([StepResult(run=run, step=s.key) for s in lab.steps])
    if lab.prepare is not None:
        lab.prepare(context_for(run, run_jobs_inline=run_jobs_inline))
    return run


# --- checks ---------------------------------------------------------------------------------------------


def request_check(principal: Principal, run: LabRun) -> None:
    """"Check my work": ask a worker to run the run's checks (the page polls for the outcome)."""
    _own_or_instructor(principal, run, ops.LAB_SOLVE_FOR_TRAINEE)
    with guarded(principal, ops.LAB_CHECK, LAB_SCOPE, change=_DATA, details={"lab": run.lab, "sandbox": run.sandbox.code}):
        LabRun.objects.filter(pk=run.pk).update(check_requested_at=clock.now())
        enqueue.after_commit(CHECK_TASK, str(run.pk))


def check_run(run: LabRun) -> list[StepResult]:
    """Run the checks from the first step not yet passed, in order, stopping at the first that fails.

    A passed step stays passed (the page does not flicker when later work changes state). Called by the
    worker; tests call it directly."""
    lab = catalogue.get(run.lab)
    if lab is None or not run.active:
        return []
    ctx = context_for(run)
    results = {r.step: r for r in run.results.all()}
    now = clock.now()
    for step in lab.steps:
        result = results.get(step.key) or StepResult.objects.create(run=run, step=step.key)
        if result.passed:
            continue
        try:
            outcome = step.check(ctx)
        except Exception as exc:  # a check must not stop the page: say what happened
            logger.exception("Check %s/%s failed to run", lab.slug, step.key)
            outcome = catalogue.CheckResult(False, f"The check could not run ({type(exc).__name__}: {exc}). "
                                                   "Try Check my work again; tell your instructor if it persists.")
        result.passed = outcome.passed
        result.message = outcome.message
        result.checked_at = now
        if not outcome.passed:
            result.failures += 1
        result.save()
        if not outcome.passed:
            break
    done = all(r.passed for r in run.results.all())
    LabRun.objects.filter(pk=run.pk).update(checked_at=now, completed_at=(run.completed_at or now) if done else None)
    run.refresh_from_db()
    return list(run.results.all())


def check_runs_of(principal_ids: list) -> int:
    """Enqueue checks for the active, unfinished runs of these principals (a trainee acted, or a job of
    theirs ended). Returns how many were asked for."""
    runs = list(LabRun.objects.filter(trainee_id__in=principal_ids, active=True, completed_at__isnull=True)
                .values_list("pk", flat=True))
    for run_id in runs:
        enqueue.after_commit(CHECK_TASK, str(run_id))
    return len(runs)


# --- hints and solving ----------------------------------------------------------------------------------


def current_step(run: LabRun) -> catalogue.Step | None:
    lab = catalogue.get(run.lab)
    passed = set(run.results.filter(passed=True).values_list("step", flat=True))
    return next((s for s in lab.steps if s.key not in passed), None) if lab else None


def visible_hints(run: LabRun, step: catalogue.Step) -> tuple[str, ...]:
    """The hints shown for ``step``: one more after each failed check, and any asked for."""
    return step.hints[:hints_shown(step, run.results.filter(step=step.key).first())]


def hints_shown(step: catalogue.Step, result: StepResult | None) -> int:
    """How many of ``step``'s hints its result shows (for a page that has read the run's results already)."""
    return 0 if result is None else max(result.hints_shown, min(result.failures, len(step.hints)))


def reveal_hint(principal: Principal, run: LabRun, step_key: str) -> str | None:
    """Show the next hint of a step on request."""
    _own_or_instructor(principal, run, ops.LAB_SOLVE_FOR_TRAINEE)
    step = catalogue.get(run.lab).step(step_key)
    with guarded(principal, ops.LAB_CHECK, LAB_SCOPE, change=_DATA, details={"lab": run.lab, "hintFor": step_key}):
        result, _ = StepResult.objects.select_for_update().get_or_create(run=run, step=step_key)
        shown = len(visible_hints(run, step))
        if shown >= len(step.hints):
            return None
        result.hints_shown = shown + 1
        result.save(update_fields=["hints_shown"])
    return step.hints[shown]


def solve_step(instructor: Principal, run: LabRun, step_key: str, *, run_jobs_inline: bool = False) -> None:
    """A Lab Instructor unblocks a trainee: the step's solve routine runs as the trainee, so the same
    guards refuse it (their refusal reaches the instructor as a GuardDenied)."""
    step = catalogue.get(run.lab).step(step_key)
    details = {"lab": run.lab, "step": step_key, "trainee": run.trainee.display_name, "sandbox": run.sandbox.code}
    with guarded(instructor, ops.LAB_SOLVE_FOR_TRAINEE, LAB_SCOPE, change=_DATA, details=details):
        _require_lab_mode()
        if not run.active:
            raise LabError("This lab run was reset; open the trainee's current run.")
    step.solve(context_for(run, run_jobs_inline=run_jobs_inline))
    StepResult.objects.filter(run=run, step=step_key).update(solved_by=instructor.display_name)
    check_runs_of([run.trainee_id])


# --- reset ----------------------------------------------------------------------------------------------


def reset_lab(principal: Principal, run: LabRun, *, run_jobs_inline: bool = False) -> LabRun:
    """Replace the run's sandbox with a fresh one seeded the same way, and start the lab again.

    The old sandbox is retired at once (hidden from the trainee); a worker then takes it down through the
    services, and where a guard refuses (locked immutability, always-on soft delete) it is kept until
    its data may go, listed for the lab's owner. A job still running in it is refused here, with what to do."""
    own = run.trainee_id == principal.pk
    action = ops.LAB_SANDBOX_RESET if own else ops.LAB_RESET_FOR_TRAINEE
    lab = _lab(run.lab)
    details = {"lab": run.lab, "sandbox": run.sandbox.code, "trainee": run.trainee.display_name}
    with guarded(principal, action, LAB_SCOPE, change=_DATA, details=details) as op:
        _require_lab_mode()
        run = LabRun.objects.select_for_update().select_related("sandbox", "trainee").get(pk=run.pk)
        if not run.active:
            raise LabError("This sandbox was already reset. Open the lab again to see the new one.")
        if Seat.objects.filter(trainee_id=run.trainee_id).exists():
            raise LabError("This trainee is in a class: reset their seat from the class (labs.classes.reset_seats), "
                           "which also resets a partner's sandbox.")
        running = teardown.running_jobs(run.sandbox)
        if running:
            raise LabError(f"A job is still running in this sandbox ({running}). Wait for it to end, or cancel it "
                           "from Backup jobs, then reset.")
        teardown.retire(run.sandbox)
        LabRun.objects.filter(pk=run.pk).update(active=False)
        new_run = _new_run(run.trainee, lab, run_jobs_inline=run_jobs_inline)
        op.details["newSandbox"] = new_run.sandbox.code
        enqueue.after_commit(TEARDOWN_TASK, str(run.sandbox.pk))
    return new_run


def _own_or_instructor(principal, run: LabRun, others_action: str) -> None:
    """Another trainee's run needs ``others_action`` (a Lab Instructor's). On one's own run there is nothing
    to ask here: the caller's guarded block asks for the trainee's action, so a refusal is logged and
    explained as any other."""
    if run.trainee_id == principal.pk:
        return
    decision = evaluate(principal, others_action, LAB_SCOPE, _DATA)
    if not decision.allowed or not is_instructor(principal):
        raise LabError("This is another trainee's lab: only a Lab Instructor may act on it.")


def retired_sandboxes():
    """Sandboxes kept after a reset because their data may not go yet (for the lab's owner)."""
    return Sandbox.objects.filter(status=Sandbox.Status.RETIRED).select_related("owner")
