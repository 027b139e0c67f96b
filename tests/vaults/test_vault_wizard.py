"""The Create Backup vault wizard through HTTP, and the generic tabbed wizard's behaviour."""

import re

import pytest
from django import forms
from django.urls import reverse

from portal.models import Operation, ResourceGroup
from portal.wizards import display_value, initial_data
from vaults import storage
from vaults.models import BackupVault
from tests.conftest import WizardDriver

URL = reverse("vaults:vault_create")


class Wizard(WizardDriver):
    """The Create Backup vault wizard, driven as a browser would."""

    url, prefix = URL, "vault_create"

    def __init__(self, client):
        self.client = client
        self.response = client.get(URL)
        assert self.response.status_code == 200

    def error_tabs(self):
        return re.findall(r'class="has-error"\s+data-step="([^"]+)"', self.html)


@pytest.fixture
def wizard(client, backup_admin):
    client.force_login(backup_admin.user)
    return Wizard(client)


def basics(lab, **extra):
    data = {"subscription": lab.lab_subscription.pk, "resource_group": lab.lab_group.pk, "name": "bv-wizard",
            "region": "eastus", "storage_redundancy": "GeoRedundant"}
    data.update(extra)
    return data


def test_basics_straight_to_review_and_create_with_the_defaults(wizard, lab):
    """GIVEN only the Basics tab filled WHEN Review + create THEN every other tab validates with its
    defaults, the summary shows them, and Create makes the vault with the reference's defaults."""
    assert wizard.current == "basics"
    assert 'value="GeoRedundant"' in wizard.html and "checked" in wizard.html
    wizard.post(basics(lab), goto="review")
    assert wizard.current == "review", wizard.html
    assert "Validation passed" in wizard.html
    for text in ("bv-wizard", "rg-backup-lab", "Geo-redundant", "West US", "Enabled, 14 days", "Platform-managed key",
                 "Immutable vault", "Cross Subscription Restore"):
        assert text in wizard.html, text
    response = wizard.post()
    vault = BackupVault.objects.get(name="bv-wizard")
    assert response.status_code == 302 and response.url == reverse("vaults:vault_detail", args=[vault.pk])
    assert (vault.storage_redundancy, vault.soft_delete_state, vault.soft_delete_retention_days) == ("GeoRedundant", "On", 14)
    assert vault.immutability_state == "Disabled" and vault.identity_enabled and storage.store_exists(vault)
    assert Operation.objects.filter(resource_id=vault.resource_id, status="Succeeded").exists()
    notifications = wizard.client.get(reverse("portal:notifications")).content.decode()
    assert "Create Backup vault &#x27;bv-wizard&#x27;" in notifications or "Create Backup vault 'bv-wizard'" in notifications


def test_every_tab_then_create(wizard, lab):
    wizard.post(basics(lab, storage_redundancy="LocallyRedundant", name="bv-all"))
    assert wizard.current == "properties"
    always_on = {"identity_enabled": "on", "encryption_type": "PlatformManagedKey", "soft_delete_state": "AlwaysOn",
                 "soft_delete_retention_days": "30", "immutability": "on",
                 "cross_subscription_restore_state": "PermanentlyDisabled"}
    wizard.post(always_on)  # always-on without the tick: the tab says why and stays
    assert wizard.current == "properties" and "I understand this is irreversible" in wizard.html
    wizard.post({**always_on, "acknowledge_irreversible": "on"})
    assert wizard.current == "tags"
    wizard.post({"tag_name_0": "env", "tag_value_0": "lab", "tag_name_1": "owner", "tag_value_1": ""})
    assert wizard.current == "review"
    assert "Enabled and always-on, 30 days" in wizard.html and "env" in wizard.html
    wizard.post()
    vault = BackupVault.objects.get(name="bv-all")
    assert (vault.storage_redundancy, vault.soft_delete_state, vault.soft_delete_retention_days) == ("LocallyRedundant", "AlwaysOn", 30)
    assert vault.immutability_state == "Unlocked"
    assert vault.cross_subscription_restore_state == "PermanentlyDisabled"
    assert vault.tags == {"env": "lab", "owner": ""}


def test_review_jumps_to_the_first_tab_with_errors_and_marks_it(wizard, lab):
    wizard.post(basics(lab), goto="properties")
    wizard.post({"soft_delete_state": "On", "soft_delete_retention_days": "500", "encryption_type": "PlatformManagedKey",
                 "cross_subscription_restore_state": "Enabled"}, goto="tags")
    assert wizard.current == "tags"  # moving between tabs does not validate
    wizard.post({}, goto="review")
    assert wizard.current == "properties"
    assert "Validation failed" in wizard.html and "between 14 and 180 days" in wizard.html
    assert wizard.error_tabs() == ["properties"]
    wizard.post({"soft_delete_state": "On", "soft_delete_retention_days": "20", "encryption_type": "PlatformManagedKey",
                 "cross_subscription_restore_state": "Enabled"}, goto="review")
    assert wizard.current == "review" and wizard.error_tabs() == []


def test_review_marks_every_tab_with_errors(wizard, lab):
    wizard.post(basics(lab, name="1-bad"), goto="properties")
    wizard.post({"soft_delete_state": "On", "soft_delete_retention_days": "5", "encryption_type": "PlatformManagedKey",
                 "cross_subscription_restore_state": "Enabled"}, goto="review")
    assert wizard.current == "basics"
    assert wizard.error_tabs() == ["basics", "properties"]
    assert "must be 2 to 50 characters long" in wizard.html


def test_next_validates_the_tab_it_leaves(wizard, lab):
    wizard.post(basics(lab, name=""))
    assert wizard.current == "basics" and "Enter a name for the Backup vault." in wizard.html


def test_previous_keeps_what_was_typed(wizard, lab):
    wizard.post(basics(lab, name="bv-keep"))
    wizard.post({"soft_delete_retention_days": "77", "soft_delete_state": "On"}, goto="basics")
    assert 'value="bv-keep"' in wizard.html
    wizard.post(basics(lab, name="bv-keep"))
    assert 'value="77"' in wizard.html


def test_a_duplicate_name_is_reported_on_basics(wizard, lab, make_vault):
    make_vault("bv-dupe")
    wizard.post(basics(lab, name="BV-Dupe"), goto="review")
    assert wizard.current == "basics" and "already exists in the resource group" in wizard.html


def test_the_trainer_creates_a_vault_in_a_new_resource_group(client, trainer, lab):
    client.force_login(trainer.user)
    wizard = Wizard(client)
    wizard.post(basics(lab, resource_group="", new_resource_group_name="rg-wizard-new", name="bv-newrg"), goto="review")
    assert wizard.current == "review", wizard.html
    assert "(new) rg-wizard-new" in wizard.html
    wizard.post()
    assert BackupVault.objects.get(name="bv-newrg").resource_group == ResourceGroup.objects.get(name="rg-wizard-new")


def test_a_group_is_required(wizard, lab):
    wizard.post(basics(lab, resource_group=""), goto="review")
    assert wizard.current == "basics" and "Select a resource group, or create a new one." in wizard.html


def test_a_reader_cannot_pick_a_group_and_is_told_why(client, reader, lab):
    client.force_login(reader.user)
    wizard = Wizard(client)
    assert "You cannot create a Backup vault anywhere yet" in wizard.html
    wizard.post(basics(lab), goto="review")
    assert wizard.current == "basics"
    assert not BackupVault.objects.exists()


# --- the generic pieces -----------------------------------------------------------------------------


class ToyForm(forms.Form):
    flag = forms.BooleanField(required=False, initial=True)
    off = forms.BooleanField(required=False, initial=False)
    colour = forms.ChoiceField(choices=[("r", "Red"), ("g", "Green")], initial="g")
    many = forms.MultipleChoiceField(choices=[("a", "A"), ("b", "B")], initial=["a", "b"], required=False)
    days = forms.IntegerField(initial=14)


def test_initial_data_validates_as_the_defaults_shown():
    form = ToyForm(data=initial_data(ToyForm(prefix="t")), prefix="t")
    assert form.is_valid(), form.errors
    assert form.cleaned_data == {"flag": True, "off": False, "colour": "g", "many": ["a", "b"], "days": 14}
    assert [display_value(form[n]) for n in ("flag", "off", "colour", "many", "days")] == ["Yes", "No", "Green", "A, B", "14"]
