"""Lab 3 (Data Lake Storage backup): in a fresh sandbox each check fails before its step and passes after
its solve, to the end; and each check fails on a prepared near miss, saying what is missing by name."""

from __future__ import annotations

import io

import pytest

from tests.labs.conftest import check, solve, step_check

SLUG = "adls-backup"
STEPS = ("vault", "policy", "roles", "protect", "backup", "restore", "equal")


def _names(run):
    from labs.sandboxes import SandboxNames

    return SandboxNames(run.sandbox.code)


def test_every_check_fails_before_its_step_and_passes_after_its_solve(lab, trainee, start):
    from labs import catalogue
    from labs.sandboxes import SandboxWorld
    from portal.inventory import blobs

    run = start(SLUG)
    n = _names(run)
    before = {
        "vault": (f"There is no Backup vault in {n.subscription}", n.backup_group, "East US", n.source_account),
        "policy": ("has no backup policy yet", "Azure Data Lake Storage", "bv-adls"),
        "roles": ("The vault's identity (bv-adls) does not yet hold Storage Account Backup Contributor on "
                  f"{n.source_account}", "Assign missing roles"),
        "protect": (f"{n.source_account} is not protected yet", "exclude logs"),
        "backup": ("has no recovery point yet", "Backup now"),
        "restore": ("Nothing has been restored", "reports/2024/", n.target_account),
        "equal": ("has not been verified yet", "Verify"),
    }
    assert [s.key for s in catalogue.get(SLUG).steps] == list(STEPS)
    for key in STEPS:
        results = check(run)
        passed, message = results[key]
        assert not passed, (key, message)
        for words in before[key]:
            assert words in message, (key, words, message)
        assert all(results[k][0] for k in STEPS[:STEPS.index(key)])
        solve(run, key)
        assert step_check(run, key).passed, (key, step_check(run, key).message)
    results = check(run)
    assert all(passed for passed, _ in results.values()), results
    assert "protects documents and images" in results["protect"][1]
    assert "equal" in results["equal"][1] and "8 restored blobs" in results["equal"][1]
    run.refresh_from_db()
    assert run.completed_at is not None
    # What the checks saw is real: the target holds exactly the asked-for blobs.
    target = SandboxWorld(run.sandbox).target_account
    restored = {c.name: sorted(b.name for b in blobs.iter_blobs(c)) for c in target.containers.all()}
    assert restored == {"documents": [f"reports/2024/q{q}/summary.md" for q in range(1, 5)],
                        "images": [f"photos/IMG_{i:04d}.raw" for i in range(1, 5)]}


def _restore(ctx, point, account, choices):
    """Restore ``choices`` ({container: prefixes}) of ``point`` into ``account`` as the trainee."""
    from protection import readiness
    from protection.restores import services as restores
    from protection.restores import targets

    target = targets.AdlsTarget(account.resource_id, False,
                                tuple(targets.ContainerChoice(c, tuple(p)) for c, p in choices.items()))
    restores.assign_restore_roles(ctx.trainee, point, target, readiness.SCOPE_RESOURCE)
    job = ctx.job_started(restores.start_restore(ctx.trainee, point, target))
    assert job.status == "Completed", (job.error_code, job.error_message)


def _near_miss_vault_policy_roles(run, ctx, n):
    """Steps 1-3: a vault in the wrong region, one without identity; an Elastic SAN policy only; the role
    on the target account instead of the source."""
    from labs.catalogue import adls
    from portal.models import Region
    from protection import datasource_types
    from protection.policies import services as policies
    from security import roles
    from security import services as security_services
    from security.models import RoleDefinition
    from vaults import services as vaults

    group = ctx.world.backup_group
    vaults.create_vault(ctx.trainee, name="bv-west", region=Region.objects.get(name="westus"), resource_group=group)
    result = step_check(run, "vault")
    assert not result.passed and "bv-west is in West US" in result.message and n.source_account in result.message
    vaults.create_vault(ctx.trainee, name="bv-noid", region=ctx.world.source_account.region, resource_group=group,
                        identity_enabled=False)
    result = step_check(run, "vault")
    assert not result.passed and "bv-noid has its system-assigned managed identity off" in result.message
    solve(run, "vault")
    assert step_check(run, "vault").passed

    vault = adls._lab_vault(ctx)
    esan = datasource_types.ELASTIC_SAN
    policies.create_policy(ctx.trainee, vault=vault, name="esan-daily", datasource_type=esan,
                           spec=policies.default_spec(esan))
    result = step_check(run, "policy")
    assert not result.passed and "esan-daily for Elastic SAN" in result.message
    assert "no policy for Azure Data Lake Storage" in result.message
    solve(run, "policy")
    assert step_check(run, "policy").passed

    # Right role, wrong scope: on the target account (the trainee may assign roles in rg-restore).
    security_services.assign_role(ctx.trainee, assignee=vault.identity, scope=ctx.world.target_account.resource_id,
                                  role=RoleDefinition.objects.get(name=roles.STORAGE_ACCOUNT_BACKUP_CONTRIBUTOR))
    result = step_check(run, "roles")
    assert not result.passed
    assert (f"does not yet hold Storage Account Backup Contributor on {n.source_account}" in result.message
            and f"the storage account {n.target_account}, which does not cover {n.source_account}" in result.message)
    solve(run, "roles")
    assert step_check(run, "roles").passed


def _near_miss_protect_backup(run, ctx, n):
    """Steps 4-5: every container protected (logs not excluded), and a recovery point holding logs."""
    from labs.catalogue import adls
    from protection.backups import services as backups
    from protection.instances import services as instances
    from protection.models import Job

    account = ctx.world.source_account
    vault = adls._lab_vault(ctx)
    [instance] = instances.configure_protection(
        ctx.trainee, vault=vault, policy=adls._adls_policies([vault]).first(),
        selections=[instances.DatasourceSelection(account.resource_id, account.name, all_containers=True)])
    result = step_check(run, "protect")
    assert not result.passed and "still Configuring protection" in result.message
    ctx.job_started(Job.objects.get(instance=instance, operation="ConfigureProtection"))
    result = step_check(run, "protect")
    assert not result.passed and "protects documents, images and logs: logs is not excluded" in result.message
    ctx.job_started(backups.backup_now(ctx.trainee, instance, retention_rule="Default"))
    result = step_check(run, "backup")
    assert not result.passed and "holds documents, images and logs" in result.message
    return instance


def _near_miss_restore(run, ctx, n, point):
    """Step 6: back into the source (refused by the product); into another account; one container
    missing; documents whole instead of the prefix."""
    from django.core.exceptions import ValidationError

    from portal.inventory import services as inv
    from protection.restores import services as restores
    from protection.restores import targets

    world = ctx.world
    with pytest.raises(ValidationError, match="UserErrorOriginalLocationRestoreNotSupported"):
        restores.start_restore(ctx.trainee, point, targets.AdlsTarget(world.source_account.resource_id, True))
    result = step_check(run, "restore")
    assert not result.passed and "Nothing has been restored" in result.message
    other = inv.create_storage_account(ctx.trainee, resource_group=world.restore_group, name=f"sbx{n.code}alt",
                                       region=world.source_account.region, hierarchical_namespace=True)
    _restore(ctx, point, other, {"documents": ["reports/2024/"], "images": []})
    result = step_check(run, "restore")
    assert not result.passed
    assert f"Your restore went into {other.name}, not into {n.target_account}" in result.message
    assert f"The container documents has not been restored into {n.target_account}" in result.message

    _restore(ctx, point, world.target_account, {"images": []})
    result = step_check(run, "restore")
    assert not result.passed and result.message.startswith(
        f"The container documents has not been restored into {n.target_account} yet.")

    _restore(ctx, point, world.target_account, {"documents": []})
    result = step_check(run, "restore")
    assert not result.passed
    assert "The container documents was restored whole; this lab restores only the prefix reports/2024/" in result.message
    inv.delete_container(ctx.trainee, world.target_account.containers.get(name="documents"))
    _restore(ctx, point, world.target_account, {"documents": ["reports/2024/"]})
    assert step_check(run, "restore").passed


def _near_miss_equal(run, ctx, n, point):
    """Step 7: not verified yet; then a restored blob changed and one deleted after the restore."""
    from portal.inventory import services as inv
    from protection.restores import services as restores

    result = step_check(run, "equal")
    assert not result.passed and "has not been verified yet" in result.message
    ctx.job_started(restores.start_verify(ctx.trainee, point))
    assert step_check(run, "equal").passed
    target = ctx.world.target_account
    images = target.containers.get(name="images")
    inv.upload_blobs(ctx.trainee, images, [inv.Upload("photos/IMG_0002.raw", io.BytesIO(b"not the photo"))],
                     overwrite=True)
    inv.delete_blobs(ctx.trainee, target.containers.get(name="documents"), ["reports/2024/q3/summary.md"])
    result = step_check(run, "equal")
    assert not result.passed
    assert "images/photos/IMG_0002.raw differs (SHA-256" in result.message
    assert f"in {n.target_account})" in result.message
    assert f"documents/reports/2024/q3/summary.md is missing from {n.target_account}" in result.message
    assert f"Delete images and documents in {n.target_account}" in result.message


def test_each_check_fails_on_a_near_miss_and_names_what_is_missing(lab, trainee, start):
    from labs import services
    from protection.models import RecoveryPoint

    run = start(SLUG)
    ctx = services.context_for(run, run_jobs_inline=True)
    n = _names(run)
    _near_miss_vault_policy_roles(run, ctx, n)
    instance = _near_miss_protect_backup(run, ctx, n)
    point = RecoveryPoint.objects.filter(instance=instance).latest("recovery_point_time")
    _near_miss_restore(run, ctx, n, point)
    _near_miss_equal(run, ctx, n, point)
