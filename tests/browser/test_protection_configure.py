"""Backup policies and Configure protection in Chromium, as the lab's personas.

The backup admin creates a policy of each datasource type (from Protection policies, from the vault's
Backup policies blade, and with "Create new" inside Configure protection), configures protection for
storage account containers, an Elastic SAN volume and a PostgreSQL server, meets "Role assignment not
done", assigns the missing roles at a chosen scope and sees Success; the backup operator sees
"Insufficient permission for role assignment" with the button disabled; a vault holding a policy
refuses deletion with Azure's message.

ConfigureProtection jobs run on a real Celery worker thread when CELERY_BROKER_URL is Redis; without
a broker the enqueued job id is handed to the same job runner inline (the transport is the only
difference). Set PROTECT_SHOTS=/some/dir to keep a screenshot of every page the flows pass through.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import commands_loaded, play, play_as, screenshots

pytestmark = pytest.mark.browser

shot = screenshots("PROTECT_SHOTS")


@pytest.fixture
def job_runner(request, monkeypatch):
    """Runs ConfigureProtection jobs: a real worker on Redis, else the job runner inline."""
    from django.conf import settings as django_settings

    if django_settings.CELERY_BROKER_URL.startswith("redis://"):
        request.getfixturevalue("worker")
        yield "worker"
        return
    from protection import tasks
    from protection.jobs import runner as jobs

    monkeypatch.setattr(tasks.run_job, "delay", lambda job_id: jobs.run(job_id))
    yield "inline"


@pytest.fixture
def protect_lab(seeded_lab):
    """The lab vault, and datasources in the lab resource group: an HNS account with two containers, a
    flat-namespace account, an Elastic SAN volume and a registered PostgreSQL server."""
    from portal.inventory import services as inv
    from vaults.lab import seed_vaults

    lab = seeded_lab
    t = lab.trainer
    vault = seed_vaults(lab)
    account = inv.create_storage_account(t, resource_group=lab.lab_group, name="contosolabsource", region=lab.region)
    for name in ("documents", "images", "logs"):
        inv.create_container(t, account, name=name)
    flat = inv.create_storage_account(t, resource_group=lab.lab_group, name="contosolabflat", region=lab.region,
                                      hierarchical_namespace=False)
    inv.create_container(t, flat, name="archive")
    san = inv.create_elastic_san(t, resource_group=lab.lab_group, name="esan-lab", region=lab.region)
    volume = inv.create_volume(t, inv.create_volume_group(t, san, name="vg-lab"), name="vol-data", size_gib=1)
    server = inv.create_postgres_server(t, resource_group=lab.lab_group, name="pg-lab", region=lab.region,
                                        host="127.0.0.1", admin_user="postgres")
    return {"lab": lab, "vault": vault, "account": account, "flat": flat, "volume": volume, "server": server}


def _policy(vault, kind, name, **spec):
    from protection.policies import services as svc

    base = svc.default_spec(kind)
    values = {"frequency": base.frequency, "time": base.time, "days": base.days, "default": base.default, "extra": {}}
    values.update(spec)
    return svc.create_policy(vault.created_by or _trainer(), vault=vault, name=name, datasource_type=kind,
                             spec=svc.PolicySpec(**values))


def _trainer():
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(username="trainer").principal


def _next(page, title):
    page.locator(".wizard-actions").get_by_role("button", name=re.compile(rf"^Next: {re.escape(title)}")).click()
    expect(page.locator(".wizard-tabs [aria-current=step]")).to_have_text(title)


def _review(page, label="Review + configure"):
    page.locator(".wizard-actions").get_by_role("button", name=label, exact=True).click()
    expect(page.locator("#wizard-validation")).to_contain_text("Validation passed")


# --- policies -------------------------------------------------------------------------------------


def test_backup_admin_creates_a_policy_of_each_type(page, live_server, protect_lab):
    from protection.models import BackupPolicy

    vault = protect_lab["vault"]
    play_as(page, live_server, "Backup admin")

    # 1. Azure Data Lake Storage, from Protection policies.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Protection policies").click()
    expect(page.get_by_role("heading", name="Protection policies")).to_be_visible()
    page.locator("#create-policy").click()
    expect(page.get_by_role("heading", name="Create Backup Policy")).to_be_visible()
    page.get_by_label("Policy name").fill("adls-daily-30d")
    page.get_by_label("Azure Data Lake Storage").check()
    page.get_by_label("Vault", exact=True).select_option(value=str(vault.pk))
    shot(page, "policy-basics")
    _next(page, "Schedule + retention")
    expect(page.get_by_label("Daily")).to_be_checked()
    page.locator("#id_schedule-weekly_enabled").check()  # the Weekly retention rule
    page.get_by_label("Weekly retention", exact=True).fill("522")
    shot(page, "policy-schedule-adls")
    page.locator(".wizard-actions").get_by_role("button", name="Review + create", exact=True).click()
    expect(page.locator(".rule-grid")).to_contain_text("at most 521 weeks")
    page.get_by_label("Weekly retention", exact=True).fill("12")
    _review(page, "Review + create")
    expect(page.locator(".wizard-body")).to_contain_text("12 weeks")
    shot(page, "policy-review")
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.get_by_role("heading", name="adls-daily-30d")).to_be_visible()
    expect(page.locator("#policy-summary")).to_contain_text("Retention Weekly (first successful backup of each week): 12 weeks")
    page.get_by_text("JSON view").click()
    expect(page.locator("#json-view pre")).to_contain_text('"objectType": "AzureRetentionRule"')
    shot(page, "policy-detail")

    # 2. Elastic SAN, from the vault's Backup policies blade: daily, 7 days by default, 450 points at most.
    page.goto(f"{live_server.url}/vaults/{vault.pk}/")
    page.locator(".blade-menu").get_by_role("link", name="Backup policies").click()
    page.get_by_role("link", name="+ Add").click()
    page.get_by_label("Policy name").fill("esan-daily-7d")
    page.get_by_label("Elastic SAN (Preview)").check()
    _next(page, "Schedule + retention")
    expect(page.get_by_label("Default retention", exact=True)).to_have_value("7")
    page.get_by_label("Default retention", exact=True).fill("451")
    page.locator(".wizard-actions").get_by_role("button", name="Review + create", exact=True).click()
    expect(page.locator(".form-errors")).to_contain_text("could keep up to 451 recovery points at once")
    shot(page, "policy-esan-450")
    page.get_by_label("Default retention", exact=True).fill("7")
    _review(page, "Review + create")
    expect(page.locator(".wizard-body")).to_contain_text("7 of 450")
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.get_by_role("heading", name="esan-daily-7d")).to_be_visible()

    # 3. PostgreSQL: weekly only, on chosen days.
    page.goto(f"{live_server.url}/backup/policies/create/?vault={vault.pk}&type=pgflex")
    page.get_by_label("Policy name").fill("pg-weekly")
    _next(page, "Schedule + retention")
    expect(page.get_by_label("Daily")).to_have_count(0)
    page.get_by_label("Monday").check()
    page.get_by_label("Default retention", exact=True).fill("6")
    page.get_by_label("Default retention unit").select_option("Days")
    page.locator(".wizard-actions").get_by_role("button", name="Review + create", exact=True).click()
    expect(page.locator("#default-errors")).to_contain_text("at least 7 days")
    page.get_by_label("Default retention", exact=True).fill("3")
    page.get_by_label("Default retention unit").select_option("Months")
    _review(page, "Review + create")
    expect(page.locator(".wizard-body")).to_contain_text("weekly on Monday, Sunday at 02:00 (UTC)")
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.get_by_role("heading", name="pg-weekly")).to_be_visible()
    assert set(BackupPolicy.objects.filter(vault=vault).values_list("name", "datasource_type")) == {
        ("adls-daily-30d", "Microsoft.Storage/storageAccounts/adlsBlobServices"),
        ("esan-daily-7d", "Microsoft.ElasticSan/elasticSans/volumeGroups/volumes"),
        ("pg-weekly", "Microsoft.DBforPostgreSQL/flexibleServers"),
    }

    # The vault now holds policies: its deletion is refused with Azure's message (the trainer may delete vaults).
    play(page, None)
    page.goto(f"{live_server.url}/vaults/{vault.pk}/")
    page.locator("#delete-vault").click()
    expect(page.locator("main")).to_contain_text(
        "Cannot delete the Backup vault as there are existing backup instances or backup policies in the vault. Delete all "
        "backup instances and backup policies that are present in the vault and then try deleting the vault.")
    shot(page, "vault-delete-refused")


# --- configure protection -------------------------------------------------------------------------


def _assign(page, scope):
    page.locator("#assign-missing-roles").click()
    expect(page.locator("#grant-pane")).to_be_visible()
    page.locator("#grant-pane").get_by_label(scope, exact=True).check()
    shot(page, f"grant-pane-{scope.replace(' ', '-').lower()}")
    page.locator("#assign-roles-confirm").click()
    expect(page.locator("#readiness-status")).to_contain_text("then revalidated")


def _configure_and_wait(page, instance_name):
    _review(page)
    shot(page, f"configure-review-{instance_name}")
    page.get_by_role("button", name="Configure Backup").click()
    expect(page.get_by_role("heading", name="Backup instances")).to_be_visible()
    row = page.locator(f'tr[data-instance="{instance_name}"]')
    expect(row).to_contain_text("Protection configured", timeout=20_000)


def test_configure_protection_for_containers_from_home(page, live_server, protect_lab, job_runner):
    from protection.models import BackupInstance
    from security.models import RoleAssignment

    lab, vault, account = protect_lab["lab"], protect_lab["vault"], protect_lab["account"]
    _policy(vault, "Microsoft.Storage/storageAccounts/adlsBlobServices", "adls-daily")
    play_as(page, live_server, "Backup admin")
    page.get_by_role("link", name="+ Configure protection").click()
    expect(page.get_by_label("Resource managed by")).to_have_value("Azure")
    page.get_by_label("Datasource type").select_option(label="Azure Data Lake Storage")
    shot(page, "configure-start")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Configure protection")).to_be_visible()
    page.get_by_label("Vault", exact=True).select_option(value=str(vault.pk))
    _next(page, "Backup policy")
    page.locator("#policy-choices label", has_text="adls-daily").click()
    shot(page, "configure-policy")
    _next(page, "Datasources")
    expect(page.locator("#why-sa%d" % protect_lab["flat"].pk)).to_contain_text("Hierarchical namespace is not enabled")
    expect(page.get_by_label("Select contosolabflat")).to_be_disabled()
    row = page.locator("#row-sa%d" % account.pk)
    expect(row.get_by_label("Backup instance name for contosolabsource")).to_have_value("contosolabsource")
    expect(row.locator(".readiness")).to_contain_text("Role assignment not done")
    page.get_by_label("Select contosolabsource").check()
    row.get_by_label("Backup instance name for contosolabsource").fill("bi-lab-documents")
    row.locator("summary").click()
    row.get_by_label(re.compile("^Selected containers")).check()
    row.locator(".container-picker").get_by_label("documents").first.check()
    shot(page, "configure-datasources-adls")
    _assign(page, "Resource group")
    expect(row.locator(".readiness")).to_contain_text("Success")
    shot(page, "configure-datasources-success")
    assert {(a.role.name, a.scope) for a in RoleAssignment.objects.filter(principal=vault.identity)} == {
        ("Storage Account Backup Contributor", lab.lab_group.resource_id)}
    _configure_and_wait(page, "bi-lab-documents")
    shot(page, "instance-list")
    instance = BackupInstance.objects.get(name="bi-lab-documents")
    assert (instance.containers, instance.all_containers, instance.protection_state) == (["documents"], False, "ProtectionConfigured")
    page.get_by_role("link", name="bi-lab-documents").click()
    expect(page.locator("#essentials")).to_contain_text("contosolabsource")
    expect(page.locator("#protection-status")).to_contain_text("Protection configured")
    expect(page.locator("#containers")).to_contain_text("documents")
    shot(page, "instance-detail-adls")


def test_configure_protection_for_a_volume_from_the_vault_with_a_new_policy(page, live_server, protect_lab, job_runner):
    from protection.models import BackupInstance

    lab, vault, volume = protect_lab["lab"], protect_lab["vault"], protect_lab["volume"]
    play_as(page, live_server, "Backup admin")
    page.goto(f"{live_server.url}/vaults/{vault.pk}/")
    page.locator("#vault-backup").click()  # the vault's "+ Backup"
    page.get_by_label("Datasource type").select_option(label="Elastic SAN (Preview)")
    expect(page.get_by_label("Vault", exact=True)).to_have_value(str(vault.pk))
    _next(page, "Backup policy")
    expect(page.locator("#policy-choices")).to_contain_text("no Elastic SAN (Preview) policy yet")
    page.locator("#create-new-policy").click()  # "Create new" → the policy wizard, vault and type preset
    expect(page.get_by_role("heading", name="Create Backup Policy")).to_be_visible()
    page.get_by_label("Policy name").fill("esan-new")
    _next(page, "Schedule + retention")
    _review(page, "Review + create")
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.locator(".wizard-tabs [aria-current=step]")).to_have_text("Backup policy")
    expect(page.locator("#policy-choices input:checked")).to_have_count(1)
    expect(page.locator("#policy-choices label", has_text="esan-new").locator("input")).to_be_checked()
    _next(page, "Datasources")
    row = page.locator("#row-vol%d" % volume.pk)
    expect(row.get_by_label("Backup instance name for vol-data")).to_have_value("esan-lab-vg-lab-vol-data")
    expect(page.get_by_label("Snapshot resource group")).to_have_value(lab.lab_group.resource_id)
    expect(row.locator(".readiness")).to_contain_text("Role assignment not done")
    page.get_by_label("Select vol-data").check()
    shot(page, "configure-datasources-esan")
    _assign(page, "Resource")
    expect(row.locator(".readiness")).to_contain_text("Success")
    _configure_and_wait(page, "esan-lab-vg-lab-vol-data")
    instance = BackupInstance.objects.get(name="esan-lab-vg-lab-vol-data")
    assert instance.snapshot_resource_group_id == lab.lab_group.resource_id
    page.get_by_role("link", name="esan-lab-vg-lab-vol-data").click()
    expect(page.locator("#snapshot-rg")).to_contain_text("rg-backup-lab")
    shot(page, "instance-detail-esan")


def test_configure_protection_for_the_postgres_server_then_change_policy(page, live_server, protect_lab, job_runner):
    from protection.models import BackupInstance

    vault, server = protect_lab["vault"], protect_lab["server"]
    _policy(vault, "Microsoft.DBforPostgreSQL/flexibleServers", "pg-weekly")
    _policy(vault, "Microsoft.DBforPostgreSQL/flexibleServers", "pg-weekly-long", days=("Saturday",))
    play_as(page, live_server, "Backup admin")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Backup instances").click()
    page.locator("#configure-backup").click()
    page.get_by_label("Datasource type").select_option(label="Azure Database for PostgreSQL flexible servers")
    page.get_by_label("Vault", exact=True).select_option(value=str(vault.pk))
    _next(page, "Backup policy")
    page.locator("#policy-choices label", has_text="pg-weekly-long").click()
    _next(page, "Datasources")
    row = page.locator("#row-pg%d" % server.pk)
    expect(row).to_contain_text("The whole server is backed up.")
    expect(row.locator(".readiness")).to_contain_text("Role assignment not done")
    page.get_by_label("Select pg-lab").check()
    # Review before the roles exist: validation fails on the Datasources tab.
    page.locator(".wizard-actions").get_by_role("button", name="Review + configure", exact=True).click()
    expect(page.locator("#wizard-validation")).to_contain_text("Validation failed")
    expect(page.locator(".wizard-tabs .has-error")).to_contain_text("Datasources")
    shot(page, "configure-validation-failed")
    _assign(page, "Resource")
    expect(row.locator(".readiness")).to_contain_text("Success")
    page.locator("#revalidate").click()
    expect(page.locator("#readiness-status")).to_contain_text("Revalidated")
    _configure_and_wait(page, "pg-lab")
    page.get_by_role("link", name="pg-lab").click()
    commands_loaded(page)
    page.locator("#change-policy").click()
    page.locator(".policy-choice label", has_text="pg-weekly").first.click()
    shot(page, "change-policy")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#instance-policy")).to_have_text("pg-weekly")
    assert BackupInstance.objects.get(name="pg-lab").policy.name == "pg-weekly"


def test_the_backup_operator_sees_insufficient_permission(page, live_server, protect_lab):
    vault, volume = protect_lab["vault"], protect_lab["volume"]
    _policy(vault, "Microsoft.ElasticSan/elasticSans/volumeGroups/volumes", "esan-daily")
    play_as(page, live_server, "Backup operator")
    page.goto(f"{live_server.url}/backup/configure/?vault={vault.pk}&type=esan")
    _next(page, "Backup policy")
    page.locator("#policy-choices label", has_text="esan-daily").click()
    _next(page, "Datasources")
    row = page.locator("#row-vol%d" % volume.pk)
    expect(row.locator(".readiness")).to_contain_text("Insufficient permission for role assignment")
    expect(page.locator("#assign-missing-roles")).to_be_disabled()
    expect(page.locator("#cannot-configure")).to_contain_text("backupInstances/write")
    shot(page, "configure-operator")
