"""Configure protection through the services: what the Datasources tab offers per type (reference
§5.4, §5.8), the ConfigureProtection job (§1.4 states), change policy, and the authorization matrix."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError

from protection import datasource_types
from protection.jobs import runner as jobs
from protection.models import BackupInstance, Job, JobCategory, JobOperation, JobStatus, ProtectionState
from protection.instances import services as svc
from protection.policies.services import Retention
from security import clock, roles
from security import services as security_services
from security.models import RoleAssignment
from tests.protection._protection_fixtures import (  # noqa: F401  (fixtures)
    grant, inventory, make_policy, principal_with, protect, vault,
)
from tests.conftest import rbac_allows as attempt

ADLS, ESAN, PG = datasource_types.ADLS, datasource_types.ELASTIC_SAN, datasource_types.POSTGRES_FLEX
Sel = svc.DatasourceSelection


def messages(exc_info):
    return exc_info.value.message_dict


# --- what is offered ------------------------------------------------------------------------------


def test_storage_accounts_offered_are_hns_accounts_of_the_vaults_region(lab, vault, inventory, backup_admin):
    from portal.inventory import services as inv
    from portal.models import Region

    far = inv.create_storage_account(lab.trainer, resource_group=lab.lab_group, name="sawestonly",
                                     region=Region.objects.get(name="westus"))
    inv.create_container(lab.trainer, far, name="docs")
    rows = {c.name: c for c in svc.storage_account_candidates(backup_admin, vault)}
    assert far.name not in rows  # another region: not listed at all
    assert rows[inventory.account.name].offered
    assert rows[inventory.account.name].containers == ["documents", "images"]
    assert rows[inventory.account.name].default_instance_name == inventory.account.name
    flat = rows[inventory.flat_account.name]
    assert not flat.offered
    assert flat.reason.startswith("Hierarchical namespace is not enabled on this account.")


def test_only_readable_datasources_are_listed(vault, inventory, outsider, backup_admin):
    assert svc.storage_account_candidates(outsider, vault) == []
    assert svc.volume_candidates(outsider, vault) == []
    assert svc.postgres_candidates(outsider, vault) == []
    assert len(svc.volume_candidates(backup_admin, vault)) == 2


def test_elastic_san_volumes_must_share_the_vaults_subscription(lab, vault, inventory, trainer):
    from portal.inventory import services as inv

    other = inv.create_elastic_san(trainer, resource_group=lab.security_group, name="esan-other", region=lab.region)
    group = inv.create_volume_group(trainer, other, name="vg-other")
    inv.create_volume(trainer, group, name="vol-other", size_gib=1)
    assert [s.name for s in svc.elastic_sans_for(trainer, vault)] == ["esan-test"]
    rows = svc.volume_candidates(trainer, vault)
    assert [c.name for c in rows] == ["vol-a", "vol-b"]
    assert rows[0].default_instance_name == "esan-test-vg-test-vol-a"
    assert rows[0].volume_group == "vg-test"


def test_a_volume_is_in_one_backup_instance_only_across_vaults(lab, vault, inventory, make_policy, trainer):
    from vaults import services as vault_services

    protect(lab, vault, make_policy(ESAN), inventory.volumes[0], name="bi-vol-a")
    second = vault_services.create_vault(trainer, name="bv-second", region=lab.region, resource_group=lab.lab_group)
    rows = {c.name: c for c in svc.volume_candidates(trainer, second)}
    assert not rows["vol-a"].offered
    assert "Already protected by the backup instance 'bi-vol-a' in the vault 'bv-protect'" in rows["vol-a"].reason
    assert rows["vol-b"].offered
    with pytest.raises(ValidationError) as info:
        protect(lab, second, make_policy(ESAN, in_vault=second), inventory.volumes[0], name="bi-again")
    assert "a volume can be in one backup instance only" in str(info.value)


def test_several_volumes_at_once_with_the_snapshot_group(lab, vault, inventory, make_policy, trainer):
    policy = make_policy(ESAN)
    svc.assign_missing_roles(trainer, vault=vault, level="Resource group", datasources=[
        svc.volume_candidates(trainer, vault)[0].datasource(lab.lab_group.resource_id)])
    created = svc.configure_protection(trainer, vault=vault, policy=policy, selections=[
        Sel(v.resource_id, f"bi-{v.name}", snapshot_resource_group_id=lab.lab_group.resource_id) for v in inventory.volumes
    ])
    assert [(i.name, i.snapshot_resource_group_id, i.datasource_set_resource_id) for i in created] == [
        ("bi-vol-a", lab.lab_group.resource_id, inventory.san.resource_id),
        ("bi-vol-b", lab.lab_group.resource_id, inventory.san.resource_id),
    ]
    assert Job.objects.filter(instance__in=created, operation=JobOperation.CONFIGURE_PROTECTION).count() == 2


def test_the_snapshot_group_must_be_in_the_volumes_subscription(lab, vault, inventory, make_policy, trainer):
    with pytest.raises(ValidationError) as info:
        svc.configure_protection(trainer, vault=vault, policy=make_policy(ESAN), selections=[
            Sel(inventory.volumes[0].resource_id, "bi-x", key="vol", snapshot_resource_group_id=lab.security_group.resource_id)])
    assert messages(info)["snapshot_resource_group"] == ["The snapshot resource group must be in the volume's subscription."]


# --- ADLS containers ------------------------------------------------------------------------------


def test_adls_with_chosen_containers(lab, vault, inventory, make_policy):
    instance = protect(lab, vault, make_policy(ADLS), inventory.account, name="bi-docs", all_containers=False,
                       containers=("documents",))
    assert (instance.all_containers, instance.containers, instance.excluded_containers) == (False, ["documents"], [])


def test_adls_all_containers_with_exclusions(lab, vault, inventory, make_policy):
    instance = protect(lab, vault, make_policy(ADLS), inventory.account, name="bi-all", excluded_containers=("images",))
    assert (instance.all_containers, instance.containers, instance.excluded_containers) == (True, [], ["images"])


@pytest.mark.parametrize("selection,field,text", [
    ({"all_containers": False, "containers": ()}, "sa_containers", "Select at least one container"),
    ({"all_containers": False, "containers": tuple(f"c{i}" for i in range(101))}, "sa_containers", "at most 100 containers"),
    ({"all_containers": False, "containers": ("nope",)}, "sa_containers", "No such container: nope."),
    ({"all_containers": True, "excluded_containers": ("documents", "images")}, "sa_excluded", "Every container is excluded"),
])
def test_adls_container_rules(selection, field, text, lab, vault, inventory, make_policy, trainer):
    with pytest.raises(ValidationError) as info:
        svc.configure_protection(trainer, vault=vault, policy=make_policy(ADLS),
                                 selections=[Sel(inventory.account.resource_id, "bi-x", key="sa", **selection)])
    assert text in messages(info)[field][0]
    assert not BackupInstance.objects.exists()


def test_a_flat_namespace_account_is_refused(lab, vault, inventory, make_policy, trainer):
    with pytest.raises(ValidationError) as info:
        svc.configure_protection(trainer, vault=vault, policy=make_policy(ADLS),
                                 selections=[Sel(inventory.flat_account.resource_id, "bi-flat", key="sa", all_containers=True)])
    assert "Hierarchical namespace is not enabled" in messages(info)["sa_selected"][0]


# --- the ConfigureProtection job ------------------------------------------------------------------


def test_configuring_creates_the_instance_and_a_job_that_settles_it(lab, vault, inventory, make_policy, trainer):
    """GIVEN the roles are in place WHEN protection is configured THEN the instance starts in
    ConfiguringProtection with a ConfigureProtection job, and the job moves it to ProtectionConfigured
    with its next backup from the policy, marking the vault as having had a protected item."""
    policy = make_policy(PG, days=("Wednesday",), time=dt.time(4, 0))
    instance = protect(lab, vault, policy, inventory.server, name="bi-pg", run=False)
    assert instance.protection_state == ProtectionState.CONFIGURING
    job = Job.objects.get(instance=instance)
    assert (job.operation, job.category, job.status, job.initiated_by) == (
        JobOperation.CONFIGURE_PROTECTION, JobCategory.MANAGEMENT, JobStatus.IN_PROGRESS, trainer)
    assert (job.datasource_type, job.datasource_name, job.instance_name) == (PG, inventory.server.name, "bi-pg")
    assert jobs.run(job.pk).status == JobStatus.COMPLETED
    instance.refresh_from_db()
    vault.refresh_from_db()
    assert instance.protection_state == ProtectionState.CONFIGURED
    assert instance.next_backup_at == policy.parsed.next_run_after(clock.now())
    assert instance.next_backup_at.strftime("%A %H:%M") == "Wednesday 04:00"
    assert vault.has_ever_protected_item
    assert instance.resource_id == f"{vault.resource_id}/backupInstances/bi-pg"


def test_the_job_is_enqueued_only_after_commit(lab, vault, inventory, make_policy, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        protect(lab, vault, make_policy(PG), inventory.server, run=False)
    assert len(callbacks) == 1


def test_a_role_revoked_before_the_job_runs_fails_it_with_the_reason(lab, vault, inventory, make_policy, trainer):
    instance = protect(lab, vault, make_policy(ADLS), inventory.account, name="bi-revoked", run=False)
    for assignment in RoleAssignment.objects.filter(principal=vault.identity):
        security_services.remove_role_assignment(trainer, assignment)
    job = jobs.run(Job.objects.get(instance=instance).pk)
    instance.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error_code == instance.error_code == "UserErrorMissingRequiredPermissions"
    assert instance.protection_state == ProtectionState.CONFIGURING_FAILED
    assert instance.error_message.startswith("Appropriate permissions to perform the operation are missing.")
    assert "Storage Account Backup Contributor" in instance.error_message
    assert instance.next_backup_at is None
    vault.refresh_from_db()
    assert not vault.has_ever_protected_item


def test_a_deleted_container_fails_the_job(lab, vault, inventory, make_policy, trainer):
    from portal.inventory import services as inv

    instance = protect(lab, vault, make_policy(ADLS), inventory.account, all_containers=False,
                       containers=("images",), run=False)
    inv.delete_container(trainer, inventory.account.containers.get(name="images"))
    job = jobs.run(Job.objects.get(instance=instance).pk)
    instance.refresh_from_db()
    assert (job.error_code, instance.protection_state) == (
        "UserErrorIncorrectContainersSelectedForOperation", ProtectionState.CONFIGURING_FAILED)


def test_readiness_must_pass_before_anything_is_created(lab, vault, inventory, make_policy, trainer):
    with pytest.raises(ValidationError) as info:
        svc.configure_protection(trainer, vault=vault, policy=make_policy(PG),
                                 selections=[Sel(inventory.server.resource_id, "bi-pg", key="pg")])
    assert "backup readiness is 'Role assignment not done'" in messages(info)["pg_selected"][0]
    assert not BackupInstance.objects.exists() and not Job.objects.exists()


def test_instance_names_are_checked(lab, vault, inventory, make_policy, trainer):
    policy = make_policy(ESAN)
    rg = lab.lab_group.resource_id
    with pytest.raises(ValidationError) as info:
        svc.configure_protection(trainer, vault=vault, policy=policy, selections=[
            Sel(inventory.volumes[0].resource_id, "same", key="a", snapshot_resource_group_id=rg),
            Sel(inventory.volumes[1].resource_id, "SAME", key="b", snapshot_resource_group_id=rg),
        ])
    assert "used for two datasources" in messages(info)["a_name"][0]
    with pytest.raises(ValidationError) as info:
        svc.configure_protection(trainer, vault=vault, policy=policy, selections=[
            Sel(inventory.volumes[0].resource_id, "bad name!", key="a", snapshot_resource_group_id=rg)])
    assert messages(info)["a_name"] == [svc.INSTANCE_NAME_RULE]


def test_a_policy_of_another_type_or_vault_is_refused(lab, vault, inventory, make_policy, trainer):
    from vaults import services as vault_services

    other = vault_services.create_vault(trainer, name="bv-other", region=lab.region, resource_group=lab.lab_group)
    foreign = make_policy(ADLS, in_vault=other)
    with pytest.raises(ValidationError) as info:
        svc.configure_protection(trainer, vault=vault, policy=foreign,
                                 selections=[Sel(inventory.account.resource_id, "bi", all_containers=True)])
    assert messages(info) == {"policy": ["Choose a backup policy of this vault."]}


# --- change policy --------------------------------------------------------------------------------


def test_change_policy_moves_the_instance_and_reschedules_it(lab, vault, inventory, make_policy, trainer):
    first = make_policy(ADLS, "daily-0200", time=dt.time(2, 0))
    second = make_policy(ADLS, "weekly-sun", frequency="Weekly", days=("Sunday",), time=dt.time(6, 30),
                         default=Retention(12, "Weeks"))
    instance = protect(lab, vault, first, inventory.account)
    svc.change_policy(trainer, instance, second)
    instance.refresh_from_db()
    assert instance.policy == second
    assert instance.next_backup_at.strftime("%A %H:%M") == "Sunday 06:30"


def test_change_policy_refuses_another_datasource_type(lab, vault, inventory, make_policy, trainer):
    instance = protect(lab, vault, make_policy(ADLS), inventory.account)
    pg_policy = make_policy(PG, "pg-policy")
    with pytest.raises(ValidationError) as info:
        svc.change_policy(trainer, instance, pg_policy)
    assert messages(info)["policy"] == [
        "The policy 'pg-policy' is for Azure Database for PostgreSQL flexible servers; this backup instance protects "
        "Azure Data Lake Storage. Choose a Azure Data Lake Storage policy."
    ]


def test_change_policy_tells_guards_the_retention_before_and_after(lab, vault, inventory, make_policy, trainer):
    from security.guards import register_guard, unregister_guard

    seen = []
    register_guard("test-spy", lambda p, op, t, change: seen.append((op, change)) and None, order=90)
    try:
        long_policy = make_policy(ADLS, "long", default=Retention(365, "Days"))
        instance = protect(lab, vault, make_policy(ADLS, "short", default=Retention(30, "Days")), inventory.account)
        seen.clear()
        svc.change_policy(trainer, instance, long_policy)
    finally:
        unregister_guard("test-spy")
    [(op, change)] = [s for s in seen if s[0] == svc.INSTANCE_WRITE]
    assert change["max_retention_days_before"] == 30 and change["max_retention_days_after"] == 365
    assert change["critical_operation"] == "Microsoft.DataProtection/backupVaults/backupInstances/write"


# --- authorization matrix -------------------------------------------------------------------------

A, D = True, False
# role on the lab resource group (plus Reader, to see the datasource) -> read instances, validate
# (readiness), configure, change policy
INSTANCE_MATRIX = [
    (roles.OWNER,              A, A, A, A),
    (roles.BACKUP_CONTRIBUTOR, A, A, A, A),
    (roles.BACKUP_OPERATOR,    A, A, D, D),
    (roles.BACKUP_READER,      A, D, D, D),
    (roles.READER,             A, D, D, D),
    (None,                     D, D, D, D),
]


@pytest.mark.parametrize("role,read,validate,configure,change", [pytest.param(*r, id=r[0] or "no role") for r in INSTANCE_MATRIX])
def test_instance_authorization_matrix(role, read, validate, configure, change, lab, vault, inventory, make_policy,
                                       principal_with, trainer):
    principal = principal_with(role)
    if role not in (None, roles.READER, roles.OWNER):
        # Seeing the volume takes a read role on it, as in Azure (the lab's personas hold Reader too).
        grant(lab, principal, roles.READER, lab.lab_group.resource_id)
    policy = make_policy(ESAN, "esan-a")
    other = make_policy(ESAN, "esan-b")
    existing = protect(lab, vault, policy, inventory.volumes[0], name="bi-existing")
    assert svc.instances_for(principal).filter(pk=existing.pk).exists() is read
    assert svc.may_validate(principal, vault) is validate

    def do_configure():
        svc.configure_protection(principal, vault=vault, policy=policy, selections=[
            Sel(inventory.volumes[1].resource_id, "bi-theirs", snapshot_resource_group_id=lab.lab_group.resource_id)])

    assert attempt(do_configure) is configure
    assert attempt(lambda: svc.change_policy(principal, existing, other)) is change
