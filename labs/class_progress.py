"""What the instructor's class page shows, read in a few queries: every seat's progress through every lab
of the class (each step done, current, stuck or to do), the last check each trainee saw fail, and each
trainee's recent activity. Reads only: the page polls it every few seconds.

A step is *stuck* when it has been the current step for more than the class's ``stuck_minutes`` of lab time
(`security.clock`), counted from when the previous step passed, or from the start of the run.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cached_property

from django.db.models import F, Window
from django.urls import reverse
from django.db.models.functions import RowNumber

from labs import catalogue
from labs.models import LabClass, LabRun, Seat, StepResult
from labs.sandboxes import SandboxNames
from security import clock
from security.models import ActivityLogEntry

DONE, CURRENT, STUCK, TODO = "done", "current", "stuck", "todo"
STATE_LABELS = {DONE: "Done", CURRENT: "Current", STUCK: "Stuck", TODO: "To do"}
STATE_SYMBOLS = {DONE: "✓", CURRENT: "●", STUCK: "!", TODO: "·"}
FEED_LENGTH = 5


@dataclass
class Cell:
    """One step of one lab for one trainee."""

    number: int
    step: catalogue.Step
    state: str
    result: StepResult | None = None
    since: dt.datetime | None = None  # when the current step became current
    title: str = ""  # the step's title with the trainee's own resource names
    tooltip: str = ""  # "<lab>, step <n>: <title>. <state>[ for <m> min]" (built once: the matrix has 100s of cells)

    @property
    def label(self) -> str:
        return STATE_LABELS[self.state]

    @property
    def symbol(self) -> str:
        return STATE_SYMBOLS[self.state]

    @property
    def minutes(self) -> int:
        """Whole minutes of lab time spent on the current step so far."""
        return int((clock.now() - self.since).total_seconds() // 60) if self.since else 0


@dataclass
class LabProgress:
    lab: catalogue.Lab
    run: LabRun | None
    cells: list[Cell]

    @property
    def done(self) -> int:
        return sum(1 for c in self.cells if c.state == DONE)

    @cached_property
    def url(self) -> str:
        """The run's page as the instructor opens it from every cell of this lab ("" without a run)."""
        return reverse("labs:run_page", args=[self.run.pk]) if self.run is not None else ""


@dataclass
class SeatRow:
    seat: Seat
    username: str
    partner: Seat | None
    partner_username: str
    labs: list[LabProgress]
    last_failure: dict | None = None  # {"lab", "step", "message", "checked_at"}
    activity: list[ActivityLogEntry] = field(default_factory=list)
    first_of_pair: bool = False  # the row that carries the pair's own reset button

    @property
    def stuck(self) -> bool:
        return any(c.state == STUCK for p in self.labs for c in p.cells)


def class_labs(lab_class: LabClass) -> list[catalogue.Lab]:
    """The class's labs that this installation still knows, in the class's order."""
    return [lab for lab in (catalogue.get(slug) for slug in lab_class.labs) if lab is not None]


def step_cells(lab: catalogue.Lab, run: LabRun | None, results: dict, now: dt.datetime,
               stuck_after: dt.timedelta, names=None) -> list[Cell]:
    """Each step's state: passed steps are done, the first one not passed is current (stuck after
    ``stuck_after`` since the step before it passed or the run started), the rest are to do."""
    cells, current_found = [], False
    since = run.started_at if run is not None else None
    for number, step in enumerate(lab.steps, start=1):
        result = results.get(step.key)
        if run is None:
            cells.append(Cell(number, step, TODO))
        elif result is not None and result.passed:
            cells.append(Cell(number, step, DONE, result))
            since = result.checked_at or since
        elif not current_found:
            current_found = True
            state = STUCK if since is not None and now - since > stuck_after else CURRENT
            cells.append(Cell(number, step, state, result, since))
        else:
            cells.append(Cell(number, step, TODO, result))
    for cell in cells:
        cell.title = catalogue.fill_names(cell.step.title, names) if names is not None else cell.step.title
        cell.tooltip = f"{lab.title}, step {cell.number}: {cell.title}. {cell.label}" + (
            f" for {cell.minutes} min" if cell.since else "")
    return cells


def recent_activity(principal_ids: list, per_principal: int = FEED_LENGTH) -> dict:
    """{principal id: their latest activity-log entries}: what each trainee did, and what was done in their
    name (an instructor's "Solve this step" runs as the trainee, and the entry says who played it)."""
    if not principal_ids:
        return {}
    by_ref = {str(pk): pk for pk in principal_ids}
    ranked = (ActivityLogEntry.objects.filter(principal_ref__in=list(by_ref))
              .annotate(rank=Window(RowNumber(), partition_by=[F("principal_ref")],
                                    order_by=[F("timestamp").desc(), F("id").desc()]))
              .filter(rank__lte=per_principal).order_by("principal_ref", "rank"))
    out: dict = {pk: [] for pk in principal_ids}
    for entry in ranked:
        out[by_ref[entry.principal_ref]].append(entry)
    return out


def _last_failure(progress: list[LabProgress]) -> dict | None:
    failures = [(c.result.checked_at, p.lab, c) for p in progress for c in p.cells
                if c.result is not None and not c.result.passed and c.result.checked_at is not None]
    if not failures:
        return None
    checked_at, lab, cell = max(failures, key=lambda f: f[0])
    return {"lab": lab, "step": cell.step, "number": cell.number, "message": cell.result.message,
            "checked_at": checked_at}


def class_rows(lab_class: LabClass, *, activity: bool = True) -> list[SeatRow]:
    """Every seat of the class with its progress (active runs of the class's labs)."""
    seats = list(lab_class.seats.select_related("trainee__user", "sandbox"))
    labs = class_labs(lab_class)
    trainee_ids = [s.trainee_id for s in seats]
    runs = {(r.trainee_id, r.lab): r for r in LabRun.objects.filter(
        trainee_id__in=trainee_ids, active=True, lab__in=[lab.slug for lab in labs])}
    results: dict = {}
    for result in StepResult.objects.filter(run__in=[r.pk for r in runs.values()]):
        results.setdefault(result.run_id, {})[result.step] = result
    feeds = recent_activity(trainee_ids) if activity else {}
    by_pair: dict = {}
    for seat in seats:
        if seat.pair is not None:
            by_pair.setdefault(seat.pair, []).append(seat)
    now, stuck_after = clock.now(), dt.timedelta(minutes=lab_class.stuck_minutes)
    rows = []
    for seat in seats:
        partner = next((s for s in by_pair.get(seat.pair, ()) if s.pk != seat.pk), None) if seat.pair else None
        progress = []
        names = SandboxNames(seat.sandbox.code) if seat.sandbox is not None else None
        for lab in labs:
            run = runs.get((seat.trainee_id, lab.slug))
            cells = step_cells(lab, run, results.get(run.pk, {}) if run else {}, now, stuck_after, names)
            progress.append(LabProgress(lab, run, cells))
        rows.append(SeatRow(seat, seat.trainee.user.username, partner,
                            partner.trainee.user.username if partner else "", progress, _last_failure(progress),
                            feeds.get(seat.trainee_id, []),
                            first_of_pair=partner is not None and seat.number < partner.number))
    return rows


CSV_HEADER = ["seat", "username", "partner", "lab", "step", "state", "last message", "checked at"]


def _cell_text(value: str) -> str:
    """A spreadsheet must not read a message as a formula."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def csv_rows(lab_class: LabClass):
    """One row per trainee and lab step (the class page's matrix, as text)."""
    yield CSV_HEADER
    for row in class_rows(lab_class, activity=False):
        for progress in row.labs:
            for cell in progress.cells:
                result = cell.result
                yield [row.seat.number, row.username, row.partner_username, progress.lab.slug, cell.step.key,
                       cell.state, _cell_text(result.message if result else ""),
                       result.checked_at.isoformat() if result and result.checked_at else ""]


def open_classes():
    """Every class not closed, on this installation (the lab clock moves them all)."""
    return LabClass.objects.filter(closed_at__isnull=True).order_by("name", "created_at")
