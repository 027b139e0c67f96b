"""Lab 5, the ransomware drill.

GIVEN a fresh sandbox (vault bv-drill-<code>: the source account backed up in the vault tier, the volume
vol-data backed up and its backup data already deleted, soft delete keeping it; the security admin's
guard-<code>) THEN every check fails before its step, fails on a prepared near miss (immutability enabled but
not locked, soft delete enabled but not always-on, a guard of one's own, an attempt that failed for another
reason, an undelete of the wrong item, a restore of the wrong item) and passes after its solve, to the end;
and nothing the attacker tried destroyed a recovery point.
"""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from tests._image_checksum import whole_image_sha256
from tests.labs.conftest import check, solve, step_check

SLUG = "ransomware-drill"
STEPS = ["immutability", "soft-delete", "guard", "attack", "undelete", "restore"]


def _fails(run, step, *words):
    result = step_check(run, step)
    assert not result.passed, (step, result.message)
    for word in words:
        assert word in result.message, (step, word, result.message)
    return result.message


def _passes(run, step):
    result = step_check(run, step)
    assert result.passed, (step, result.message)
    return result.message


def test_every_check_fails_before_passes_after_and_fails_on_near_misses(lab, trainee, start):
    from labs import services
    from labs.catalogue import ransomware as lab5
    from protection.deletion import services as deletion
    from protection.restores import readiness, services as restores, targets
    from security import mua
    from security.guards import GuardDenied
    from vaults import services as vault_services

    run = start(SLUG)
    ctx = services.context_for(run)
    vault, account_item, volume_item, guard = lab5._need(ctx)
    assert volume_item.protection_state == "SoftDeleted" and account_item.protection_state == "ProtectionConfigured"
    points = set(account_item.recovery_points.values_list("pk", flat=True)) | set(
        volume_item.recovery_points.values_list("pk", flat=True))
    assert len(points) == 2
    for step in STEPS:
        _fails(run, step)

    # 1. Enabled is not locked.
    vault_services.update_immutability(trainee, vault, state="Unlocked")
    _fails(run, "immutability", "Enabled but not locked")
    solve(run, "immutability")
    _passes(run, "immutability")
    # 2. Enabled (even with a longer retention) is not always-on.
    vault.refresh_from_db()
    vault_services.update_soft_delete(trainee, vault, state="On", retention_days=30)
    _fails(run, "soft-delete", "Enabled, not always-on")
    solve(run, "soft-delete")
    _passes(run, "soft-delete")
    # 3. A guard of one's own protects nothing.
    vault.refresh_from_db()
    own = mua.create_resource_guard(trainee, resource_group_id=ctx.world.backup_group.resource_id, name="guard-mine",
                                    region=vault.region_id)
    mua.link_resource_guard(trainee, vault, guard_id=own.resource_id, region=vault.region_id)
    _fails(run, "guard", "guard-mine")
    mua.unlink_resource_guard(trainee, vault)
    solve(run, "guard")
    _passes(run, "guard")

    # 4. A failure that is no guard's refusal does not count; the check names what is still to try.
    vault.refresh_from_db()
    with pytest.raises(ValidationError):
        vault_services.update_soft_delete(trainee, vault, state="AlwaysOn", retention_days=5)
    with pytest.raises(GuardDenied):
        vault_services.delete_vault(trainee, vault)
    message = _fails(run, "attack", "Delete the vault (refused by the vault deletion rules)",
                     "Disable soft delete failed for another reason", "Disable immutability: Properties")
    assert f"Delete backup data: Backup instances > {account_item.name} > Delete" in message
    solve(run, "attack")
    message = _passes(run, "attack")
    assert "Disable immutability (refused by the immutable vault)" in message
    assert "Remove MUA protection (refused by the Resource Guard (multi-user authorization))" in message

    # 5. Undeleting the wrong item (one that is not soft deleted) is refused and does not count.
    with pytest.raises(GuardDenied):
        deletion.undelete(trainee, account_item)
    _fails(run, "undelete", "Soft deleted")
    solve(run, "undelete")
    _passes(run, "undelete")

    # 6. A restore of the other item (the account, into sbx<code>dst) is not the proof asked for.
    point = account_item.recovery_points.first()
    target = targets.AdlsTarget(ctx.world.target_account.resource_id)
    restores.assign_restore_roles(trainee, point, target, readiness.SCOPE_RESOURCE)
    services.context_for(run, run_jobs_inline=True).job_started(restores.start_restore(trainee, point, target))
    _fails(run, "restore", f"You restored {account_item.name}")
    solve(run, "restore")
    assert "The data is intact" in _passes(run, "restore")

    results = check(run)
    assert all(passed for passed, _ in results.values()), results
    run.refresh_from_db()
    assert run.completed_at is not None
    # Nothing the attacker tried destroyed a recovery point, and the vault is still locked down.
    vault.refresh_from_db()
    assert vault.immutability_state == "Locked" and vault.soft_delete_state == "AlwaysOn"
    assert mua.is_linked(vault.resource_id)
    from protection.models import RecoveryPoint

    assert points <= set(RecoveryPoint.objects.filter(pk__in=points).values_list("pk", flat=True))

    # A point taken before content checksums recorded the whole image's SHA-256: the restored volume is
    # compared with it in that kind (and the source's checksum, of that time too, matches neither).
    from portal.inventory.models import Volume
    from protection.models import Job

    job = Job.objects.filter(instance=volume_item, operation="Restore", status="Completed").latest("start_time")
    restored = Volume.objects.get(resource_id=job.extended_info["restore"]["targetResourceId"])
    whole = whole_image_sha256(restored.image_path)
    Volume.objects.filter(pk=ctx.world.volume.pk).update(last_checksum="0" * 64)
    job.extended_info["restore"]["expectedChecksum"] = whole
    job.save(update_fields=["extended_info"])
    assert "recorded when" in _passes(run, "restore")
    job.extended_info["restore"]["expectedChecksum"] = whole[::-1]
    job.save(update_fields=["extended_info"])
    _fails(run, "restore", "checksum differs")
