"""Forms of the vault pages: the create wizard's tabs and the Properties / Identity / Delete blades.

Forms check what they can see alone (required fields, the name rule, 14-180 days) so errors appear
beside the field at once; the services re-check every rule, and their ValidationErrors are mapped
back onto these fields.
"""

from __future__ import annotations

from django import forms
from django.urls import reverse

from portal import services as portal_services
from portal.models import Region
from portal.shortcuts import parse_id
from portal.wizards import ReviewForm
from security.guards import GuardDenied
from vaults import services
from vaults.storage_forms import clean_location, location_fields, location_label
from vaults.services.soft_delete import ALWAYS_ON_ACK_LABEL, ALWAYS_ON_ACK_REQUIRED, always_on_unacknowledged
from vaults.models import (
    SOFT_DELETE_DEFAULT_DAYS,
    SOFT_DELETE_MAX_DAYS,
    SOFT_DELETE_MIN_DAYS,
    CrossRegionRestoreState,
    CrossSubscriptionRestoreState,
    EncryptionType,
    ImmutabilityState,
    SoftDeleteState,
    StorageRedundancy,
)

DEFAULT_REGION = "eastus"

RETENTION_ERRORS = {
    "min_value": f"Enter a retention period between {SOFT_DELETE_MIN_DAYS} and {SOFT_DELETE_MAX_DAYS} days.",
    "max_value": f"Enter a retention period between {SOFT_DELETE_MIN_DAYS} and {SOFT_DELETE_MAX_DAYS} days.",
    "invalid": f"Enter a whole number of days between {SOFT_DELETE_MIN_DAYS} and {SOFT_DELETE_MAX_DAYS}.",
    "required": f"Enter a retention period between {SOFT_DELETE_MIN_DAYS} and {SOFT_DELETE_MAX_DAYS} days.",
}

REDUNDANCY_HELP = "Backup storage redundancy cannot be changed after protecting items to the vault."


class SubscriptionChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return obj.display_name


class GroupChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return obj.name


# --- create wizard -------------------------------------------------------------------------------


class VaultBasicsForm(forms.Form):
    """Basics: Project details (subscription, resource group) and Instance details."""

    subscription = SubscriptionChoiceField(queryset=None, empty_label=None, label="Subscription")
    resource_group = GroupChoiceField(
        queryset=None, required=False, empty_label="Select a resource group", label="Resource group"
    )
    new_resource_group_name = forms.CharField(
        required=False, max_length=90, label="New resource group name",
        help_text="Leave empty to use the resource group selected above.",
    )
    name = forms.CharField(label="Backup vault name", max_length=50, required=True,
                           error_messages={"required": "Enter a name for the Backup vault."})
    region = forms.ModelChoiceField(queryset=Region.objects.all(), empty_label=None, label="Region")
    storage_redundancy = forms.ChoiceField(
        choices=StorageRedundancy.choices,
        initial=StorageRedundancy.GEO_REDUNDANT,
        widget=forms.RadioSelect,
        label="Backup storage redundancy",
        help_text=REDUNDANCY_HELP,
    )
    cross_region_restore = forms.BooleanField(
        required=False,
        label="Cross Region Restore",
        help_text="Restore from the paired (secondary) region. Needs Geo-redundant storage.",
        widget=forms.CheckboxInput(attrs={"text": "Enable Cross Region Restore"}),
    )

    def __init__(self, *args, principal, **kwargs):
        super().__init__(*args, **kwargs)
        self.principal = principal
        self.groups = services.resource_groups_for_create(principal)
        subscription_ids = self.groups.values_list("subscription_id", flat=True)
        subscriptions = portal_services.subscriptions_for(principal)
        # Subscriptions where the principal may create a vault (in a group) or a group come first.
        self.fields["subscription"].queryset = subscriptions
        self.fields["resource_group"].queryset = self.groups
        subscription = self._chosen_subscription(subscriptions, subscription_ids)
        if subscription is not None:
            self.fields["subscription"].initial = subscription.pk
            self.fields["resource_group"].queryset = self.groups.filter(subscription=subscription)
        region = Region.objects.filter(name=DEFAULT_REGION).first()
        if region is not None:
            self.fields["region"].initial = region.pk
        check_url = reverse("vaults:check_name")
        self.fields["name"].widget.attrs.update(
            {
                "autocomplete": "off",
                "hx-get": check_url,
                "hx-trigger": "input changed delay:400ms, change",
                "hx-target": "#name-availability",
                "hx-include": "[name$='subscription'], [name$='resource_group'], [name$='new_resource_group_name']",
                "aria-describedby": "name-availability",
                "spellcheck": "false",
            }
        )
        self.fields["subscription"].widget.attrs.update(
            {
                "hx-get": reverse("vaults:resource_group_options"),
                "hx-target": f"#id_{self.add_prefix('resource_group')}",
                "hx-trigger": "change",
                "hx-include": "this",
            }
        )

    def _chosen_subscription(self, subscriptions, subscription_ids):
        if self.is_bound:
            value = self.data.get(self.add_prefix("subscription"))
            chosen = subscriptions.filter(pk=pk).first() if (pk := parse_id(value)) else None
            if chosen is not None:
                return chosen
        preferred = subscriptions.filter(pk__in=subscription_ids).first()
        return preferred or subscriptions.first()

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if problem := services.name_rule_error(name):
            raise forms.ValidationError(problem)
        return name

    def clean(self):
        data = super().clean()
        subscription = data.get("subscription")
        group = data.get("resource_group")
        new_name = (data.get("new_resource_group_name") or "").strip()
        data["new_resource_group_name"] = new_name
        if subscription is None:
            return data
        if group is not None and new_name:
            self.add_error("new_resource_group_name", "Either select a resource group or create a new one, not both.")
            return data
        if group is None and not new_name:
            self.add_error("resource_group", "Select a resource group, or create a new one.")
            return data
        if group is not None and group.subscription_id != subscription.pk:
            self.add_error("resource_group", "The resource group is not in the selected subscription.")
            return data
        if new_name:
            from django.core.exceptions import ValidationError

            try:
                portal_services.validate_resource_group_name(new_name)
            except ValidationError as exc:
                self.add_error("new_resource_group_name", exc.message_dict["name"])
                return data
            if subscription.resource_groups.filter(name__iexact=new_name).exists():
                self.add_error(
                    "new_resource_group_name",
                    f"A resource group named '{new_name}' already exists in {subscription.display_name}: select it above.",
                )
                return data
        name = data.get("name")
        if name:
            try:
                result = services.check_name_availability(
                    self.principal, name=name, resource_group=group, subscription=subscription,
                    new_resource_group_name=new_name,
                )
            except GuardDenied as exc:
                self.add_error("resource_group", exc.decision.reason)
                return data
            if not result.available:
                self.add_error("name", result.message)
        if data.get("cross_region_restore") and data.get("storage_redundancy") != StorageRedundancy.GEO_REDUNDANT:
            self.add_error(
                "cross_region_restore",
                "Cross Region Restore needs Geo-redundant storage: choose Geo-redundant, or clear this box.",
            )
        return data

    def summary(self):
        data = self.cleaned_data
        group = data["resource_group"].name if data.get("resource_group") else f"(new) {data['new_resource_group_name']}"
        rows = [
            ("Subscription", data["subscription"].display_name),
            ("Resource group", group),
            ("Backup vault name", data["name"]),
            ("Region", str(data["region"])),
            ("Backup storage redundancy", StorageRedundancy(data["storage_redundancy"]).label),
        ]
        if data["storage_redundancy"] == StorageRedundancy.GEO_REDUNDANT and data["region"].paired_region_id:
            rows.append(("Secondary region (paired)", str(data["region"].paired_region)))
        rows.append(("Cross Region Restore", "Enabled" if data.get("cross_region_restore") else "Disabled"))
        return rows


class VaultPropertiesForm(forms.Form):
    """Vault Properties: identity, encryption, soft delete, immutability, cross subscription restore."""

    identity_enabled = forms.BooleanField(
        required=False, initial=True, label="System-assigned managed identity",
        help_text="The vault's identity reads your data for backups and writes it back on restore. "
        "Without it, backups and restores fail.",
        widget=forms.CheckboxInput(attrs={"text": "Enable System Identity"}),
    )
    encryption_type = forms.ChoiceField(
        choices=EncryptionType.choices, initial=EncryptionType.PLATFORM_MANAGED, widget=forms.RadioSelect,
        label="Encryption type",
        help_text="Each vault's data key is wrapped by the platform key. Customer-managed keys are not offered yet.",
    )
    soft_delete_state = forms.ChoiceField(
        choices=SoftDeleteState.choices, initial=SoftDeleteState.ON, widget=forms.RadioSelect, label="Soft delete",
        help_text="Deleted backup data is kept for the retention period and can be undeleted.",
    )
    soft_delete_retention_days = forms.IntegerField(
        min_value=SOFT_DELETE_MIN_DAYS, max_value=SOFT_DELETE_MAX_DAYS, initial=SOFT_DELETE_DEFAULT_DAYS,
        required=False, label="Retention period (days)", error_messages=RETENTION_ERRORS,
        help_text=f"{SOFT_DELETE_MIN_DAYS} to {SOFT_DELETE_MAX_DAYS} days. The first 14 days are free.",
    )
    acknowledge_irreversible = forms.BooleanField(
        required=False, label="Always-on confirmation",
        help_text="Required for always-on soft delete: it can never be turned off for this vault.",
        widget=forms.CheckboxInput(attrs={"text": ALWAYS_ON_ACK_LABEL}),
    )
    immutability = forms.BooleanField(
        required=False, initial=False, label="Immutable vault",
        help_text="While enabled, backup data cannot be deleted before it expires. You can lock it later "
        "(irreversible) in the vault's Properties.",
        widget=forms.CheckboxInput(attrs={"text": "Enable vault immutability"}),
    )
    cross_subscription_restore_state = forms.ChoiceField(
        choices=[
            (CrossSubscriptionRestoreState.ENABLED, "Enable"),
            (CrossSubscriptionRestoreState.DISABLED, "Disable"),
            (CrossSubscriptionRestoreState.PERMANENTLY_DISABLED, "Permanently disable (irreversible)"),
        ],
        initial=CrossSubscriptionRestoreState.ENABLED, widget=forms.RadioSelect, label="Cross Subscription Restore",
        help_text="Restore into another subscription. Permanently disabled can never be enabled again.",
    )

    def __init__(self, *args, principal=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields.update(location_fields())

    def clean(self):
        data = super().clean()
        clean_location(self, data)
        state = data.get("soft_delete_state")
        if state and state != SoftDeleteState.OFF and data.get("soft_delete_retention_days") is None \
                and "soft_delete_retention_days" not in self.errors:
            self.add_error("soft_delete_retention_days", RETENTION_ERRORS["required"])
        if always_on_unacknowledged(None, state, data.get("acknowledge_irreversible")):
            self.add_error("acknowledge_irreversible", ALWAYS_ON_ACK_REQUIRED)
        return data

    def summary(self):
        data = self.cleaned_data
        soft_delete = SoftDeleteState(data["soft_delete_state"]).label
        if data["soft_delete_state"] != SoftDeleteState.OFF:
            soft_delete += f", {data['soft_delete_retention_days']} days"
        return [
            ("System-assigned identity", "On" if data["identity_enabled"] else "Off"),
            ("Encryption type", EncryptionType(data["encryption_type"]).label),
            ("Soft delete", soft_delete),
            ("Immutable vault", "Enabled" if data["immutability"] else "Disabled"),
            ("Cross Subscription Restore", CrossSubscriptionRestoreState(data["cross_subscription_restore_state"]).label),
            ("Backup storage location", location_label(data)),
        ]


TAG_ROWS = 5


class VaultTagsForm(forms.Form):
    """Tags: name/value pairs (empty rows are ignored)."""

    def __init__(self, *args, principal=None, **kwargs):
        super().__init__(*args, **kwargs)
        for i in range(TAG_ROWS):
            self.fields[f"tag_name_{i}"] = forms.CharField(required=False, max_length=512, label=f"Name {i + 1}")
            self.fields[f"tag_value_{i}"] = forms.CharField(required=False, max_length=256, label=f"Value {i + 1}")

    def rows(self):
        return [(self[f"tag_name_{i}"], self[f"tag_value_{i}"]) for i in range(TAG_ROWS)]

    def clean(self):
        data = super().clean()
        tags = {}
        for i in range(TAG_ROWS):
            name = (data.get(f"tag_name_{i}") or "").strip()
            value = (data.get(f"tag_value_{i}") or "").strip()
            if not name and value:
                self.add_error(f"tag_name_{i}", "Enter a name for this tag, or clear its value.")
                continue
            if name:
                tags[name] = value
        from django.core.exceptions import ValidationError

        try:
            data["tags"] = services.validate_tags(tags)
        except ValidationError as exc:
            self.add_error(None, exc.message_dict.get("tags", exc.messages))
        return data

    def summary(self):
        tags = self.cleaned_data.get("tags") or {}
        return [(name, value or "(empty)") for name, value in tags.items()]


class VaultReviewForm(ReviewForm):
    pass


# --- blades ---------------------------------------------------------------------------------------


class SoftDeleteForm(forms.Form):
    state = forms.ChoiceField(choices=SoftDeleteState.choices, widget=forms.RadioSelect, label="Soft delete")
    retention_days = forms.IntegerField(
        min_value=SOFT_DELETE_MIN_DAYS, max_value=SOFT_DELETE_MAX_DAYS, required=False,
        label="Retention period (days)", error_messages=RETENTION_ERRORS,
        help_text=f"{SOFT_DELETE_MIN_DAYS} to {SOFT_DELETE_MAX_DAYS} days.",
    )

    acknowledge_irreversible = forms.BooleanField(
        required=False, label=ALWAYS_ON_ACK_LABEL,
        help_text="Required when you choose always-on: it can never be turned off for this vault.",
    )

    def __init__(self, *args, vault, **kwargs):
        kwargs.setdefault("initial", {"state": vault.soft_delete_state, "retention_days": vault.soft_delete_retention_days})
        super().__init__(*args, **kwargs)
        self.vault = vault
        if vault.soft_delete_state == SoftDeleteState.ALWAYS_ON:
            self.fields["state"].choices = [(SoftDeleteState.ALWAYS_ON, SoftDeleteState.ALWAYS_ON.label)]

    def clean(self):
        data = super().clean()
        if data.get("state") and data["state"] != SoftDeleteState.OFF and data.get("retention_days") is None \
                and "retention_days" not in self.errors:
            self.add_error("retention_days", RETENTION_ERRORS["required"])
        if always_on_unacknowledged(self.vault.soft_delete_state, data.get("state"), data.get("acknowledge_irreversible")):
            self.add_error("acknowledge_irreversible", ALWAYS_ON_ACK_REQUIRED)
        return data


class ImmutabilityForm(forms.Form):
    enabled = forms.BooleanField(required=False, label="Enable vault immutability")
    lock = forms.BooleanField(required=False, label="Lock immutability (irreversible)")
    confirm_name = forms.CharField(required=False, label="Type the vault name to confirm locking", max_length=50)

    def __init__(self, *args, vault, **kwargs):
        kwargs.setdefault("initial", {"enabled": vault.immutability_enabled,
                                      "lock": vault.immutability_state == ImmutabilityState.LOCKED})
        super().__init__(*args, **kwargs)
        self.vault = vault
        self.fields["confirm_name"].widget.attrs.update({"autocomplete": "off",
                                                         "spellcheck": "false"})

    def target_state(self) -> str:
        data = self.cleaned_data
        if data.get("lock"):
            return ImmutabilityState.LOCKED
        return ImmutabilityState.UNLOCKED if data.get("enabled") else ImmutabilityState.DISABLED


class CrossRegionRestoreForm(forms.Form):
    state = forms.ChoiceField(
        choices=[(CrossRegionRestoreState.ENABLED, "Enable"), (CrossRegionRestoreState.DISABLED, "Disable")],
        widget=forms.RadioSelect, label="Cross Region Restore",
    )


class CrossSubscriptionRestoreForm(forms.Form):
    state = forms.ChoiceField(
        choices=[
            (CrossSubscriptionRestoreState.ENABLED, "Enable"),
            (CrossSubscriptionRestoreState.DISABLED, "Disable"),
            (CrossSubscriptionRestoreState.PERMANENTLY_DISABLED, "Permanently disable"),
        ],
        widget=forms.RadioSelect, label="Cross Subscription Restore",
    )


class StorageRedundancyForm(forms.Form):
    storage_redundancy = forms.ChoiceField(
        choices=StorageRedundancy.choices, widget=forms.RadioSelect, label="Backup storage redundancy",
        help_text=REDUNDANCY_HELP,
    )


class IdentityForm(forms.Form):
    status = forms.ChoiceField(choices=[("on", "On"), ("off", "Off")], widget=forms.RadioSelect, label="Status")


class ConfirmNameForm(forms.Form):
    confirm_name = forms.CharField(label="Type the vault name to confirm", max_length=50)

    def __init__(self, *args, vault, **kwargs):
        super().__init__(*args, **kwargs)
        self.vault = vault
        self.fields["confirm_name"].widget.attrs.update({"autocomplete": "off", "spellcheck": "false"})

    def clean_confirm_name(self):
        value = self.cleaned_data["confirm_name"].strip()
        if value != self.vault.name:
            raise forms.ValidationError(f"Type the vault name '{self.vault.name}' exactly to confirm.")
        return value
