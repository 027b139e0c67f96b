"""The Networking blade's forms and the Create a private endpoint wizard's tabs (Azure's labels)."""

from __future__ import annotations

from django import forms

from portal import services as portal_services
from portal.inventory.models import Subnet, VirtualNetwork
from portal.shortcuts import parse_id
from portal.wizards import ReviewForm
from security import operations as ops
from security.rbac import visible_to
from vaults.forms import GroupChoiceField, SubscriptionChoiceField, VaultTagsForm
from vaults.models import PublicNetworkAccess
from vaults.networking import names
from vaults.networking.services import DESCRIPTION_MAX, NAME_MAX


class PublicAccessForm(forms.Form):
    public_network_access = forms.ChoiceField(
        choices=PublicNetworkAccess.choices, widget=forms.RadioSelect, label="Public network access",
        error_messages={"required": "Choose Allow from all networks or Deny.",
                        "invalid_choice": "Choose Allow from all networks or Deny."})


class DecisionForm(forms.Form):
    description = forms.CharField(
        required=False, max_length=DESCRIPTION_MAX, label="Description",
        help_text=f"Why (at most {DESCRIPTION_MAX} characters): the endpoint's owner sees it.",
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))


# --- the wizard ---------------------------------------------------------------------------------


class EndpointBasicsForm(forms.Form):
    """Basics: Project details (subscription, resource group) and Instance details (name, region)."""

    subscription = SubscriptionChoiceField(queryset=None, empty_label=None, label="Subscription")
    resource_group = GroupChoiceField(queryset=None, empty_label="Select a resource group", label="Resource group",
                                      error_messages={"required": "Select the resource group of the private endpoint."})
    name = forms.CharField(label="Name", max_length=NAME_MAX,
                           error_messages={"required": "Enter a name for the private endpoint."},
                           help_text="Unique among private endpoints: letters, digits, '-', '_' and '.'.")
    region = forms.CharField(label="Region", required=False, disabled=True)

    def __init__(self, *args, principal, vault, **kwargs):
        super().__init__(*args, **kwargs)
        self.vault = vault
        groups = portal_services.resource_groups_for(principal, ops.PRIVATE_ENDPOINT_WRITE)
        subscriptions = portal_services.subscriptions_for(principal).filter(pk__in=groups.values("subscription_id"))
        self.fields["subscription"].queryset = subscriptions
        chosen = None
        if self.is_bound and (pk := parse_id(self.data.get(self.add_prefix("subscription")))):
            chosen = subscriptions.filter(pk=pk).first()
        chosen = chosen or subscriptions.filter(pk=vault.resource_group.subscription_id).first() or subscriptions.first()
        if chosen is not None:
            self.fields["subscription"].initial = chosen.pk
            groups = groups.filter(subscription=chosen)
        self.fields["resource_group"].queryset = groups
        if groups.filter(pk=vault.resource_group_id).exists():
            self.fields["resource_group"].initial = vault.resource_group_id
        paired = vault.region.paired_region
        self.fields["region"].initial = vault.region.display_name
        self.fields["region"].help_text = (
            f"The vault's region. A secondary endpoint ({names.SECONDARY}) goes in its paired region, "
            f"{paired.display_name}." if paired else "The vault's region.")
        self.fields["name"].widget.attrs.update({"autocomplete": "off", "spellcheck": "false"})

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if not name[:1].isalnum() or not all(c.isalnum() or c in "-_." for c in name):
            raise forms.ValidationError(f"The name must be 1–{NAME_MAX} characters of letters, digits, '-', '_' or "
                                        "'.', starting with a letter or digit.")
        return name

    def clean(self):
        data = super().clean()
        group, subscription = data.get("resource_group"), data.get("subscription")
        if group is not None and subscription is not None and group.subscription_id != subscription.pk:
            self.add_error("resource_group", "Select a resource group of the chosen subscription.")
        return data


class EndpointResourceForm(forms.Form):
    """Resource: the vault (the wizard is opened from it) and the target sub-resource."""

    resource_type = forms.CharField(label="Resource type", required=False, disabled=True)
    resource = forms.CharField(label="Resource", required=False, disabled=True)
    group_id = forms.ChoiceField(label="Target sub-resource", widget=forms.RadioSelect,
                                 error_messages={"required": "Choose the target sub-resource."})
    request_message = forms.CharField(
        label="Request message", required=False, max_length=DESCRIPTION_MAX,
        help_text="Shown to the vault's owner when the connection needs approval (you cannot approve it yourself).")

    def __init__(self, *args, vault, principal=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.vault = vault
        self.fields["resource_type"].initial = ops.VAULT_TYPE
        self.fields["resource"].initial = vault.name
        choices = [(names.PRIMARY, f"{names.PRIMARY} — the vault, in {vault.region.display_name}")]
        if vault.secondary_region is not None:
            choices.append((names.SECONDARY, f"{names.SECONDARY} — its copy in the paired region "
                                             f"{vault.secondary_region.display_name} (cross region restore)"))
        self.fields["group_id"].choices = choices
        self.fields["group_id"].initial = names.PRIMARY
        if vault.secondary_region is None:
            self.fields["group_id"].help_text = (f"{names.SECONDARY} is offered for geo-redundant vaults only; this "
                                                 f"vault is {vault.get_storage_redundancy_display().lower()}.")


class SubnetChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return f"{obj.name} ({obj.address_prefix}) — {obj.virtual_network.name}"


class VnetChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return f"{obj.name} ({obj.resource_group.name}, {obj.region.display_name})"


class EndpointNetworkForm(forms.Form):
    """Virtual network: the VNet and subnet; the private IPs are allocated dynamically."""

    virtual_network = VnetChoiceField(queryset=None, empty_label="Select a virtual network", label="Virtual network",
                                      error_messages={"required": "Select the virtual network of the endpoint."})
    subnet = SubnetChoiceField(queryset=None, empty_label="Select a subnet", label="Subnet",
                               error_messages={"required": "Select a subnet of the virtual network."},
                               help_text=f"Private IP configuration: Dynamically allocate IP address — the endpoint "
                                         f"takes {names.IPS_PER_ENDPOINT} free addresses of the subnet, lowest first, "
                                         "never one in use (a /25 is recommended).")

    def __init__(self, *args, principal, vault, **kwargs):
        super().__init__(*args, **kwargs)
        vnets = (VirtualNetwork.objects.filter(visible_to(principal, ops.VNET_READ).q("resource_id"))
                 .select_related("resource_group", "region").order_by("name"))
        self.fields["virtual_network"].queryset = vnets
        self.fields["subnet"].queryset = (Subnet.objects.filter(virtual_network__in=vnets)
                                          .select_related("virtual_network").order_by("virtual_network__name", "name"))
        if not vnets.exists():
            self.fields["virtual_network"].help_text = (
                "You can read no virtual network. Create one (Virtual networks) or ask for Reader on one.")

    def clean(self):
        data = super().clean()
        vnet, subnet = data.get("virtual_network"), data.get("subnet")
        if vnet is not None and subnet is not None and subnet.virtual_network_id != vnet.pk:
            self.add_error("subnet", f"'{subnet.name}' is a subnet of '{subnet.virtual_network.name}': choose a subnet "
                                     f"of '{vnet.name}'.")
        return data


class EndpointDnsForm(forms.Form):
    integrate_dns = forms.TypedChoiceField(
        label="Integrate with private DNS zone", choices=[("yes", "Yes"), ("no", "No")], initial="yes",
        coerce=lambda v: v == "yes", widget=forms.RadioSelect,
        help_text="Yes: once the connection is approved, the endpoint's A records are written into the private DNS "
                  "zones (the Backup zone of the region, privatelink.blob.core.windows.net and "
                  "privatelink.queue.core.windows.net) in the endpoint's resource group, linked to its virtual "
                  "network. No: add them to your own DNS (the endpoint's DNS configuration lists them).")

    def __init__(self, *args, principal=None, vault=None, **kwargs):
        super().__init__(*args, **kwargs)

    def summary(self):
        return [("Integrate with private DNS zone", "Yes" if self.cleaned_data.get("integrate_dns") else "No")]


class EndpointTagsForm(VaultTagsForm):
    def __init__(self, *args, principal=None, vault=None, **kwargs):
        super().__init__(*args, principal=principal, **kwargs)


class EndpointReviewForm(ReviewForm):
    pass
