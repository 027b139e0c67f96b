"""The private endpoint lab: in a fresh sandbox each check fails before its step and passes after its solve, to a
backup that really went through the endpoint; a backup tried before the endpoint is refused by the network guard;
an endpoint made without DNS integration leaves the DNS step failing until the trainee adds the records."""

from __future__ import annotations

import pytest

from tests.labs.conftest import check, solve, step_check

SLUG = "private-endpoints"
STEPS = ("network", "vault", "deny", "endpoint", "dns", "backup")


def _names(run):
    from labs.sandboxes import SandboxNames

    return SandboxNames(run.sandbox.code)


def test_every_check_fails_before_its_step_and_passes_after_its_solve(lab, trainee, start):
    from labs import catalogue

    run = start(SLUG)
    n = _names(run)
    before = {
        "network": (f"{n.source_account} is on the public network", "vnet-workload", "10.40.1.0/24"),
        "vault": ("Create a new vault bv-private", n.backup_group),
        "deny": ("bv-private still allows access from all networks", "Deny"),
        "endpoint": ("bv-private has no private endpoint in vnet-workload", "AzureBackup", "Integrate"),
        "dns": ("Do step 4 first",),
        "backup": (f"{n.source_account} is not protected in bv-private",),
    }
    assert [s.key for s in catalogue.get(SLUG).steps] == list(STEPS)
    for key in STEPS:
        results = check(run)
        passed, message = results[key]
        if key != "dns":  # the DNS step passes with the endpoint's own records (Integrate = Yes)
            assert not passed, (key, message)
            for words in before[key]:
                assert words in message, (key, words, message)
        assert all(results[k][0] for k in STEPS[:STEPS.index(key)]), results
        solve(run, key)
        assert step_check(run, key).passed, (key, step_check(run, key).message)
    results = check(run)
    assert all(passed for passed, _ in results.values()), results
    assert "resolves to 10.40.1." in results["dns"][1]
    run.refresh_from_db()
    assert run.completed_at is not None


def test_a_backup_before_the_endpoint_is_refused_and_dns_without_integration_fails_until_records_are_added(
        lab, trainee, start):
    from labs import services
    from labs.catalogue import private_endpoints as pe
    from protection import datasource_types, readiness
    from protection.instances import services as instance_services
    from protection.models import BackupPolicy
    from protection.policies import services as policy_services
    from django.core.exceptions import ValidationError
    from vaults.networking import services as net

    run = start(SLUG)
    for key in ("network", "vault", "deny"):
        solve(run, key)
    ctx = services.context_for(run, run_jobs_inline=True)
    vault, subnet = pe._vault(ctx), pe._subnet(ctx)
    # An endpoint without DNS integration: approved, but the vault's name still resolves publicly in the VNet.
    net.create_private_endpoint(ctx.trainee, name="pe-nodns", resource_group=ctx.world.backup_group, vault=vault,
                                subnet=subnet, integrate_dns=False, tags={})
    assert step_check(run, "endpoint").passed
    dns_step = step_check(run, "dns")
    assert not dns_step.passed and "203.0.113." in dns_step.message and "PrivateDnsResolutionFailed" in dns_step.message
    # Configure protection is refused before the click: the network guard resolves the vault's name publicly.
    account = ctx.world.source_account
    policy = policy_services.create_policy(ctx.trainee, vault=vault, name="adls-private", datasource_type=datasource_types.ADLS,
                                           spec=policy_services.default_spec(datasource_types.ADLS))
    datasource = readiness.Datasource(datasource_types.ADLS, account.resource_id, account.name)
    instance_services.assign_missing_roles(ctx.trainee, vault=vault, datasources=[datasource],
                                           level=readiness.SCOPE_RESOURCE)
    assert BackupPolicy.objects.filter(pk=policy.pk).exists()
    with pytest.raises(ValidationError, match="Network access denied.*PrivateDnsResolutionFailed"):
        instance_services.configure_protection(
            ctx.trainee, vault=vault, policy=policy,
            selections=[instance_services.DatasourceSelection(account.resource_id, account.name, all_containers=True)])
    # The trainee adds the listed records (the DNS step's solve): resolution is private, the step passes.
    solve(run, "dns")
    assert step_check(run, "dns").passed
    solve(run, "backup")
    assert step_check(run, "backup").passed, step_check(run, "backup").message
