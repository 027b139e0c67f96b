"""The Create Backup vault wizard (reference §5.1): Basics, Vault Properties, Tags, Review + create."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.shortcuts import redirect
from django.urls import reverse

from portal.wizards import TabbedWizardView
from security.crypto import decrypt_secret, encrypt_secret
from vaults import services
from vaults.forms import VaultBasicsForm, VaultPropertiesForm, VaultReviewForm, VaultTagsForm
from vaults.models import CrossRegionRestoreState, ImmutabilityState
from vaults.storage_forms import location_spec

_SEALED = "sealed:"
_WIZARD_PURPOSE = "vault-create-wizard:s3-secret"


class VaultCreateWizard(LoginRequiredMixin, TabbedWizardView):
    form_list = [
        ("basics", VaultBasicsForm),
        ("properties", VaultPropertiesForm),
        ("tags", VaultTagsForm),
        ("review", VaultReviewForm),
    ]
    step_titles = {"basics": "Basics", "properties": "Vault Properties", "tags": "Tags"}
    step_templates = {
        "basics": "vaults/wizard/_basics.html",
        "properties": "vaults/wizard/_properties.html",
        "tags": "vaults/wizard/_tags.html",
    }
    title = "Create Backup vault"
    subtitle = "Backup vault"
    submit_label = "Create"
    error_field_aliases = {"cross_region_restore_state": "cross_region_restore", "immutability_state": "immutability"}
    # the storage location's service errors ("bucket", "prefix", ...) are the Vault Properties tab's own fields

    def get_prefix(self, request, *args, **kwargs):
        return "vault_create"

    def get_breadcrumbs(self):
        return [("Backup vaults", reverse("vaults:vault_list"))]

    def process_step(self, form):
        """The S3 secret access key typed on Vault Properties is kept in the session only sealed (the wizard's
        step data lives in the session until Create); `done` unseals it for the service."""
        data = super().process_step(form)
        field = f"{form.prefix}-secret_access_key"
        if form.prefix == "properties" and data.get(field) and not data[field].startswith(_SEALED):
            data = data.copy()
            data[field] = _SEALED + encrypt_secret(data[field], purpose=_WIZARD_PURPOSE)
        return data

    def get_form_kwargs(self, step=None):
        return {"principal": self.request.principal}

    def get_context_data(self, form, **kwargs):
        context = super().get_context_data(form=form, **kwargs)
        context["can_create_anywhere"] = services.resource_groups_for_create(self.request.principal).exists()
        return context

    def done(self, form_list, form_dict, **kwargs):
        basics = form_dict["basics"].cleaned_data
        props = form_dict["properties"].cleaned_data
        tags = form_dict["tags"].cleaned_data.get("tags") or {}
        location = location_spec(props)
        if location["secret_access_key"].startswith(_SEALED):
            location["secret_access_key"] = decrypt_secret(location["secret_access_key"][len(_SEALED):],
                                                           purpose=_WIZARD_PURPOSE)
        vault = services.create_vault(
            self.request.principal,
            name=basics["name"],
            region=basics["region"],
            resource_group=basics.get("resource_group"),
            subscription=basics["subscription"],
            new_resource_group_name=basics.get("new_resource_group_name", ""),
            storage_redundancy=basics["storage_redundancy"],
            cross_region_restore_state=(
                CrossRegionRestoreState.ENABLED if basics.get("cross_region_restore") else CrossRegionRestoreState.DISABLED
            ),
            soft_delete_state=props["soft_delete_state"],
            soft_delete_retention_days=props.get("soft_delete_retention_days") or 14,
            immutability_state=ImmutabilityState.UNLOCKED if props.get("immutability") else ImmutabilityState.DISABLED,
            cross_subscription_restore_state=props["cross_subscription_restore_state"],
            identity_enabled=bool(props.get("identity_enabled")),
            acknowledge_irreversible=bool(props.get("acknowledge_irreversible")),
            tags=tags,
            storage_location=location,
        )
        messages.success(self.request, f"Backup vault '{vault.name}' was created.")
        return redirect("vaults:vault_detail", pk=vault.pk)
