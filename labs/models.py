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
    sandbox = models.OneToOneField(Sandbox, on_delete=models.PROTECT, related_name="run")
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
