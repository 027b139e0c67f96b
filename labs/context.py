"""What a check and a solve routine see: the trainee, their sandbox's resources, when the lab started."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from labs.sandboxes import SandboxWorld
from security.models import ActivityLogEntry, Principal


@dataclass
class LabContext:
    trainee: Principal
    world: SandboxWorld
    started_at: dt.datetime  # lab time; activity before it is not the trainee's work in this lab
    # Tests (and a command run by hand) run the jobs a solve starts in this process, at once.
    run_jobs_inline: bool = False
    # In a class, the trainee's partner for paired labs (each is the other's security admin), or None.
    partner: Principal | None = None
    partner_world: SandboxWorld | None = None
    # In a class, whether the trainee's seat has a partner seat at all (even one without a sandbox).
    paired: bool = False
    jobs: list = field(default_factory=list)

    @property
    def names(self):
        return self.world.names

    def job_started(self, job):
        """A solve started ``job``: run it here when asked to (tests), else a worker runs it."""
        self.jobs.append(job)
        if self.run_jobs_inline:
            from protection.jobs import runner

            return runner.run(job.pk) or job
        return job

    def activity(self, **filters):
        """Activity-log entries in the sandbox since the lab started (the trainee's, or played for them)."""
        entries = ActivityLogEntry.objects.filter(timestamp__gte=self.started_at, **filters)
        subscription = self.world.subscription
        if subscription is not None:
            entries = entries.filter(scope__istartswith=subscription.resource_id)
        return entries.order_by("timestamp", "id")
