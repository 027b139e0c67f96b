"""Lab 2, "Protect an Elastic SAN volume", in a fresh sandbox: each check fails before its step, fails on a
near miss (a policy of another type; the role on another volume, then at the resource group; the backup,
verify and restore of another volume; a restored volume changed afterwards) and passes after its solve."""

from __future__ import annotations

import pytest

from tests.labs.conftest import check, solve, step_check

pytestmark = pytest.mark.django_db


def _one(run, key: str) -> tuple[bool, str]:
    result = step_check(run, key)
    return result.passed, result.message


def _run(job):
    from protection.jobs import runner

    runner.run(job.pk)
    job.refresh_from_db()
    assert job.status == "Completed", (job.operation, job.error_code, job.error_message)
    return job


def test_elastic_san_step_by_step_with_near_misses(lab, trainee, start):
    from labs import services
    from portal.inventory import services as inventory
    from protection import datasource_types, readiness
    from protection.backups import services as backup_services
    from protection.instances import services as instance_services
    from protection.models import BackupInstance, Job
    from protection.policies import services as policy_services
    from protection.restores import services as restore_services
    from protection.restores import targets
    from security import roles
    from security import services as security_services
    from security.models import RoleAssignment, RoleDefinition
    from vaults.models import BackupVault

    run = start("elastic-san-backup")
    world = services.context_for(run).world
    names, volume, group = world.names, world.volume, world.volume.volume_group
    vault = BackupVault.objects.get(resource_group=world.backup_group, name="bv-esan")  # made by prepare, as the trainee
    assert vault.created_by == trainee and vault.identity.enabled
    esan = datasource_types.ELASTIC_SAN

    # 1. The policy: one for another datasource type is a near miss.
    results = check(run)
    assert not results["policy"][0] and "no backup policy with Datasource type Elastic SAN (Preview)" in results["policy"][1]
    policy_services.create_policy(trainee, vault=vault, name="adls-only", datasource_type=datasource_types.ADLS,
                                  spec=policy_services.default_spec(datasource_types.ADLS))
    passed, message = _one(run, "policy")
    assert not passed and "adls-only is for another datasource type" in message
    solve(run, "policy")

    # 2. The roles. Near miss: the exporter role on another volume, then at the resource group (which
    # readiness accepts, inherited, but which is wider than the step asks for).
    results = check(run)
    assert results["policy"][0] and not results["roles"][0]
    assert (f"does not yet hold Elastic SAN Snapshot Exporter on the Elastic SAN {names.elastic_san}" in results["roles"][1]
            and f"does not yet hold Disk Snapshot Contributor on the snapshot resource group {names.backup_group}"
            in results["roles"][1] and readiness.ROLE_ASSIGNMENT_NOT_DONE in results["roles"][1])
    other = inventory.create_volume(trainee, group, name="vol-other", size_gib=1)
    exporter = RoleDefinition.objects.get(name=roles.ELASTIC_SAN_SNAPSHOT_EXPORTER)
    security_services.assign_role(trainee, assignee=vault.identity, role=exporter, scope=other.resource_id)
    passed, message = _one(run, "roles")
    assert not passed and f"does not yet hold Elastic SAN Snapshot Exporter on the Elastic SAN {names.elastic_san}" in message
    candidate = next(c for c in instance_services.candidates(trainee, vault, esan) if c.resource_id == volume.resource_id)
    datasource = candidate.datasource(world.backup_group.resource_id)
    before = instance_services.check_readiness(trainee, vault, candidate, world.backup_group.resource_id)
    assert before.status == readiness.ROLE_ASSIGNMENT_NOT_DONE and before.can_assign
    instance_services.assign_missing_roles(trainee, vault=vault, datasources=[datasource],
                                           level=readiness.SCOPE_RESOURCE_GROUP)
    assert instance_services.check_readiness(trainee, vault, candidate, world.backup_group.resource_id).ok
    passed, message = _one(run, "roles")
    assert not passed and (f"it holds Elastic SAN Snapshot Exporter on the resource group {names.backup_group}, wider "
                           f"than needed: the lab asks for it on the Elastic SAN {names.elastic_san} only") in message
    solve(run, "roles")
    held = RoleAssignment.objects.filter(principal=vault.identity, role=exporter, closed_at__isnull=True)
    assert sorted(a.scope.rsplit("/", 1)[-1] for a in held) == [names.elastic_san, "vol-other"]

    # 3. Configure protection: protecting another volume is a near miss.
    results = check(run)
    assert results["roles"][0] and f"has no backup instance of {names.volume} yet" in results["configure"][1]
    [other_instance] = instance_services.configure_protection(
        trainee, vault=vault, policy=vault.backup_policies.get(datasource_type=esan),
        selections=[instance_services.DatasourceSelection(other.resource_id, "bi-other",
                                                          snapshot_resource_group_id=world.backup_group.resource_id)])
    _run(Job.objects.get(instance=other_instance))
    passed, message = _one(run, "configure")
    assert not passed and "(vol-other is protected there, not vol-data)" in message
    solve(run, "configure")
    instance = BackupInstance.objects.get(vault=vault, datasource_resource_id=volume.resource_id)
    assert instance.protection_state == "ProtectionConfigured"

    # 4. Backup now: a backup of the other volume does not count.
    results = check(run)
    assert results["configure"][0] and f"has no recovery point of {names.volume} yet" in results["backup"][1]
    _run(backup_services.backup_now(trainee, BackupInstance.objects.get(pk=other_instance.pk), retention_rule="Default"))
    passed, message = _one(run, "backup")
    assert not passed and "vol-other is protected there" in message
    solve(run, "backup")

    # 5. Verify: verifying the other volume's recovery point does not count.
    results = check(run)
    assert results["backup"][0] and "No recovery point of" in results["verify"][1] and "Verify" in results["verify"][1]
    other_point = other_instance.recovery_points.get()
    _run(restore_services.start_verify(trainee, other_point))
    passed, message = _one(run, "verify")
    assert not passed and "vol-other is protected there" in message
    # The hourly scheduled verify reads vol-data's point too: healthy, but not the trainee's Verify.
    for scheduled in restore_services.start_scheduled_verifies():
        _run(Job.objects.get(pk=scheduled))
    assert instance.recovery_points.get().health == "Healthy"
    assert not _one(run, "verify")[0]
    solve(run, "verify")

    # 6. Restore: restoring the other volume does not count; a restored volume changed afterwards differs.
    results = check(run)
    assert results["verify"][0] and "No restore of" in results["restore"][1] and "to a new volume" in results["restore"][1]
    other_target = targets.VolumeTarget(group.resource_id, "vol-other-restore")
    restore_services.assign_restore_roles(trainee, other_point, other_target, readiness.SCOPE_RESOURCE)
    _run(restore_services.start_restore(trainee, other_point, other_target))
    passed, message = _one(run, "restore")
    assert not passed and "vol-other is protected there" in message
    solve(run, "restore")
    passed, message = _one(run, "restore")
    restored = group.volumes.get(name="vol-data-restore")
    assert passed and f"has checksum {volume.last_checksum}, equal to {names.volume}'s at backup" in message
    inventory.write_sample_data_now(trainee, restored)  # the restored copy changes after the restore
    passed, message = _one(run, "restore")
    assert not passed and "the restored volume vol-data-restore has checksum" in message and "differs" in message
    solve(run, "restore")  # a second restore, to a new name
    assert _one(run, "restore")[0] and group.volumes.filter(name="vol-data-restore2").exists()

    assert all(passed for passed, _ in check(run).values())
    run.refresh_from_db()
    assert run.completed_at is not None
