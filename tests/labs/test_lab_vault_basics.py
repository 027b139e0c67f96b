"""Lab 1, "Create a Backup vault", in a fresh sandbox: each check fails before its step, fails on a near
miss (the wrong redundancy, the default soft-delete retention, a policy without its Monthly rule, the
refusal of another vault), and passes after its solve, step by step to the end."""

from __future__ import annotations

import pytest

from tests.labs.conftest import check, solve, step_check

pytestmark = pytest.mark.django_db


def _one(run, key: str) -> tuple[bool, str]:
    result = step_check(run, key)
    return result.passed, result.message


def _passed(run) -> list[str]:
    return [key for key, (passed, _) in check(run).items() if passed]


def test_vault_basics_step_by_step_with_near_misses(lab, trainee, start):
    from django.core.exceptions import ValidationError

    from labs import services
    from labs.catalogue import vault_basics as lab1
    from portal.lab import LAB_REGION
    from portal.models import Region
    from protection.policies import services as policy_services
    from protection.policies.services import PolicySpec
    from security.guards import GuardDenied
    from vaults import services as vault_services
    from vaults.guards import VAULT_NOT_EMPTY_MESSAGE
    from vaults.models import BackupVault

    run = start("vault-basics")
    world = services.context_for(run).world
    group, region = world.backup_group, Region.objects.get(name=LAB_REGION)

    # 1. The vault: missing, then Geo-redundant (the wizard's default), then solved.
    results = check(run)
    assert results["vault"] == (False, f"There is no Backup vault named bv-training in the resource group {group.name} "
                                       "yet: go to Backup vaults > + Create.")
    assert results["soft-delete"] == (False, "")  # not checked: the checks stop at the first failure
    vault = vault_services.create_vault(trainee, name="bv-training", region=region, resource_group=group)
    passed, message = _one(run, "vault")
    assert not passed and "Backup storage redundancy Geo-redundant" in message and "Locally-redundant" in message
    solve(run, "vault")
    vault.refresh_from_db()
    assert vault.storage_redundancy == "LocallyRedundant" and vault.soft_delete_retention_days == 14

    # 2. Soft delete: the default 14 days is the near miss.
    results = check(run)
    assert results["vault"][0] and not results["soft-delete"][0]
    assert "keeps deleted items for 14 days" in results["soft-delete"][1] and "Retention period of 30 days" in results["soft-delete"][1]
    solve(run, "soft-delete")

    # 3. The policy: one with a Weekly rule only is a near miss.
    assert "has no backup policy yet" in check(run)["policy"][1]
    weekly_only = PolicySpec("Daily", lab1.POLICY_SPEC.time, (), lab1.RULES["Default"], {"Weekly": lab1.RULES["Weekly"]})
    policy_services.create_policy(trainee, vault=vault, name=lab1.POLICY_NAME, datasource_type=lab1.POLICY_TYPE,
                                  spec=weekly_only)
    passed, message = _one(run, "policy")
    assert not passed and "it has no Monthly retention rule" in message and lab1.POLICY_NAME in message
    solve(run, "policy")
    passed, message = _one(run, "policy")
    assert passed and "Monthly (priority 15) > Weekly (priority 20) > Default (priority 99)" in message

    # 4. The refused delete: another vault's refusal does not count; the solve's refusal does.
    results = check(run)
    assert _passed(run) == ["vault", "soft-delete", "policy"]
    assert results["delete-refused"][1].startswith("No refused Delete of bv-training by you is in the Activity log yet")
    other = vault_services.create_vault(trainee, name="bv-other", region=region, resource_group=group)
    policy_services.create_policy(trainee, vault=other, name="other-policy", datasource_type=lab1.POLICY_TYPE,
                                  spec=lab1.POLICY_SPEC)
    with pytest.raises(GuardDenied):
        vault_services.delete_vault(trainee, other)
    passed, message = _one(run, "delete-refused")
    assert not passed and "the refusal for bv-other is another vault's" in message
    solve(run, "delete-refused")
    assert BackupVault.objects.filter(pk=vault.pk).exists()
    passed, message = _one(run, "delete-refused")
    assert passed and VAULT_NOT_EMPTY_MESSAGE in message and "Vault deletion rules" in message

    assert all(passed for passed, _ in check(run).values())
    run.refresh_from_db()
    assert run.completed_at is not None

    # The solve never deletes a vault that nothing protects: it says what to do first.
    policy_services.delete_policy(trainee, vault.backup_policies.get())
    with pytest.raises(ValidationError, match="solve step 3 first"):
        solve(run, "delete-refused")
    assert BackupVault.objects.filter(pk=vault.pk).exists()
