"""The Create a private endpoint wizard (reference §4), opened from the vault's Networking blade: Basics,
Resource, Virtual network, DNS, Tags, Review + create."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import ValidationError
from django.shortcuts import redirect
from django.urls import reverse

from portal.wizards import TabbedWizardView
from security import operations as ops
from security.guards import GuardDenied, evaluate
from vaults.models import PrivateEndpointConnectionState as State
from vaults.networking import forms, names, services
from vaults.networking.guard import endpoint_change
from vaults.pages import vault_or_404


class PrivateEndpointCreateWizard(LoginRequiredMixin, TabbedWizardView):
    form_list = [
        ("basics", forms.EndpointBasicsForm),
        ("resource", forms.EndpointResourceForm),
        ("network", forms.EndpointNetworkForm),
        ("dns", forms.EndpointDnsForm),
        ("tags", forms.EndpointTagsForm),
        ("review", forms.EndpointReviewForm),
    ]
    step_titles = {"basics": "Basics", "resource": "Resource", "network": "Virtual Network", "dns": "DNS",
                   "tags": "Tags"}
    step_templates = {"tags": "vaults/wizard/_tags.html"}
    title = "Create a private endpoint"
    subtitle = "Private endpoint"
    submit_label = "Create"

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated:
            self.vault = vault_or_404(request, kwargs["pk"])
        return super().dispatch(request, *args, **kwargs)

    def get_prefix(self, request, *args, **kwargs):
        return f"pe_create_{kwargs.get('pk')}"

    def get_breadcrumbs(self):
        return [("Backup vaults", reverse("vaults:vault_list")),
                (self.vault.name, reverse("vaults:vault_detail", args=[self.vault.pk])),
                ("Networking", reverse("vaults:vault_networking", args=[self.vault.pk]) + "?tab=private")]

    def get_form_kwargs(self, step=None):
        return {"principal": self.request.principal, "vault": self.vault}

    def summarize(self, step, form):
        rows = super().summarize(step, form)
        resource = self.get_cleaned_data_for_step("resource") or {}
        group_id = resource.get("group_id") or names.PRIMARY
        if step == "basics":
            region = names.endpoint_region(self.vault, group_id)
            rows = [(label, region.display_name if label == "Region" and region else value) for label, value in rows]
        if step == "resource":
            principal = self.request.principal
            approval = evaluate(principal, ops.PE_CONNECTION_APPROVAL, self.vault)
            rows.append(("Connection", "Approved at once: you may approve connections to this vault." if approval.allowed
                         else "Pending until an Owner or Contributor of the vault approves it."))
            # The private endpoint rules, asked before the click as the service will ask them.
            rules = evaluate(principal, ops.PRIVATE_ENDPOINT_WRITE, self.vault, endpoint_change(self.vault, group_id),
                             skip=("RBAC",))
            if not rules.allowed:
                rows.append(("Would be refused", f"{rules.code}: {rules.reason} What would lift it: {rules.remedy}"))
        return rows

    def done(self, form_list, form_dict, **kwargs):
        basics = form_dict["basics"].cleaned_data
        resource = form_dict["resource"].cleaned_data
        network = form_dict["network"].cleaned_data
        try:
            connection = services.create_private_endpoint(
                self.request.principal, name=basics["name"], resource_group=basics["resource_group"], vault=self.vault,
                group_id=resource["group_id"], subnet=network["subnet"],
                integrate_dns=form_dict["dns"].cleaned_data["integrate_dns"],
                tags=form_dict["tags"].cleaned_data.get("tags") or {},
                request_message=resource.get("request_message") or "")
        except GuardDenied as exc:
            decision = exc.decision
            raise ValidationError(f"{decision.code}: {decision.reason} What would lift it: {decision.remedy}") from None
        state = connection.state
        messages.success(self.request, f"Private endpoint '{basics['name']}' was created; its connection to "
                                       f"'{self.vault.name}' is {state}"
                                       + ("." if state == State.APPROVED else
                                          ": an Owner or Contributor of the vault approves or rejects it."))
        return redirect(reverse("vaults:vault_networking", args=[self.vault.pk]) + "?tab=private")
