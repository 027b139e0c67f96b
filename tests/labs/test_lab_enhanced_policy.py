"""Lab "Enhanced policy and tiering" in a fresh sandbox: each check fails before its step and on a near miss
(a Daily disk policy, then Hourly every 6 hours; the disk's own group for its snapshots; a policy tiering On
expiry, and the server protected by it; no scheduled backup yet, then a scheduled one alone, then a wrong tag; a
point too young to move; a rehydration not yet restorable) and passes after
its solve, in order. The lab clock moves (as a Lab Instructor would) for the hourly slots, the 3 months and the
hour of a High priority rehydration; then a reset takes the old sandbox down whole."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from django.core.exceptions import ValidationError

from tests.labs.conftest import check, solve, step_check

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _morning():
    """The hourly and daily slots this lab walks through depend on the time of day it starts: started late in
    the evening, the hour steps crossed midnight into the PostgreSQL policy's next daily slot, whose point the
    tiering rule then moved while the test reset the sandbox. Always start on the same (ticking) morning."""
    import time_machine

    with time_machine.travel(dt.datetime(2027, 5, 12, 9, 30, tzinfo=dt.timezone.utc), tick=True):
        yield

SLUG = "enhanced-policy-tiering"
STEPS = ["disk-policy", "disk-protect", "pg-policy", "pg-backup", "hourly", "archive", "rehydrate"]


def _fails(run, step, *words):
    result = step_check(run, step)
    assert not result.passed, (step, result.message)
    for word in words:
        assert word in result.message, (step, word, result.message)
    return result.message


def _passes(run, step, *words):
    result = step_check(run, step)
    assert result.passed, (step, result.message)
    for word in words:
        assert word in result.message, (step, word, result.message)
    return result.message


def _forward(lab, instance, *, past_minutes=5):
    """Move the lab clock past the instance's next slot (as the instructor) and run the due backups inline."""
    from protection.backups import services as backup_services
    from protection.jobs import runner
    from protection.models import Job
    from security import clock
    from security import services as security_services

    instance.refresh_from_db()
    security_services.move_lab_clock(lab.trainer, forward=instance.next_backup_at - clock.now()
                                     + dt.timedelta(minutes=past_minutes))
    report = backup_services.dispatch_due_backups()
    for job_id in report.enqueued:
        runner.run(job_id)
        job = Job.objects.get(pk=job_id)
        assert job.status == "Completed", (job.error_code, job.error_message)
    return report


def vault_policy(vault, name):
    from protection.models import BackupPolicy

    return BackupPolicy.objects.get(vault=vault, name=name)


def test_enhanced_policy_and_tiering_step_by_step(lab, trainee, start):
    from labs import services
    from labs.catalogue import enhanced_policy as lab_module
    from labs.catalogue import enhanced_policy_tiering as tier
    from protection import datasource_types
    from protection.models import RecoveryPoint
    from protection.policies import services as policy_services

    run = start(SLUG)
    ctx = services.context_for(run)
    vault, disk = lab_module._vault(ctx), lab_module._disk(ctx)
    assert vault.created_by == trainee and disk.size_gib == 1 and disk.sample_writes == 1
    results = check(run)
    assert not any(results[s][0] for s in STEPS), results

    # 1. A Daily disk policy, then Hourly every 6 hours, are near misses.
    disk_kind = datasource_types.AZURE_DISK
    daily = policy_services.create_policy(trainee, vault=vault, name="disk-daily", datasource_type=disk_kind,
                                          spec=dataclasses.replace(lab_module.DISK_SPEC, frequency="Daily", every=None))
    _fails(run, "disk-policy", "disk-daily", "is Daily, not Hourly")
    policy_services.delete_policy(trainee, daily)
    policy_services.create_policy(trainee, vault=vault, name="disk-six", datasource_type=disk_kind,
                                  spec=dataclasses.replace(lab_module.DISK_SPEC, every=6))
    _fails(run, "disk-policy", "every 6 hours (PT6H)")
    solve(run, "disk-policy")
    _passes(run, "disk-policy", "disk-hourly", "/PT4H", "first successful backup of each day 30 days")

    # 2. Protection: the disk's own group as Snapshot resource group is refused by the service; the solve uses rg-restore.
    from protection.instances import services as instance_services

    _fails(run, "disk-protect", "no backup instance of disk-data")
    hourly = vault_policy(vault, "disk-hourly")
    with pytest.raises(ValidationError, match="cannot be the disk's own resource group"):
        instance_services.configure_protection(trainee, vault=vault, policy=hourly, selections=[
            instance_services.DatasourceSelection(disk.resource_id, "disk-data-own",
                                                  snapshot_resource_group_id=ctx.world.backup_group.resource_id)])
    _fails(run, "disk-protect", "no backup instance of disk-data")
    solve(run, "disk-protect")
    _passes(run, "disk-protect", f"snapshots go to {ctx.names.restore_group}")
    instance = lab_module._disk_instance(ctx)

    # 3. A PostgreSQL policy tiering On expiry is a near miss.
    pg_kind = datasource_types.POSTGRES_FLEX
    on_expiry = dataclasses.replace(tier.PG_SPEC, tiering=policy_services.Tiering(
        None, policy_services.Retention(1, "Years")))
    policy_services.create_policy(trainee, vault=vault, name="pg-on-expiry", datasource_type=pg_kind, spec=on_expiry)
    _fails(run, "pg-policy", "pg-on-expiry", "On expiry (CopyOnExpiryOption")
    solve(run, "pg-policy")
    _passes(run, "pg-policy", "pg-archive", "CustomCopyOption P3M")

    # 4. Back the server up under the tiering policy; the check reads when the point moves and why not yet.
    _fails(run, "pg-backup", f"no backup instance of the server {ctx.names.pg_server}")
    _fails(run, "archive", "do step 4 first")
    # Near miss: the server protected with the policy that tiers On expiry; then Change policy to pg-archive.
    from protection import readiness
    from protection.jobs import runner

    server = ctx.world.pg_server
    instance_services.assign_missing_roles(trainee, vault=vault, datasources=[readiness.Datasource(
        pg_kind, server.resource_id, server.name)], level=readiness.SCOPE_RESOURCE)
    [pg_instance] = instance_services.configure_protection(trainee, vault=vault, policy=vault_policy(vault, "pg-on-expiry"),
                                                           selections=[instance_services.DatasourceSelection(
                                                               server.resource_id, server.name)])
    for job in pg_instance.jobs.filter(operation="ConfigureProtection", status="InProgress"):
        runner.run(job.pk)
    _fails(run, "pg-backup", "uses the policy pg-on-expiry", "On expiry")
    instance_services.change_policy(trainee, pg_instance, vault_policy(vault, "pg-archive"))
    solve(run, "pg-backup")
    message = _passes(run, "pg-backup", "VaultStore", "Only points at least 3 months old can move to archive")
    point = RecoveryPoint.objects.get(instance=tier._pg_instance(ctx))
    assert point.expiry_time == tier._tiering(point.instance.policy).expiry(point.recovery_point_time), message

    # 5. No scheduled backup yet: the check and the solve say the next slot; a Backup now alone does not count.
    _fails(run, "hourly", "none yet from the hourly schedule", "The next is due at")
    with pytest.raises(ValidationError, match="only time brings it"):
        solve(run, "hourly")
    _forward(lab, instance)
    _fails(run, "hourly", "one recovery point, from the schedule (Daily)")
    solve(run, "hourly")  # Backup now, Default
    message = _passes(run, "hourly", "2 recovery points (1 from the schedule)", "Daily", "Default (Backup now)")
    # The next slot of the same day is tagged Default by the rules (a near miss would be a second Daily).
    _forward(lab, instance)
    points = list(RecoveryPoint.objects.filter(instance=instance, is_user_triggered=False).order_by("recovery_point_time"))
    assert len(points) == 2 and message
    if points[0].recovery_point_time.date() == points[1].recovery_point_time.date():
        assert [p.retention_tag for p in points] == ["Daily", "Default"]
    RecoveryPoint.objects.filter(pk=points[-1].pk).update(retention_tag="Daily" if points[-1].retention_tag == "Default"
                                                          else "Default")
    _fails(run, "hourly", "not what the policy's rules give")
    RecoveryPoint.objects.filter(pk=points[-1].pk).update(retention_tag=points[-1].retention_tag)
    _passes(run, "hourly")

    # 6. Too young: the check and the solve say why; 92 days later the solve moves it.
    _fails(run, "archive", "cannot move yet", "Only points at least 3 months old", "Lab Instructor")
    with pytest.raises(ValidationError, match="Only points at least 3 months old"):
        solve(run, "archive")
    from security import services as security_services

    security_services.move_lab_clock(lab.trainer, forward=dt.timedelta(days=92))
    _fails(run, "archive", "may move to archive now")
    solve(run, "archive")
    _passes(run, "archive", "is in Vault-archive")

    # 7. Rehydrate, then restore: High priority is an hour on the lab clock before the restore starts.
    from protection.models import Job
    from protection.restores import rehydration

    _fails(run, "rehydrate", "has not been rehydrated for a restore yet", "pg-rehydrated")
    solve(run, "rehydrate")
    _fails(run, "rehydrate", "being rehydrated (High priority)", "restorable from")
    with pytest.raises(ValidationError, match="Only time brings it"):
        solve(run, "rehydrate")
    security_services.move_lab_clock(lab.trainer, forward=dt.timedelta(minutes=61))
    assert rehydration.settle()["restoresStarted"] == 1
    restore = Job.objects.get(operation="Restore", instance=point.instance)
    runner.run(restore.pk)
    _passes(run, "rehydrate", "Restore after rehydration completed")
    results = check(run)
    assert all(results[s][0] for s in STEPS), results

    # Reset: the old sandbox, with its disk, the snapshots in rg-restore and an archived point, is taken down.
    from labs import teardown
    from labs.models import Sandbox
    from portal.inventory.disks.models import ManagedDisk

    old, image = run.sandbox, disk.image_path
    services.reset_lab(trainee, run, run_jobs_inline=True)
    for _ in range(4):
        old = teardown.take_down(old)
        if old.status == Sandbox.Status.DELETED:
            break
        for job in Job.objects.filter(vault=vault, status="InProgress"):
            runner.run(job.pk)
    assert old.status == Sandbox.Status.DELETED, old.kept_because
    assert not ManagedDisk.objects.filter(pk=disk.pk).exists() and not image.exists()


def test_every_step_names_the_sandbox_and_the_reference_labels():
    from labs import catalogue
    from labs.sandboxes import SandboxNames

    lab = catalogue.get(SLUG)
    assert lab is not None and not lab.unavailable() and [s.key for s in lab.steps] == STEPS
    names = SandboxNames("abc123")
    text = " ".join(step.instructions_html(names) + " ".join(step.hints_for(names)) for step in lab.steps)
    assert "{" not in text and "rg-restore-abc123" in text and "pg-abc123" in text and "sbxabc123dst" in text
    for label in ("Hourly", "Every", "First successful backup taken daily", "Snapshot resource group",
                  "Assign missing roles", "Tier to archive", "Move to archive", "Rehydration priority"):
        assert label in text, label
    assert [bool(s.needs_time) for s in lab.steps] == [False, False, False, False, True, True, True]
