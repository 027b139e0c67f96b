"""Vault pages: list, wizard, overview, properties, identity, delete; outsiders get 404, readers 403."""

import pytest
from django.urls import reverse

from security import roles
from security import services as security_services
from security.models import ActivityLogEntry, RoleDefinition
from security.operations import VAULT_DELETE
from vaults import panels, services, storage
from vaults.models import BackupVault

EXACT_NOT_EMPTY = (
    "Cannot delete the Backup vault as there are existing backup instances or backup policies in the vault. "
    "Delete all backup instances and backup policies that are present in the vault and then try deleting the vault."
)

VAULT_PAGES = [
    "vaults:vault_detail",
    "vaults:vault_properties",
    "vaults:vault_soft_delete",
    "vaults:vault_immutability",
    "vaults:vault_cross_region_restore",
    "vaults:vault_cross_subscription_restore",
    "vaults:vault_storage_redundancy",
    "vaults:vault_identity",
    "vaults:vault_delete",
]
WRITE_PAGES = [
    ("vaults:vault_soft_delete", {"state": "Off"}),
    ("vaults:vault_immutability", {"enabled": "on"}),
    ("vaults:vault_cross_region_restore", {"state": "Enabled"}),
    ("vaults:vault_cross_subscription_restore", {"state": "Disabled"}),
    ("vaults:vault_storage_redundancy", {"storage_redundancy": "LocallyRedundant"}),
    ("vaults:vault_identity", {"status": "off"}),
]


@pytest.fixture
def as_user(signed_in_client):
    return signed_in_client


# --- visibility ----------------------------------------------------------------------------------


@pytest.mark.parametrize("url_name", VAULT_PAGES)
def test_an_outsider_gets_404_on_every_vault_page(vault, outsider, as_user, url_name):
    client = as_user(outsider)
    assert client.get(reverse(url_name, args=[vault.pk])).status_code == 404
    assert client.post(reverse(url_name, args=[vault.pk]), {"confirm_name": vault.name}).status_code == 404
    assert BackupVault.objects.filter(pk=vault.pk).exists()


@pytest.mark.parametrize("url_name,data", WRITE_PAGES)
def test_a_reader_gets_403_on_writes(vault, reader, as_user, url_name, data):
    client = as_user(reader)
    assert client.get(reverse("vaults:vault_detail", args=[vault.pk])).status_code == 200
    response = client.post(reverse(url_name, args=[vault.pk]), data)
    assert response.status_code == 403
    assert b"does not have authorization to perform action" in response.content
    before = BackupVault.objects.get(pk=vault.pk)
    assert (before.soft_delete_state, before.immutability_state, before.storage_redundancy) == ("On", "Disabled", "GeoRedundant")
    assert before.identity_enabled


def test_a_reader_gets_403_on_delete(vault, reader, as_user):
    client = as_user(reader)
    assert client.get(reverse("vaults:vault_delete", args=[vault.pk])).status_code == 403
    assert client.post(reverse("vaults:vault_delete", args=[vault.pk]), {"confirm_name": vault.name}).status_code == 403
    assert BackupVault.objects.filter(pk=vault.pk).exists()


def test_a_reader_sees_no_write_buttons(vault, reader, as_user):
    client = as_user(reader)
    page = client.get(reverse("vaults:vault_properties", args=[vault.pk])).content.decode()
    assert "update-soft-delete" not in page and "immutability-settings" not in page
    overview = client.get(reverse("vaults:vault_detail", args=[vault.pk])).content.decode()
    assert 'id="delete-vault"' not in overview


# --- list ----------------------------------------------------------------------------------------


def test_the_list_shows_only_readable_vaults(lab, make_vault, principal_with, as_user):
    make_vault("bv-lab")
    make_vault("bv-target", group=lab.target_group)
    scoped = principal_with(roles.BACKUP_READER, scope=lab.target_group.resource_id)
    page = as_user(scoped).get(reverse("vaults:vault_list")).content.decode()
    assert "bv-target" in page and "bv-lab" not in page


def test_the_list_is_empty_for_an_outsider(vault, outsider, as_user):
    page = as_user(outsider).get(reverse("vaults:vault_list")).content.decode()
    assert "bv-test" not in page and "No Backup vaults to display" in page
    assert 'id="create-vault"' not in page


def test_the_list_filters_sorts_and_pages(lab, trainer, make_vault, as_user):
    for i in range(27):
        make_vault(f"bv-{i:02d}", storage_redundancy="LocallyRedundant")
    make_vault("bv-target", group=lab.target_group)
    client = as_user(trainer)
    url = reverse("vaults:vault_list")
    first = client.get(url).content.decode()
    assert "Showing 1 to 25 of 28 records" in first and "Page 1 of 2" in first
    assert first.index("bv-00") < first.index("bv-01")
    desc = client.get(url, {"sort": "-name"}).content.decode()
    assert desc.index("bv-target") < desc.index("bv-26")
    by_group = client.get(url, {"resource_group": lab.target_group.pk}).content.decode()
    assert "bv-target" in by_group and "bv-00" not in by_group and "of 1 record" in by_group
    by_sub = client.get(url, {"subscription": lab.security_subscription.pk}).content.decode()
    assert "No Backup vaults match these filters" in by_sub
    by_region = client.get(url, {"region": "westus"}).content.decode()
    assert "No Backup vaults match these filters" in by_region
    second = client.get(url, {"page": 2}).content.decode()
    assert "Showing 26 to 28 of 28" in second
    partial = client.get(url, {"q": "target"}, HTTP_HX_REQUEST="true").content.decode()
    assert partial.lstrip().startswith('<div id="vault-table">') and "bv-target" in partial


# --- overview and properties -------------------------------------------------------------------------


def test_the_overview_shows_essentials_secondary_region_and_the_tiles_place(vault, trainer, as_user):
    page = as_user(trainer).get(reverse("vaults:vault_detail", args=[vault.pk])).content.decode()
    for text in ("rg-backup-lab", "East US", "Contoso Lab", "Geo-redundant", "System assigned: On",
                 "Good", "Enabled (14 days)", "Disabled"):
        assert text in page, text
    assert 'id="secondary-region"' in page and "West US" in page
    assert 'id="vault-overview-tiles"' in page and 'id="tile-jobs"' in page  # protection's tiles are registered


def test_a_locally_redundant_vault_has_no_secondary_region(make_vault, trainer, as_user):
    vault = make_vault(storage_redundancy="LocallyRedundant")
    page = as_user(trainer).get(reverse("vaults:vault_detail", args=[vault.pk])).content.decode()
    assert 'id="secondary-region"' not in page and "Locally-redundant" in page


def test_registered_tiles_and_blades_load_on_the_overview(vault, trainer, as_user):
    panels.register_overview_tile("test-tile", "Jobs", "vaults:vault_properties", order=1)
    panels.register_blade("test-blade", "Backup things", "vaults:vault_identity", order=1)
    try:
        page = as_user(trainer).get(reverse("vaults:vault_detail", args=[vault.pk])).content.decode()
    finally:
        panels.unregister_overview_tile("test-tile")
        panels.unregister_blade("test-blade")
    assert f'hx-get="{reverse("vaults:vault_properties", args=[vault.pk])}"' in page
    assert 'id="tiles-placeholder"' not in page and "Backup things" in page


def test_the_overview_stays_within_a_query_budget(vault, trainer, as_user, steady_clock, django_assert_max_num_queries):
    client = as_user(trainer)
    with django_assert_max_num_queries(25):
        assert client.get(reverse("vaults:vault_detail", args=[vault.pk])).status_code == 200


def test_properties_show_the_security_level_and_what_would_raise_it(vault, trainer, as_user):
    page = as_user(trainer).get(reverse("vaults:vault_properties", args=[vault.pk])).content.decode()
    assert "Security level" in page and "To reach Excellent" in page
    assert "Can be changed until the first item is protected" in page


def test_changing_soft_delete_through_the_page(vault, trainer, as_user):
    client = as_user(trainer)
    url = reverse("vaults:vault_soft_delete", args=[vault.pk])
    assert "Irreversible" in client.get(url).content.decode()  # said before AlwaysOn is chosen
    bad = client.post(url, {"state": "On", "retention_days": "200"})
    assert bad.status_code == 400 and "between 14 and 180 days" in bad.content.decode()
    ok = client.post(url, {"state": "On", "retention_days": "30"})
    assert ok.status_code == 302
    vault.refresh_from_db()
    assert vault.soft_delete_retention_days == 30


def test_shortening_soft_delete_retention_shows_on_the_alerts_blade(vault, trainer, as_user):
    client = as_user(trainer)
    url = reverse("vaults:vault_soft_delete", args=[vault.pk])
    assert "Soft delete retention shortened" in client.get(url).content.decode()  # said before it happens
    assert client.post(url, {"state": "On", "retention_days": "45"}).status_code == 302
    blade = client.get(reverse("protection:vault_alerts", args=[vault.pk])).content.decode()
    assert 'data-alert="Soft delete retention shortened"' not in blade  # a longer retention fires nothing
    assert client.post(url, {"state": "On", "retention_days": "20"}).status_code == 302
    blade = client.get(reverse("protection:vault_alerts", args=[vault.pk])).content.decode()
    assert 'data-alert="Soft delete retention shortened"' in blade and "from 45 to 20 days" in blade
    security = client.get(reverse("protection:vault_alerts", args=[vault.pk]), {"category": "Security"}).content.decode()
    assert 'data-alert="Soft delete retention shortened"' in security


def test_always_on_cannot_be_left_through_the_page(vault, trainer, as_user):
    services.update_soft_delete(trainer, vault, state="AlwaysOn", retention_days=14, acknowledge_irreversible=True)
    client = as_user(trainer)
    response = client.post(reverse("vaults:vault_soft_delete", args=[vault.pk]), {"state": "Off"})
    assert response.status_code == 400
    vault.refresh_from_db()
    assert vault.soft_delete_state == "AlwaysOn"


def test_always_on_through_the_page_needs_the_irreversible_tick(vault, trainer, as_user):
    client = as_user(trainer)
    url = reverse("vaults:vault_soft_delete", args=[vault.pk])
    assert "I understand this is irreversible" in client.get(url).content.decode()
    refused = client.post(url, {"state": "AlwaysOn", "retention_days": "14"})
    assert refused.status_code == 400
    assert "Tick “I understand this is irreversible”" in refused.content.decode()
    vault.refresh_from_db()
    assert vault.soft_delete_state == "On"
    ok = client.post(url, {"state": "AlwaysOn", "retention_days": "14", "acknowledge_irreversible": "on"})
    assert ok.status_code == 302
    vault.refresh_from_db()
    assert vault.soft_delete_state == "AlwaysOn"
    # Once always-on, changing the retention needs no tick (nothing irreversible is chosen again).
    assert client.post(url, {"state": "AlwaysOn", "retention_days": "30"}).status_code == 302


def test_locking_immutability_through_the_page_needs_the_name(vault, trainer, as_user):
    client = as_user(trainer)
    url = reverse("vaults:vault_immutability", args=[vault.pk])
    assert client.post(url, {"enabled": "on"}).status_code == 302
    wrong = client.post(url, {"enabled": "on", "lock": "on", "confirm_name": "nope"})
    assert wrong.status_code == 400 and "Type the vault name" in wrong.content.decode()
    vault.refresh_from_db()
    assert vault.immutability_state == "Unlocked"
    assert client.post(url, {"enabled": "on", "lock": "on", "confirm_name": vault.name}).status_code == 302
    vault.refresh_from_db()
    assert vault.immutability_state == "Locked"
    undo = client.post(url, {})
    # Refused by the Immutability guard (issue 10): the explained denial page.
    assert undo.status_code == 403 and "cannot be disabled or unlocked" in undo.content.decode()


def test_redundancy_page_refuses_after_protection(vault, trainer, as_user):
    services.mark_protected_item_added(vault)
    client = as_user(trainer)
    response = client.post(reverse("vaults:vault_storage_redundancy", args=[vault.pk]),
                           {"storage_redundancy": "ZoneRedundant"})
    assert response.status_code == 400
    assert "Storage redundancy cannot be changed after protecting items to the vault." in response.content.decode()


# --- identity ------------------------------------------------------------------------------------


def test_the_identity_blade_lists_assignments_across_scopes_and_turns_it_off(vault, trainer, lab, as_user):
    reader_role = RoleDefinition.objects.get(name=roles.READER)
    contributor = RoleDefinition.objects.get(name=roles.STORAGE_ACCOUNT_BACKUP_CONTRIBUTOR)
    security_services.assign_role(trainer, assignee=vault.identity, role=reader_role, scope=lab.lab_subscription.resource_id)
    security_services.assign_role(trainer, assignee=vault.identity, role=contributor, scope=lab.target_group.resource_id)
    client = as_user(trainer)
    url = reverse("vaults:vault_identity", args=[vault.pk])
    page = client.get(url).content.decode()
    assert str(vault.identity.pk) in page
    assert "Reader" in page and "Storage Account Backup Contributor" in page
    assert "Subscription: Contoso Lab" in page and "Resource group: rg-restore-lab" in page
    assert "backups and restores of this vault fail" in page
    assert client.post(url, {"status": "off"}).status_code == 302
    vault.refresh_from_db()
    assert not vault.identity_enabled
    assert "System assigned: Off" in client.get(reverse("vaults:vault_detail", args=[vault.pk])).content.decode()
    assert client.post(url, {"status": "on"}).status_code == 302
    vault.refresh_from_db()
    assert vault.identity_enabled


# --- delete --------------------------------------------------------------------------------------


def test_deleting_an_empty_vault_through_the_page(vault, trainer, as_user, django_capture_on_commit_callbacks):
    client = as_user(trainer)
    url = reverse("vaults:vault_delete", args=[vault.pk])
    wrong = client.post(url, {"confirm_name": "bv-tes"})
    assert wrong.status_code == 400 and BackupVault.objects.filter(pk=vault.pk).exists()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"confirm_name": vault.name})
    assert response.status_code == 302 and response.url == reverse("vaults:vault_list")
    assert not BackupVault.objects.filter(pk=vault.pk).exists()
    assert not storage.store_path(vault).exists()


def test_a_vault_with_contents_shows_the_exact_refusal(vault, trainer, as_user, stand_in_contents):
    stand_in_contents.add(vault.pk)
    client = as_user(trainer)
    url = reverse("vaults:vault_delete", args=[vault.pk])
    page = client.get(url).content.decode()
    # The refusal is shown up front, and Delete may still be tried: the attempt is refused and logged.
    assert EXACT_NOT_EMPTY in page and 'id="confirm-delete"' in page
    response = client.post(url, {"confirm_name": vault.name})
    assert response.status_code == 409 and EXACT_NOT_EMPTY in response.content.decode()
    assert BackupVault.objects.filter(pk=vault.pk).exists()
    entry = ActivityLogEntry.objects.filter(operation__iexact=VAULT_DELETE, scope__iexact=vault.resource_id).latest("id")
    assert entry.status == "Failed" and entry.message == EXACT_NOT_EMPTY and entry.principal == trainer


# --- name check (htmx) ---------------------------------------------------------------------------------


def test_the_name_check_answers_as_the_user_types(lab, make_vault, backup_admin, outsider, as_user):
    make_vault("bv-taken")
    url = reverse("vaults:check_name")
    client = as_user(backup_admin)
    group = lab.lab_group.pk
    assert "is available" in client.get(url, {"basics-name": "bv-free", "basics-resource_group": group}).content.decode()
    taken = client.get(url, {"basics-name": "BV-TAKEN", "basics-resource_group": group}).content.decode()
    assert "already exists" in taken and 'data-available="false"' in taken
    assert services.NAME_RULE_MESSAGE in client.get(url, {"basics-name": "1x", "basics-resource_group": group}).content.decode()
    # An outsider learns nothing about the group's vaults.
    other = as_user(outsider).get(url, {"basics-name": "bv-taken", "basics-resource_group": group}).content.decode()
    assert "already exists" not in other


def test_resource_group_options_follow_the_subscription(lab, backup_admin, as_user):
    client = as_user(backup_admin)
    html = client.get(reverse("vaults:resource_group_options"), {"basics-subscription": lab.lab_subscription.pk}).content.decode()
    assert "rg-backup-lab" in html and "rg-restore-lab" in html
    html = client.get(reverse("vaults:resource_group_options"), {"basics-subscription": lab.security_subscription.pk}).content.decode()
    assert "rg-security" not in html  # no vault write there


def test_a_vault_is_a_registered_resource_for_iam_search_and_its_group(vault, trainer, lab, as_user):
    client = as_user(trainer)
    iam = client.get(reverse("portal:iam"), {"scope": vault.resource_id})
    assert iam.status_code == 200 and "bv-test" in iam.content.decode()
    found = client.get(reverse("portal:search"), {"q": "bv-te"}).content.decode()
    assert reverse("vaults:vault_detail", args=[vault.pk]) in found
    group = client.get(reverse("portal:resource_group_detail", args=[lab.lab_group.pk])).content.decode()
    assert "bv-test" in group and "Backup vault" in group


def test_the_list_costs_no_query_per_vault(lab, make_vault, as_user):
    """The security level column reads each vault's Resource Guard link with the page's query: a page of
    20 vaults costs what 2 do, and the linked vault still shows Excellent."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from portal.mua.lab import seed_mua
    from security import mua

    guard = seed_mua(lab)
    admin = lab.personas["backup-admin"].principal
    client = as_user(admin)

    def add(first, count):
        return [make_vault(f"bv-cost-{i:02d}", principal=admin, soft_delete_state="AlwaysOn",
                           acknowledge_irreversible=True) for i in range(first, first + count)]

    def cost():
        with CaptureQueriesContext(connection) as queries:
            page = client.get(reverse("vaults:vault_list"), {"q": "bv-cost"}).content.decode()
        # (the lab clock's offset is cached for a second: read in one request or the other)
        return len([q for q in queries.captured_queries if "security_labclock" not in q["sql"]]), page

    linked = add(0, 2)[0]
    mua.link_resource_guard(admin, linked, guard_id=guard.resource_id, region=linked.region_id)
    few, _ = cost()
    add(2, 18)
    many, page = cost()
    assert many == few, (few, many)
    rows = {row.split("</a>")[0].rsplit(">", 1)[-1]: row for row in page.split("<tr>")[1:] if "bv-cost-" in row}
    assert len(rows) == 20
    assert "Excellent" in rows.pop("bv-cost-00")
    assert all("Excellent" not in row and "Good" in row for row in rows.values())
