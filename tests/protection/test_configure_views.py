"""Configure protection over HTTP: the start page, the wizard's tabs, backup readiness with Revalidate
and Assign missing roles (htmx), the instance list and page, Change policy, and who sees what."""

import re

from django.urls import reverse

from protection import datasource_types
from protection.jobs import runner as jobs
from protection.models import BackupInstance, Job, ProtectionState
from protection.policies.services import Retention
from security.models import RoleAssignment
from tests.protection._protection_fixtures import (  # noqa: F401  (fixtures)
    inventory, make_policy, principal_with, protect, vault,
)
from tests.protection.test_policies_views import Wizard, signed_in

ADLS, ESAN, PG = datasource_types.ADLS, datasource_types.ELASTIC_SAN, datasource_types.POSTGRES_FLEX
CONFIGURE = reverse("protection:configure_protection")
REVALIDATE = reverse("protection:configure_revalidate")
ASSIGN = reverse("protection:configure_assign_roles")


def to_datasources(client, vault, policy, kind):
    wizard = Wizard(client, CONFIGURE, "configure", f"?vault={vault.pk}")
    wizard.post({"datasource_type": kind, "vault": vault.pk})
    assert wizard.current == "policy", wizard.html
    wizard.post({"policy": policy.pk})
    assert wizard.current == "datasources", wizard.html
    return wizard


def test_the_start_page_continues_with_the_chosen_type(client, backup_admin):
    client = signed_in(client, backup_admin)
    page = client.get(reverse("protection:configure_start")).content.decode()
    for label in ("Resource managed by", "Datasource type", "Solution", "Azure Backup"):
        assert label in page
    response = client.post(reverse("protection:configure_start"),
                           {"managed_by": "Azure", "datasource_type": ESAN, "solution": "AzureBackup"})
    assert response.url == f"{CONFIGURE}?type=esan"
    wizard_page = client.get(response.url).content.decode()
    assert re.search(rf'<option value="{re.escape(ESAN)}" selected', wizard_page)


def test_the_home_page_offers_configure_protection(client, backup_admin):
    html = signed_in(client, backup_admin).get(reverse("portal:home")).content.decode()
    assert reverse("protection:configure_start") in html and "+ Configure protection" in html


def test_adls_rows_readiness_assign_and_configure(client, lab, backup_admin, vault, inventory, make_policy):
    """GIVEN the backup admin on the Datasources tab WHEN they see 'Role assignment not done', assign
    the missing roles at the resource group and configure THEN the instance is created and its job runs."""
    policy = make_policy(ADLS, "adls-daily")
    client = signed_in(client, backup_admin)
    wizard = to_datasources(client, vault, policy, ADLS)
    html = wizard.html
    account, flat = inventory.account, inventory.flat_account
    key = f"sa{account.pk}"
    assert f'value="{account.name}"' in html  # instance name auto-filled
    assert "Hierarchical namespace is not enabled on this account." in html
    assert re.search(rf'name="datasources-sa{flat.pk}_selected"[^>]*disabled', html)
    assert "Role assignment not done" in html
    assert not re.search(r'id="assign-missing-roles"[^>]*disabled', html)

    form = {"configure-current_step": "datasources", f"datasources-{key}_selected": "on",
            f"datasources-{key}_name": "bi-lake", f"datasources-{key}_scope": "selected",
            f"datasources-{key}_containers": ["documents"], "vault": vault.pk, "type": "adls"}
    assert "Role assignment not done" in client.post(REVALIDATE, form).content.decode()
    response = client.post(ASSIGN, {**form, "assign_scope": "Resource group"}).content.decode()
    assert "Assigned 1 role" in response
    assert f'id="readiness-{key}" hx-swap-oob="true"' in response and "Success" in response
    assert {(a.role.name, a.scope) for a in RoleAssignment.objects.filter(principal=vault.identity)} == {
        ("Storage Account Backup Contributor", lab.lab_group.resource_id)}

    wizard.post(raw={k: v for k, v in form.items() if k not in ("vault", "type")}, goto="review")
    assert wizard.current == "review", wizard.html
    assert "Backup instance &#x27;bi-lake&#x27;" in wizard.html and "containers: documents" in wizard.html
    response = wizard.post()
    assert response.status_code == 302 and response.url == f"{reverse('protection:instance_list')}?vault={vault.pk}"
    instance = BackupInstance.objects.get(name="bi-lake")
    assert (instance.protection_state, instance.containers, instance.all_containers) == (
        ProtectionState.CONFIGURING, ["documents"], False)
    listing = client.get(response.url).content.decode()
    assert "Configuring protection" in listing and 'hx-trigger="every 2s"' in listing
    jobs.run(Job.objects.get(instance=instance).pk)
    listing = client.get(response.url).content.decode()
    assert "Protection configured" in listing and 'hx-trigger="every 2s"' not in listing


def test_a_scope_the_admin_cannot_assign_at_is_explained(client, lab, backup_admin, vault, inventory, make_policy):
    client = signed_in(client, backup_admin)
    key = f"pg{inventory.server.pk}"
    response = client.post(ASSIGN, {f"datasources-{key}_selected": "on", "vault": vault.pk, "type": "pgflex",
                                    "assign_scope": "Subscription"}).content.decode()
    assert "No role was assigned." in response and "Microsoft.Authorization/roleAssignments/write" in response
    assert not RoleAssignment.objects.filter(principal=vault.identity).exists()


def test_the_operator_sees_insufficient_permission_and_a_disabled_button(client, backup_operator, vault, inventory, make_policy):
    policy = make_policy(ESAN, "esan-daily")
    client = signed_in(client, backup_operator)
    wizard = to_datasources(client, vault, policy, ESAN)
    html = wizard.html
    assert "Insufficient permission for role assignment" in html
    assert re.search(r'id="assign-missing-roles"[^>]*\n?[^>]*disabled', html)
    assert 'id="cannot-configure"' in html
    assert "esan-test-vg-test-vol-a" in html  # names auto-filled per volume
    # Even posting the assignment directly assigns nothing.
    key = f"vol{inventory.volumes[0].pk}"
    response = client.post(ASSIGN, {f"datasources-{key}_selected": "on", "vault": vault.pk, "type": "esan",
                                    "assign_scope": "Resource"}).content.decode()
    assert "No role was assigned." in response
    assert not RoleAssignment.objects.filter(principal=vault.identity).exists()


def test_the_elastic_san_tab_filters_by_volume_group_and_defaults_the_snapshot_group(client, lab, trainer, vault, inventory, make_policy):
    from portal.inventory import services as inv

    other_group = inv.create_volume_group(trainer, inventory.san, name="vg-other")
    inv.create_volume(trainer, other_group, name="vol-c", size_gib=1)
    policy = make_policy(ESAN)
    wizard = to_datasources(signed_in(client, trainer), vault, policy, ESAN)
    assert re.search(rf'<option value="{re.escape(lab.lab_group.resource_id)}" selected>rg-backup-lab', wizard.html)
    wizard.post({"elastic_san": inventory.san.pk, "volume_group": "vg-other",
                 "snapshot_resource_group": lab.lab_group.resource_id}, goto="datasources")
    found = re.findall(r'<tr id="row-vol\d+" data-datasource="([^"]+)" class="[^"]*"\s*(hidden)?>', wizard.html)
    rows = {name: bool(hidden) for name, hidden in found}
    assert rows == {"vol-a": True, "vol-b": True, "vol-c": False}


def test_readers_cannot_validate_and_outsiders_see_nothing(client, reader, outsider, vault, inventory):
    form = {"vault": vault.pk, "type": "adls"}
    assert signed_in(client, reader).post(REVALIDATE, form).status_code == 403
    assert signed_in(client, outsider).post(REVALIDATE, form).status_code == 404


def test_the_operator_cannot_configure(client, lab, backup_operator, vault, inventory, make_policy, trainer):
    """The Review + configure step refuses the operator with the explained denial; nothing is created."""
    from protection.instances import services as svc

    policy = make_policy(PG)
    svc.assign_missing_roles(trainer, vault=vault, level="Resource group",
                             datasources=[svc.postgres_candidates(trainer, vault)[0].datasource()])
    client = signed_in(client, backup_operator)
    wizard = to_datasources(client, vault, policy, PG)
    key = f"pg{inventory.server.pk}"
    assert "Success" in wizard.html
    wizard.post({f"{key}_selected": "on", f"{key}_name": "bi-pg"}, goto="review")
    assert wizard.current == "review", wizard.html
    response = wizard.post()
    assert response.status_code == 403
    assert "backupInstances/write" in response.content.decode()
    assert not BackupInstance.objects.exists()


# --- instance list and page -------------------------------------------------------------------------


def test_the_instance_list_filters(client, lab, reader, vault, inventory, make_policy):
    protect(lab, vault, make_policy(ADLS), inventory.account, name="bi-sa")
    protect(lab, vault, make_policy(PG), inventory.server, name="bi-pg", run=False)
    client = signed_in(client, reader)
    url = reverse("protection:instance_list")

    def names(query):
        html = client.get(url + query).content.decode()
        return sorted(re.findall(r'<tr data-instance="([^"]+)"', html))

    assert names("") == ["bi-pg", "bi-sa"]
    assert names("?type=adls") == ["bi-sa"]
    assert names("?status=ConfiguringProtection") == ["bi-pg"]
    assert names(f"?vault={vault.pk}&type=pgflex") == ["bi-pg"]
    assert names("?vault=999999") == []
    assert names("?q=sa") == ["bi-sa"]
    assert client.get(reverse("protection:vault_instances", args=[vault.pk])).status_code == 200


def test_the_instance_page_and_change_policy(client, lab, backup_admin, reader, outsider, vault, inventory, make_policy):
    first = make_policy(ESAN, "esan-first")
    second = make_policy(ESAN, "esan-second", default=Retention(14, "Days"))
    make_policy(ADLS, "adls-other")
    instance = protect(lab, vault, first, inventory.volumes[0], name="bi-vol")
    url = reverse("protection:instance_detail", args=[instance.pk])
    change_url = reverse("protection:instance_change_policy", args=[instance.pk])
    html = signed_in(client, reader).get(url).content.decode()
    for text in ("Essentials", "vol-a", "bv-protect", "esan-first", "Protection configured", "Snapshot resource group",
                 "rg-backup-lab", 'id="instance-recovery-points"', 'id="instance-jobs"'):
        assert text in html, text
    assert client.get(change_url).status_code == 403
    client.force_login(outsider.user)
    assert client.get(url).status_code == 404 and client.get(change_url).status_code == 404
    client.force_login(backup_admin.user)
    page = client.get(change_url).content.decode()
    assert "esan-second" in page and "adls-other" not in page  # same datasource type only
    response = client.post(change_url, {"policy": second.pk})
    assert response.status_code == 302
    instance.refresh_from_db()
    assert instance.policy == second
