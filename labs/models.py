"""What the labs app keeps: sandboxes, who started which lab in which sandbox, and the stored outcome of
each check (what the lab page shows). A check never reads these tables: it reads real state."""

from __future__ import annotations

import uuid

from django.db import models

from security.models import Principal


class Sandbox(models.Model):
    """A trainee's own subscription and resource groups for one lab, seeded with real data.

    Resource names derive from ``code`` (labs.sandboxes.SandboxNames): this row says whose they are."""

    class Status(models.TextChoices):
        ACTIVE = "Active", "Active"
        RETIRED = "Retired", "Retired (kept until its data may go)"
        DELETED = "Deleted", "Deleted"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    code = models.CharField(max_length=12, unique=True)
    owner = models.ForeignKey(Principal, on_delete=models.PROTECT, related_name="lab_sandboxes")
    lab = models.CharField(max_length=60)
    subscription_id = models.CharField(max_length=512, blank=True)  # the sandbox subscription's resource id
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE, db_index=True)
    created_at = models.DateTimeField()
    retired_at = models.DateTimeField(null=True, blank=True)
    # Why the sandbox could not be deleted yet (a guard's refusal, in its words), for the lab's owner.
    kept_because = models.TextField(blank=True)
    pg_login = models.CharField(max_length=63, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"sandbox {self.code} ({self.lab})"


class LabRun(models.Model):
    """One trainee doing one lab in one sandbox (a reset starts a new run in a new sandbox)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    trainee = models.ForeignKey(Principal, on_delete=models.CASCADE, related_name="lab_runs")
    lab = models.CharField(max_length=60, db_index=True)
    # A class seat's sandbox serves every lab of the class; outside a class each run has its own.
    sandbox = models.ForeignKey(Sandbox, on_delete=models.PROTECT, related_name="runs")
    started_at = models.DateTimeField()  # lab time
    completed_at = models.DateTimeField(null=True, blank=True)
    active = models.BooleanField(default=True, db_index=True)  # False once reset away
    check_requested_at = models.DateTimeField(null=True, blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(fields=["trainee", "lab"], condition=models.Q(active=True),
                                    name="one_active_run_per_trainee_and_lab"),
        ]


class StepResult(models.Model):
    """The last check of one step: passed, or what is still missing; and how many hints are shown."""

    run = models.ForeignKey(LabRun, on_delete=models.CASCADE, related_name="results")
    step = models.CharField(max_length=60)
    passed = models.BooleanField(default=False)
    message = models.TextField(blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)
    failures = models.PositiveIntegerField(default=0)
    hints_shown = models.PositiveIntegerField(default=0)
    solved_by = models.CharField(max_length=300, blank=True)  # who ran "Solve this step", if anyone

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "step"], name="one_result_per_run_step")]


class LabClass(models.Model):
    """A class an instructor runs: its labs, and a seat (account and sandbox) per trainee."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=60)
    slug = models.CharField(max_length=24, unique=True)  # the trainees' usernames start with it
    labs = models.JSONField(default=list)  # lab slugs, in the order the class does them
    size = models.PositiveSmallIntegerField()
    instructor = models.ForeignKey(Principal, on_delete=models.PROTECT, related_name="taught_classes")
    stuck_minutes = models.PositiveSmallIntegerField(default=10)  # "stuck" on the class page after this
    created_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class Seat(models.Model):
    """One trainee of a class: a generated account, its sandbox, and its partner for paired labs (the seat
    of the same class with the same ``pair``; none for self-study)."""

    lab_class = models.ForeignKey(LabClass, on_delete=models.CASCADE, related_name="seats")
    number = models.PositiveSmallIntegerField()
    trainee = models.OneToOneField(Principal, on_delete=models.PROTECT, related_name="seat")
    sandbox = models.ForeignKey(Sandbox, on_delete=models.PROTECT, null=True, related_name="seats")
    pair = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["number"]
        constraints = [models.UniqueConstraint(fields=["lab_class", "number"], name="one_seat_number_per_class")]

    def partner(self) -> "Seat | None":
        if self.pair is None:
            return None
        return (Seat.objects.filter(lab_class_id=self.lab_class_id, pair=self.pair).exclude(pk=self.pk)
                .select_related("trainee", "sandbox").first())

    @staticmethod
    def partner_of_trainee(trainee_id) -> "Seat | None":
        """The seat paired with ``trainee_id``'s in their class (None in self-study or alone), with its
        trainee, their user and sandbox: one query, where ``Seat.objects.get(...).partner()`` takes two
        (the lab page asks it on every poll)."""
        own = Seat.objects.filter(trainee_id=trainee_id, pair__isnull=False)
        return (Seat.objects.filter(lab_class_id=models.Subquery(own.values("lab_class_id")[:1]),
                                    pair=models.Subquery(own.values("pair")[:1]))
                .exclude(trainee_id=trainee_id).select_related("trainee__user", "sandbox").first())
