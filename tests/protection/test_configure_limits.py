"""Configure protection, the two limits a walk-through of the product documents found open (issue 13):

* an ADLS backup instance protects at most 100 containers, in "all containers" mode as in "selected"
  (reference §5.4, §5.8: "Containers: ≤ 100 protected");
* one datasource, one vault: a storage account or PostgreSQL server protected in one vault is refused
  in another with Azure's ``UserErrorDppDatasourceAlreadyProtected`` answer — shown as backup
  readiness before the click and refused by the service — while a soft-deleted item may be protected
  in another vault (reference §3.2).
"""

import re

import pytest
from django.core.exceptions import ValidationError

from protection import datasource_types
from protection.jobs import runner as jobs
from protection.instances.forms import DatasourcesForm
from protection.models import BackupInstance, Job, ProtectionState
from protection.deletion import services as deletion
from protection.instances import services as svc
from tests.protection._protection_fixtures import (  # noqa: F401  (fixtures)
    grant, inventory, make_policy, principal_with, protect, vault,
)

ADLS, PG = datasource_types.ADLS, datasource_types.POSTGRES_FLEX
Sel = svc.DatasourceSelection


def _fill(lab, account, upto: int):
    """Give ``account`` containers until it has ``upto`` of them."""
    from portal.inventory import services as inv

    have = account.containers.count()
    for i in range(have, upto):
        inv.create_container(lab.trainer, account, name=f"c{i:03d}")
    assert account.containers.count() == upto


@pytest.fixture
def second_vault(lab):
    from vaults import services as vault_services

    return vault_services.create_vault(lab.trainer, name="bv-second", region=lab.region, resource_group=lab.lab_group)


# --- at most 100 containers -----------------------------------------------------------------------


def test_all_containers_of_an_account_with_101_is_refused(lab, vault, inventory, make_policy, trainer):
    _fill(lab, inventory.account, 101)
    with pytest.raises(ValidationError) as info:
        svc.configure_protection(trainer, vault=vault, policy=make_policy(ADLS),
                                 selections=[Sel(inventory.account.resource_id, "bi-all", key="sa", all_containers=True)])
    [text] = info.value.message_dict["sa_scope"]
    assert "at most 100 containers" in text and "would be 101" in text
    assert "select up to 100 containers to back up" in text
    assert not BackupInstance.objects.exists() and not Job.objects.exists()


def test_all_containers_is_fine_at_100_and_when_exclusions_bring_it_to_100(lab, vault, inventory, make_policy, trainer):
    _fill(lab, inventory.account, 100)
    policy = make_policy(ADLS)
    at_limit = protect(lab, vault, policy, inventory.account, name="bi-100")
    assert at_limit.protection_state == ProtectionState.CONFIGURED
    BackupInstance.objects.filter(pk=at_limit.pk).delete()  # the same account again, now with 101
    _fill(lab, inventory.account, 101)
    excluded = protect(lab, vault, policy, inventory.account, name="bi-101-minus-1", excluded_containers=("c100",))
    assert excluded.protection_state == ProtectionState.CONFIGURED


def test_selected_containers_stay_limited_to_100(lab, vault, inventory, make_policy, trainer):
    _fill(lab, inventory.account, 101)
    names = tuple(inventory.account.containers.values_list("name", flat=True))
    with pytest.raises(ValidationError) as info:
        svc.configure_protection(trainer, vault=vault, policy=make_policy(ADLS), selections=[
            Sel(inventory.account.resource_id, "bi-sel", key="sa", all_containers=False, containers=names)])
    assert "Select at most 100 containers (101 selected)" in info.value.message_dict["sa_containers"][0]
    assert not BackupInstance.objects.exists()


def test_the_configure_job_refuses_an_account_that_grew_past_100(lab, vault, inventory, make_policy):
    _fill(lab, inventory.account, 100)
    instance = protect(lab, vault, make_policy(ADLS), inventory.account, name="bi-grows", run=False)
    _fill(lab, inventory.account, 101)  # a container is created before the job runs
    job = jobs.run(Job.objects.get(instance=instance).pk)
    instance.refresh_from_db()
    assert instance.protection_state == ProtectionState.CONFIGURING_FAILED
    assert (job.error_code, instance.error_code) == (svc.CONTAINER_LIMIT_CODE, svc.CONTAINER_LIMIT_CODE)


def test_the_datasources_tab_warns_before_the_click_and_refuses_all_containers(lab, vault, inventory, trainer):
    _fill(lab, inventory.account, 101)
    key = f"sa{inventory.account.pk}"
    form = DatasourcesForm(principal=trainer, vault=vault, datasource_type=ADLS)
    [row] = [r for r in form.table() if r["row"].key == key]
    assert row["over_limit"] == 1
    data = {f"{key}_selected": "on", f"{key}_name": "bi-all", f"{key}_scope": "all"}
    bound = DatasourcesForm(data, principal=trainer, vault=vault, datasource_type=ADLS)
    assert not bound.is_valid()
    assert "at most 100 containers" in bound.errors[f"{key}_scope"][0]


# --- one datasource, one vault --------------------------------------------------------------------


def test_a_storage_account_protected_in_one_vault_is_refused_in_another(lab, vault, second_vault, inventory,
                                                                          make_policy, trainer):
    protect(lab, vault, make_policy(ADLS), inventory.account, name="bi-first")
    rows = {c.name: c for c in svc.storage_account_candidates(trainer, second_vault)}
    row = rows[inventory.account.name]
    assert not row.offered
    assert row.code == "UserErrorDppDatasourceAlreadyProtected"
    assert row.reason == (
        f"Datasource is already protected under the Backup vault {vault.resource_id}. Delete the backup instance "
        f"bi-first from the Backup vault {vault.resource_id} to re-protect the datasource in any other vault.")
    with pytest.raises(ValidationError) as info:
        protect(lab, second_vault, make_policy(ADLS, in_vault=second_vault), inventory.account, name="bi-again")
    assert "Datasource is already protected under the Backup vault" in str(info.value)
    assert list(BackupInstance.objects.values_list("name", flat=True)) == ["bi-first"]


def test_a_postgres_server_protected_in_one_vault_is_refused_in_another(lab, vault, second_vault, inventory,
                                                                          make_policy, trainer):
    protect(lab, vault, make_policy(PG), inventory.server, name="bi-pg-first")
    [row] = [c for c in svc.postgres_candidates(trainer, second_vault) if c.name == inventory.server.name]
    assert (row.offered, row.code) == (False, "UserErrorDppDatasourceAlreadyProtected")
    with pytest.raises(ValidationError) as info:
        protect(lab, second_vault, make_policy(PG, in_vault=second_vault), inventory.server, name="bi-pg-again")
    assert "Datasource is already protected under the Backup vault" in str(info.value)


def test_the_other_vault_is_named_only_to_those_who_may_read_it(lab, vault, second_vault, inventory, make_policy,
                                                                principal_with):
    protect(lab, vault, make_policy(ADLS), inventory.account, name="bi-first")
    # Reads the second vault and the storage account, not the first vault.
    someone = principal_with("Backup Reader", second_vault.resource_id)
    grant(lab, someone, "Reader", inventory.account.resource_id)
    [row] = [c for c in svc.storage_account_candidates(someone, second_vault) if c.name == inventory.account.name]
    assert not row.offered
    assert row.reason.startswith("Datasource is already protected under another Backup vault.")
    assert vault.resource_id not in row.reason and "bi-first" not in row.reason


def test_a_soft_deleted_item_may_be_protected_in_another_vault(lab, vault, second_vault, inventory, make_policy,
                                                               trainer):
    first = protect(lab, vault, make_policy(ADLS), inventory.account, name="bi-first")
    jobs.run(deletion.delete_backup_data(trainer, first, confirm_name="bi-first").pk)
    first.refresh_from_db()
    assert first.is_soft_deleted
    # Not in the same vault (reference §3.2) ...
    [same] = [c for c in svc.storage_account_candidates(trainer, vault) if c.name == inventory.account.name]
    assert not same.offered and same.reason.startswith("Soft-deleted in this vault")
    # ... but in another one.
    again = protect(lab, second_vault, make_policy(ADLS, in_vault=second_vault), inventory.account, name="bi-second")
    assert again.protection_state == ProtectionState.CONFIGURED


def test_a_stale_offer_is_refused_when_the_instance_is_written(lab, vault, second_vault, inventory, make_policy,
                                                               trainer):
    """Two vaults configuring the same account at once: the one that writes second is refused."""
    policy = make_policy(ADLS, in_vault=second_vault)
    [stale] = [c for c in svc.storage_account_candidates(trainer, second_vault) if c.name == inventory.account.name]
    assert stale.offered
    protect(lab, vault, make_policy(ADLS), inventory.account, name="bi-first")
    with pytest.raises(ValidationError) as info:
        svc._create_instance(trainer, second_vault, policy, stale,
                             Sel(inventory.account.resource_id, "bi-late", key="sa", all_containers=True))
    assert "Datasource is already protected under the Backup vault" in info.value.message_dict["sa_selected"][0]
    assert not BackupInstance.objects.filter(vault=second_vault).exists()


# --- on the Datasources tab, before the click -----------------------------------------------------


def test_the_datasources_tab_shows_both_limits_as_readiness(client, lab, vault, second_vault, inventory, make_policy,
                                                            trainer):
    from tests.protection.test_configure_views import to_datasources
    from tests.protection.test_policies_views import signed_in

    protect(lab, vault, make_policy(ADLS), inventory.account, name="bi-first")
    from portal.inventory import services as inv

    big = inv.create_storage_account(trainer, resource_group=lab.lab_group, name="sabigaccount", region=lab.region)
    _fill(lab, big, 101)
    wizard = to_datasources(signed_in(client, trainer), second_vault, make_policy(ADLS, in_vault=second_vault), ADLS)
    html = wizard.html
    taken = re.search(rf'<div class="readiness-state" id="readiness-sa{inventory.account.pk}">(.*?)</div>', html, re.S)
    assert taken and "Datasource already protected" in taken.group(1)
    assert "UserErrorDppDatasourceAlreadyProtected" in taken.group(1)
    assert f"Datasource is already protected under the Backup vault {vault.resource_id}" in html
    assert re.search(rf'name="datasources-sa{inventory.account.pk}_selected"[^>]*disabled', html)
    warning = re.search(rf'<p class="callout callout-warning small" id="limit-sa{big.pk}">(.*?)</p>', html, re.S)
    assert warning and "This account has 101 containers: a backup instance protects at most 100" in warning.group(1)


def test_a_backup_of_an_all_containers_account_that_grew_past_100_fails_with_the_limit(lab, vault, inventory,
                                                                                     make_policy, trainer):
    from protection.models import JobStatus, RecoveryPoint
    from protection.backups import services as backups

    _fill(lab, inventory.account, 100)
    instance = protect(lab, vault, make_policy(ADLS), inventory.account, name="bi-grew")
    _fill(lab, inventory.account, 101)
    job = jobs.run(backups.backup_now(trainer, instance, retention_rule="Default").pk)
    assert (job.status, job.error_code) == (JobStatus.FAILED, svc.CONTAINER_LIMIT_CODE)
    assert "at most 100 containers" in job.error_message
    assert not RecoveryPoint.objects.filter(instance=instance).exists()
