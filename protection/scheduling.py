"""When an instance's next scheduled backup is: the one place that moves ``next_backup_at``.

``next_backup_at`` of a ``ProtectionConfigured`` instance is the next slot of its policy after now
(`Policy.next_run_after(clock.now())`), set when protection is configured, when the policy is edited
and when the instance changes policy (`reschedule`), and when a stopped backup resumes
(`schedule_next`, which also counts every slot up to now as done: no backlog). ``last_scheduled_slot``
is otherwise left to the dispatcher (`protection.backups.services.dispatch_due_backups`). Schedules
never start in the past (see `protection.policies.services._first_slot_start`); an hourly one starts
today at its start time, so the next slot after now is its first, and no earlier slot ever runs.
"""

from __future__ import annotations

import datetime as dt

from protection.models import BackupInstance, BackupPolicy, ProtectionState
from security import clock

# States in which the dispatcher schedules backups.
SCHEDULED_STATES = (ProtectionState.CONFIGURED,)


def next_backup_for(instance: BackupInstance, now=None):
    """The next scheduled backup of ``instance`` after now, or None when it is not scheduled."""
    if instance.protection_state not in SCHEDULED_STATES:
        return None
    return instance.policy.parsed.next_run_after(now or clock.now())


def reschedule(instance: BackupInstance, now=None) -> None:
    """Recompute ``next_backup_at`` (call inside the guarded write that changed the policy)."""
    instance.next_backup_at = next_backup_for(instance, now)
    BackupInstance.objects.filter(pk=instance.pk).update(next_backup_at=instance.next_backup_at)


def reschedule_policy_instances(policy: BackupPolicy) -> int:
    """After a policy edit: every scheduled instance using it gets its next backup from the new schedule."""
    now = clock.now()
    count = 0
    for instance in BackupInstance.objects.filter(policy=policy, protection_state__in=SCHEDULED_STATES).select_related("policy"):
        instance.policy = policy
        reschedule(instance, now)
        count += 1
    return count


def schedule_next(instance, *, now: dt.datetime | None = None) -> None:
    """Set ``next_backup_at`` from the policy, counting every slot up to now as done (no backlog).

    Called when protection starts or resumes (configure protection may call it too)."""
    now = now or clock.now()
    policy = instance.policy.parsed
    instance.next_backup_at = policy.next_run_after(now)
    instance.last_scheduled_slot = policy.latest_due(None, now)
