"""What a trainee does in their sandbox before a reset or an isolation check, through the services as the
trainee (the same guards judge it): a vault, a policy, configure protection (the vault identity's missing
roles assigned first), Backup now; and a one-step lab registered by the test, so these tests depend on no
built-in lab."""

from __future__ import annotations

import pytest

from labs import catalogue
from labs.catalogue import CheckResult, Lab, Step


def register_probe_lab(slug: str) -> Lab:
    """A lab of one step whose check reads the container list (real state)."""
    from portal.inventory import services as inv

    def check(ctx):
        if ctx.world.source_account.containers.filter(name="scratch").exists():
            return CheckResult.ok("The container scratch exists.")
        return CheckResult.missing(f"There is no container 'scratch' in {ctx.world.source_account.name} yet.")

    def solve(ctx):
        inv.create_container(ctx.trainee, ctx.world.source_account, name="scratch")

    return catalogue.register(Lab(slug, "Probe", "A test lab.", ("nothing",), 1, catalogue.Document("Test", "none"),
                                  (Step("scratch", "Make a container", "Create **scratch**.", check, solve),)))


@pytest.fixture
def probe_lab():
    lab = register_probe_lab("sandbox-life-probe")
    yield lab
    catalogue._LABS.pop(lab.slug, None)


def protect(trainee, world, datasource, datasource_type, *, run=True, **vault_settings):
    """A vault named after the sandbox, a default policy, and protection of ``datasource`` (its job run
    here unless ``run`` is False). Returns (vault, instance)."""
    from protection import readiness
    from protection.instances import services as instance_services
    from protection.jobs import runner as jobs
    from protection.models import Job
    from protection.policies import services as policy_services
    from vaults import services as vault_services

    vault_settings.setdefault("storage_redundancy", "LocallyRedundant")  # no replication job to wait for
    vault = vault_services.create_vault(trainee, name=f"bv-{world.names.code}", region=world.backup_group.region,
                                        resource_group=world.backup_group, **vault_settings)
    policy = policy_services.create_policy(trainee, vault=vault, name="policy-lab", datasource_type=datasource_type,
                                           spec=policy_services.default_spec(datasource_type))
    source = readiness.Datasource(datasource_type, datasource.resource_id, datasource.name)
    instance_services.assign_missing_roles(trainee, vault=vault, datasources=[source], level=readiness.SCOPE_RESOURCE)
    selection = instance_services.DatasourceSelection(datasource.resource_id, f"bi-{datasource.name}",
                                                      all_containers=hasattr(datasource, "containers"))
    [instance] = instance_services.configure_protection(trainee, vault=vault, policy=policy, selections=[selection])
    if run:
        jobs.run(Job.objects.get(instance=instance).pk)
        instance.refresh_from_db()
    return vault, instance


def backup_now(trainee, instance):
    """Backup now as the trainee, the job run here; returns the ended job."""
    from protection.backups import services as backups
    from protection.jobs import runner as jobs

    return jobs.run(backups.backup_now(trainee, instance, retention_rule="Default").pk)
