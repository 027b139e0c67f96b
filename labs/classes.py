"""Classes: an instructor's group of trainees, each with a generated account and a sandbox of their own,
all made when the class is created; paired labs put two trainees together, each the other's security admin.

In a pair (A, B) the Resource Guard that protects B's vault lives in A's sandbox (A's rg-security, A its
owner and approver) and the one that protects A's vault in B's: A's request is decided by B, in B's own
browser, and neither can approve their own. A pair is reset together. A trainee without a partner (an odd
class) does the paired labs in self-study, with the sandbox's built-in security admin.

Classes need PostgreSQL: SQLite serializes every write, and a class of trainees writes at once.
"""

from __future__ import annotations

import logging
import secrets
import string
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils.text import slugify

from labs import catalogue, sandboxes, services, teardown
from labs.models import LabClass, LabRun, Sandbox, Seat
from portal import enqueue
from portal.lab import demo_password_for
from security import clock, roles, scopes
from security import operations as ops
from security import services as security_services
from security.audit import guarded
from security.models import Principal, RoleDefinition

logger = logging.getLogger(__name__)

DEFAULT_CAP = 30
_DATA = {"data_action": True}
PASSWORD_ALPHABET = "".join(c for c in string.ascii_letters + string.digits if c not in "Il1O0o")


def cap() -> int:
    return int(getattr(settings, "STRONGROOM_LAB_CLASS_CAP", DEFAULT_CAP))


def database_problem() -> str:
    """Why classes cannot run on this database ("" on PostgreSQL)."""
    if connection.vendor == "postgresql":
        return ""
    return ("Classes need PostgreSQL: on SQLite every trainee's write waits for the others', and a class writes "
            "at once. Set DATABASE_URL=postgres://USER@HOST:5432/strongroom, run `make migrate` and `make run` "
            "again (README: Moving past one machine).")


@dataclass(frozen=True)
class Credential:
    """A generated account, shown once (the class's printable sheet); the password is not kept."""

    seat: int
    username: str
    password: str
    partner: int | None  # the partner's seat number for paired labs


@dataclass(frozen=True)
class ClassCreated:
    lab_class: LabClass
    credentials: list[Credential]


def _validate(name: str, labs: list[str], trainees: int) -> list[catalogue.Lab]:
    errors = {}
    if not name or len(name) > 60:
        errors["name"] = "Enter a class name of 1 to 60 characters."
    chosen = [catalogue.get(slug) for slug in labs]
    if not labs:
        errors["labs"] = "Choose at least one lab for the class."
    elif any(lab is None or lab.unavailable() for lab in chosen):
        errors["labs"] = "Choose labs from the list: " + ", ".join(lab.slug for lab in catalogue.available()) + "."
    else:
        clash = _clash(chosen)
        if clash:
            errors["labs"] = clash
    if not isinstance(trainees, int) or trainees < 1:
        errors["trainees"] = "A class has at least one trainee."
    elif trainees > cap():
        errors["trainees"] = (f"A class holds at most {cap()} trainees (each gets a sandbox of their own on this "
                              f"machine). Split {trainees} trainees into classes of {cap()} or fewer.")
    if errors:
        raise ValidationError(errors)
    return chosen


_WHAT = {"source_account": "the storage account sbx‹code›src", "volume": "the Elastic SAN volume vol-data"}


def _clash(chosen: list[catalogue.Lab]) -> str:
    """Why these labs cannot share each trainee's sandbox ("" when they can): two protect one datasource."""
    seen: dict[str, catalogue.Lab] = {}
    for lab in chosen:
        for datasource in lab.protects:
            other = seen.setdefault(datasource, lab)
            if other is not lab:
                return (f"'{other.title}' and '{lab.title}' both protect {_WHAT.get(datasource, datasource)}, and a "
                        "datasource is protected in one vault only: a class's labs share each trainee's sandbox, "
                        "so run these two in separate classes.")
    return ""


def _new_slug(name: str) -> str:
    base = slugify(name)[:15].strip("-") or "class"
    for _ in range(20):
        slug = f"{base}-{''.join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(4))}"
        if not LabClass.objects.filter(slug=slug).exists():
            return slug
    raise RuntimeError("Could not find a free class name.")


def _account(slug: str, number: int, password: str | None = None) -> tuple[Principal, str]:
    password = password or "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(12))
    user = get_user_model().objects.create_user(f"{slug}-{number:02d}", password=password,
                                                first_name="Trainee", last_name=f"{number:02d} ({slug})")
    return security_services.principal_for_user(user), password


def _trainee_role(actor, principal: Principal) -> None:
    security_services.assign_role(actor, assignee=principal, role=RoleDefinition.objects.get(name=roles.LAB_TRAINEE),
                                  scope=scopes.ROOT, description="Lab class trainee")


def wire_pair(actor, first: Seat, second: Seat) -> None:
    """Each of the pair owns their own sandbox's security group (the guard there protects the partner's
    vault) and reads the partner's (to link the guard the partner owns)."""
    for seat, other in ((first, second), (second, first)):
        own, theirs = sandboxes.SandboxWorld(seat.sandbox), sandboxes.SandboxWorld(other.sandbox)
        sandboxes.assign(actor, seat.trainee, roles.OWNER, own.security_group.resource_id)
        sandboxes.assign(actor, seat.trainee, roles.READER, theirs.security_group.resource_id)


def _seat_runs(seat: Seat, labs: list[catalogue.Lab], *, run_jobs_inline: bool) -> None:
    for lab in labs:
        services.begin_run(seat.trainee, lab, seat.sandbox, run_jobs_inline=run_jobs_inline)


DEMO_SLUG = "demo-class"


def create_class(instructor: Principal, *, name: str, labs: list[str], trainees: int, stuck_minutes: int = 10,
                 run_jobs_inline: bool = False, demo: bool = False) -> ClassCreated:
    """Create the class, its accounts and a sandbox per trainee (complete when this returns), pair the
    trainees for paired labs, and begin every lab for every trainee. All or nothing.

    ``demo`` (the seed only): the demo class of `make run`, with fixed usernames (demo-class-01, -02) and the
    demo password, allowed on SQLite too since its two trainees are one person trying it out."""
    name = (name or "").strip()
    details = {"name": name, "labs": list(labs or []), "trainees": trainees}
    made: list[Sandbox] = []
    try:
        with guarded(instructor, ops.LAB_CLASS_WRITE, scopes.ROOT, change=_DATA, details=details) as op:
            services._require_lab_mode()
            problem = "" if demo else database_problem()
            if problem:
                raise ValidationError(problem)
            chosen = _validate(name, list(labs or []), trainees)
            lab_class = LabClass.objects.create(name=name, slug=DEMO_SLUG if demo else _new_slug(name),
                                                labs=[lab.slug for lab in chosen],
                                                size=trainees, instructor=instructor, created_at=clock.now(),
                                                stuck_minutes=max(1, int(stuck_minutes or 10)))
            actor = sandboxes.provisioner()
            seats, passwords = [], {}
            for number in range(1, trainees + 1):
                principal, passwords[number] = _account(
                    lab_class.slug, number, demo_password_for(f"{lab_class.slug}-{number:02d}") if demo else None)
                _trainee_role(actor, principal)
                sandbox = sandboxes.provision(principal, f"class:{lab_class.slug}")
                made.append(sandbox)
                seats.append(Seat.objects.create(lab_class=lab_class, number=number, trainee=principal, sandbox=sandbox))
            if any(lab.paired for lab in chosen):
                for first, second in zip(seats[0::2], seats[1::2]):
                    first.pair = second.pair = first.number
                    Seat.objects.filter(pk__in=[first.pk, second.pk]).update(pair=first.number)
                    wire_pair(actor, first, second)
            for seat in seats:
                _seat_runs(seat, chosen, run_jobs_inline=run_jobs_inline)
            op.details["class"] = lab_class.slug
    except BaseException:
        for sandbox in made:  # the rows rolled back; what they made outside the database goes too
            sandboxes.undo_external(sandboxes.SandboxNames(sandbox.code))
        raise
    partner_of = {s.number: (s.partner().number if s.pair else None) for s in seats}
    credentials = [Credential(s.number, s.trainee.user.username, passwords[s.number], partner_of[s.number])
                   for s in seats]
    return ClassCreated(lab_class, credentials)


# --- resets and closing ---------------------------------------------------------------------------------


def _seats_with_partners(seats: list[Seat]) -> list[Seat]:
    """The seats and their partners: a pair is reset together."""
    out = {s.pk: s for s in seats}
    for seat in seats:
        partner = seat.partner()
        if partner is not None:
            out[partner.pk] = partner
    return sorted(out.values(), key=lambda s: s.number)


def reset_seats(principal: Principal, seats: list[Seat], *, run_jobs_inline: bool = False) -> list[Seat]:
    """Give these seats (and their partners) fresh sandboxes seeded the same way and begin their labs again;
    the old sandboxes are retired and taken down as far as the guards allow (part 1's reset rules)."""
    seats = _seats_with_partners(seats)
    own = len(seats) == 1 and seats[0].trainee_id == principal.pk
    action = ops.LAB_SANDBOX_RESET if own else ops.LAB_RESET_FOR_TRAINEE
    lab_class = seats[0].lab_class
    details = {"class": lab_class.slug, "seats": [s.number for s in seats]}
    made: list[Sandbox] = []
    try:
        with guarded(principal, action, scopes.ROOT, change=_DATA, details=details) as op:
            services._require_lab_mode()
            if lab_class.closed_at is not None:
                raise ValidationError(f"The class '{lab_class.name}' is closed.")
            for seat in seats:
                running = teardown.running_jobs(seat.sandbox)
                if running:
                    raise ValidationError(f"A job is still running in the sandbox of seat {seat.number} ({running}). "
                                          "Wait for it to end, or cancel it from Backup jobs, then reset.")
            actor = sandboxes.provisioner()
            retired = []
            for seat in seats:
                retired.append(teardown.retire(seat.sandbox))
                LabRun.objects.filter(trainee=seat.trainee, active=True).update(active=False)
                seat.sandbox = sandboxes.provision(seat.trainee, f"class:{lab_class.slug}")
                made.append(seat.sandbox)
                seat.save(update_fields=["sandbox"])
            for seat in seats:
                partner = seat.partner()
                if partner is not None and seat.number < partner.number:
                    wire_pair(actor, seat, partner)
            chosen = [catalogue.get(slug) for slug in lab_class.labs if catalogue.get(slug)]
            for seat in seats:
                _seat_runs(seat, chosen, run_jobs_inline=run_jobs_inline)
            op.details["newSandboxes"] = [s.sandbox.code for s in seats]
            for sandbox in retired:
                enqueue.after_commit(services.TEARDOWN_TASK, str(sandbox.pk))
    except BaseException:
        for sandbox in made:
            sandboxes.undo_external(sandboxes.SandboxNames(sandbox.code))
        raise
    return seats


def reset_run(principal: Principal, run: LabRun, *, run_jobs_inline: bool = False) -> LabRun:
    """Reset Sandbox on a lab page: a seat (with its partner) in a class, else part 1's reset of the run."""
    seat = Seat.objects.select_related("lab_class", "trainee", "sandbox").filter(trainee_id=run.trainee_id).first()
    if seat is None:
        return services.reset_lab(principal, run, run_jobs_inline=run_jobs_inline)
    reset_seats(principal, [seat], run_jobs_inline=run_jobs_inline)
    return LabRun.objects.select_related("sandbox").get(trainee_id=run.trainee_id, lab=run.lab, active=True)


def close_class(instructor: Principal, lab_class: LabClass) -> LabClass:
    """Retire every sandbox of the class (taken down as far as the guards allow) and disable its accounts."""
    with guarded(instructor, ops.LAB_CLASS_CLOSE, scopes.ROOT, change=_DATA, details={"class": lab_class.slug}):
        lab_class = LabClass.objects.select_for_update().get(pk=lab_class.pk)
        if lab_class.closed_at is not None:
            raise ValidationError(f"The class '{lab_class.name}' is already closed.")
        seats = list(lab_class.seats.select_related("trainee__user", "sandbox"))
        for seat in seats:
            if seat.sandbox is not None and seat.sandbox.status == Sandbox.Status.ACTIVE:
                teardown.retire(seat.sandbox)
                enqueue.after_commit(services.TEARDOWN_TASK, str(seat.sandbox.pk))
            LabRun.objects.filter(trainee=seat.trainee, active=True).update(active=False)
            user = seat.trainee.user
            user.is_active = False
            user.save(update_fields=["is_active"])
        lab_class.closed_at = clock.now()
        lab_class.save(update_fields=["closed_at"])
    return lab_class


def classes_for(principal: Principal):
    return LabClass.objects.filter(closed_at__isnull=True) if services.can(principal, ops.LAB_CLASS_READ) else LabClass.objects.none()


__all__ = ["ClassCreated", "Credential", "cap", "classes_for", "close_class", "create_class", "database_problem",
           "reset_run", "reset_seats"]
