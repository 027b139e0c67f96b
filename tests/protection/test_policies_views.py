"""Backup policy pages over HTTP: the create wizard (and its return to Configure protection), the
policy page with its JSON view, edit and delete, the vault's blade, and who sees what (outsider 404,
reader 403 on writes)."""

import json
import re

from django.urls import reverse

from protection import datasource_types
from protection.models import BackupPolicy
from protection.policies.services import Retention
from tests.protection._protection_fixtures import (  # noqa: F401  (fixtures)
    inventory, make_policy, principal_with, protect, vault,
)
from tests.conftest import WizardDriver

ADLS, ESAN, PG = datasource_types.ADLS, datasource_types.ELASTIC_SAN, datasource_types.POSTGRES_FLEX
CREATE = reverse("protection:policy_create")


class Wizard(WizardDriver):
    def __init__(self, client, url, prefix, query=""):
        self.client, self.url, self.prefix = client, url, prefix
        self.response = client.get(url + query)
        assert self.response.status_code == 200, self.response.status_code


def signed_in(client, principal):
    client.force_login(principal.user)
    return client


def past_basics(client, principal, name, datasource_type, vault):
    """The create-policy wizard as ``principal``, its Basics tab filled in and posted."""
    wizard = Wizard(signed_in(client, principal), CREATE, "policy_create")
    wizard.post({"name": name, "datasource_type": datasource_type, "vault": vault.pk})
    return wizard


def schedule(**extra):
    data = {"frequency": "Daily", "time": "03:00", "default_count": "30", "default_unit": "Days",
            "weekly_unit": "Weeks", "monthly_unit": "Months", "yearly_unit": "Years"}
    data.update(extra)
    return data


def test_create_an_adls_policy_through_the_wizard(client, backup_admin, vault):
    wizard = past_basics(client, backup_admin, "adls-daily", ADLS, vault)
    assert wizard.current == "schedule", wizard.html
    assert "Backup frequency" in wizard.html and "Daily" in wizard.html
    wizard.post(schedule(weekly_enabled="on", weekly_count="12"), goto="review")
    assert wizard.current == "review", wizard.html
    assert "Validation passed" in wizard.html
    assert "daily at 03:00 (UTC)" in wizard.html
    assert "12 weeks" in wizard.html and "30 days" in wizard.html
    response = wizard.post()
    policy = BackupPolicy.objects.get(name="adls-daily")
    assert response.status_code == 302 and response.url == reverse("protection:policy_detail", args=[policy.pk])
    assert [r.tag for r in policy.parsed.retention_rules] == ["Weekly", "Default"]


def test_limits_show_beside_the_field(client, backup_admin, vault):
    wizard = past_basics(client, backup_admin, "adls-long", ADLS, vault)
    wizard.post(schedule(default_count="3651"))
    assert wizard.current == "schedule"
    assert "The Default rule can keep backups for at most 3,650 days (10 years)." in wizard.html


def test_elastic_san_450_points_is_a_tab_error(client, backup_admin, vault):
    wizard = past_basics(client, backup_admin, "esan-too-many", ESAN, vault)
    assert 'value="7"' in wizard.html  # the default retention of 7 days is prefilled
    wizard.post(schedule(default_count="500"))
    assert wizard.current == "schedule"
    assert "could keep up to 500 recovery points at once" in wizard.html


def test_postgres_offers_weekly_only(client, backup_admin, vault):
    wizard = past_basics(client, backup_admin, "pg-weekly", PG, vault)
    assert 'name="schedule-frequency" value="Daily"' not in wizard.html
    assert 'name="schedule-frequency" value="Weekly"' in wizard.html
    wizard.post(schedule(frequency="Weekly", days=["Monday", "Friday"], default_count="3", default_unit="Months"), goto="review")
    wizard.post()
    policy = BackupPolicy.objects.get(name="pg-weekly")
    assert policy.parsed.summary()[0] == "Backup: weekly on Monday, Friday at 03:00 (UTC)"


def test_create_new_from_configure_protection_returns_there_with_the_policy_chosen(client, backup_admin, vault):
    client = signed_in(client, backup_admin)
    configure = Wizard(client, reverse("protection:configure_protection"), "configure", f"?vault={vault.pk}&type=pgflex")
    configure.post({"datasource_type": PG, "vault": vault.pk})
    assert configure.current == "policy"
    link = re.search(r'href="([^"]+)" id="create-new-policy"', configure.html).group(1).replace("&amp;", "&")
    wizard = Wizard(client, CREATE, "policy_create", link.removeprefix(CREATE))
    assert f'<option value="{vault.pk}" selected' in wizard.html
    wizard.post({"name": "pg-from-configure", "datasource_type": PG, "vault": vault.pk})
    wizard.post(schedule(frequency="Weekly", days=["Sunday"], default_count="4", default_unit="Weeks"), goto="review")
    response = wizard.post()
    policy = BackupPolicy.objects.get(name="pg-from-configure")
    assert response.url == f"{reverse('protection:configure_protection')}?resume=1&policy={policy.pk}"
    back = client.get(response.url).content.decode()
    assert 'name="configure-current_step" value="policy"' in back
    assert re.search(rf'value="{policy.pk}"[^>]*checked', back)


def test_the_policy_page_shows_the_summary_and_the_json_view(client, reader, make_policy):
    policy = make_policy(ADLS, "adls-json", extra={"Yearly": Retention(3, "Years")})
    html = signed_in(client, reader).get(reverse("protection:policy_detail", args=[policy.pk])).content.decode()
    assert "Retention Yearly (first successful backup of each year): 3 years" in html
    assert "JSON view" in html
    payload = re.search(r"<pre>(.*?)</pre>", html, re.S).group(1).replace("&quot;", '"')
    assert json.loads(payload) == policy.as_api()


def test_lists_show_what_the_user_may_read(client, reader, outsider, make_policy, vault):
    policy = make_policy(ESAN, "esan-listed")
    assert "esan-listed" in signed_in(client, reader).get(reverse("protection:policy_list")).content.decode()
    assert "esan-listed" in client.get(reverse("protection:vault_policies", args=[vault.pk])).content.decode()
    client.force_login(outsider.user)
    assert "esan-listed" not in client.get(reverse("protection:policy_list")).content.decode()
    for url in (reverse("protection:policy_detail", args=[policy.pk]), reverse("protection:policy_edit", args=[policy.pk]),
                reverse("protection:policy_delete", args=[policy.pk]), reverse("protection:vault_policies", args=[vault.pk])):
        assert client.get(url).status_code == 404, url


def test_reader_meets_403_on_writes(client, reader, make_policy):
    policy = make_policy(ADLS)
    client = signed_in(client, reader)
    assert client.get(reverse("protection:policy_edit", args=[policy.pk])).status_code == 403
    assert client.post(reverse("protection:policy_delete", args=[policy.pk])).status_code == 403
    assert BackupPolicy.objects.filter(pk=policy.pk).exists()


def test_edit_applies_to_every_instance(client, lab, backup_admin, vault, inventory, make_policy):
    policy = make_policy(PG, "pg-edit")
    instance = protect(lab, vault, policy, inventory.server, name="bi-pg")
    client = signed_in(client, backup_admin)
    page = client.get(reverse("protection:policy_edit", args=[policy.pk])).content.decode()
    assert "used by 1 backup instance" in page and "bi-pg" in page
    response = client.post(reverse("protection:policy_edit", args=[policy.pk]),
                           schedule(frequency="Weekly", days=["Saturday"], time="22:30", default_count="6", default_unit="Months"))
    assert response.status_code == 302
    instance.refresh_from_db()
    assert instance.next_backup_at.strftime("%A %H:%M") == "Saturday 22:30"


def test_delete_refuses_a_policy_in_use_and_deletes_an_unused_one(client, lab, backup_admin, vault, inventory, make_policy):
    used = make_policy(ADLS, "in-use")
    protect(lab, vault, used, inventory.account, name="bi-sa")
    client = signed_in(client, backup_admin)
    response = client.post(reverse("protection:policy_delete", args=[used.pk]))
    assert response.status_code == 409
    assert "is used by 1 backup instance: &#x27;bi-sa&#x27;" in response.content.decode()
    unused = make_policy(ADLS, "unused")
    response = client.post(reverse("protection:policy_delete", args=[unused.pk]))
    assert response.status_code == 302 and not BackupPolicy.objects.filter(pk=unused.pk).exists()


def test_the_vault_page_lists_the_blades_and_refuses_deletion_while_a_policy_exists(client, lab, trainer, vault, make_policy):
    make_policy(ADLS)
    client = signed_in(client, trainer)
    overview = client.get(reverse("vaults:vault_detail", args=[vault.pk])).content.decode()
    assert reverse("protection:vault_policies", args=[vault.pk]) in overview
    assert reverse("protection:vault_instances", args=[vault.pk]) in overview
    assert f"{reverse('protection:configure_protection')}?vault={vault.pk}" in overview  # "+ Backup"
    response = client.post(reverse("vaults:vault_delete", args=[vault.pk]), {"confirm_name": vault.name})
    assert response.status_code == 409
    assert ("Cannot delete the Backup vault as there are existing backup instances or backup policies in the vault. "
            "Delete all backup instances and backup policies that are present in the vault and then try deleting the vault."
            ) in response.content.decode()
