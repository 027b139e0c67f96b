"""Forms for the inventory pages: thin, choices narrowed to what the principal may use."""

from django import forms
from django.core.validators import RegexValidator

from portal.inventory.models import ElasticSan, StorageAccount, Subnet
from portal.models import Region


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    widget = MultipleFileInput

    def clean(self, data, initial=None):
        single = super().clean
        if isinstance(data, (list, tuple)):
            return [single(d, initial) for d in data]
        return [single(data, initial)] if data else []


class _ResourceForm(forms.Form):
    resource_group = forms.ModelChoiceField(queryset=None, label="Resource group", empty_label=None)
    name = forms.CharField(max_length=100)
    region = forms.ModelChoiceField(queryset=Region.objects.all(), empty_label=None)

    def __init__(self, *args, resource_groups, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["resource_group"].queryset = resource_groups
        self.fields["resource_group"].label_from_instance = lambda g: f"{g.name} ({g.subscription.display_name})"
        if not self.initial.get("region"):
            self.initial["region"] = "eastus"


class _DatasourceForm(_ResourceForm):
    """A datasource's create form: its network too (the public network, or a subnet the principal can see)."""

    network_subnet = forms.ModelChoiceField(
        queryset=Subnet.objects.none(), required=False, empty_label="Public network", label="Network",
        help_text="Where it reaches Backup vaults from. A subnet must be in a virtual network of the same region, "
                  "and you need the right to join it (Network Contributor, for example).",
    )

    def __init__(self, *args, subnets=None, **kwargs):
        super().__init__(*args, **kwargs)
        if subnets is not None:
            self.fields["network_subnet"].queryset = subnets
        self.fields["network_subnet"].label_from_instance = (
            lambda s: f"{s.virtual_network.name} / {s.name} ({s.address_prefix}) · {s.virtual_network.region.display_name}")


class StorageAccountForm(_DatasourceForm):
    DATA_CHOICES = [("new", "Create a new, empty folder"), ("attach", "Attach an existing folder")]

    name = forms.CharField(
        label="Storage account name", max_length=24,
        help_text="3 to 24 characters: lowercase letters and numbers. Unique across Strongroom.",
    )
    hierarchical_namespace = forms.BooleanField(
        required=False, initial=True, label="Enable hierarchical namespace",
        help_text="Azure Data Lake Storage Gen2. Only accounts with a hierarchical namespace can be backed up to a Backup vault.",
    )
    sku = forms.ChoiceField(choices=StorageAccount.Redundancy.choices, label="Redundancy")
    data = forms.ChoiceField(choices=DATA_CHOICES, widget=forms.RadioSelect, initial="new", label="Data")
    attach_path = forms.CharField(
        required=False, label="Existing folder", max_length=1024,
        help_text="Full path of a folder below an allowed attach root. Its sub-folders become containers.",
    )


class ContainerForm(forms.Form):
    name = forms.CharField(
        max_length=63,
        help_text="3 to 63 characters: lowercase letters, numbers and single hyphens; start with a letter or number.",
    )


class UploadForm(forms.Form):
    files = MultipleFileField(label="Files", required=False)
    prefix = forms.CharField(
        required=False, max_length=1024, label="Upload to folder (optional)",
        help_text="A folder path such as reports/2024. Blobs are named <folder>/<file name>.",
    )
    overwrite = forms.BooleanField(required=False, label="Overwrite if files already exist")


class ElasticSanForm(_DatasourceForm):
    name = forms.CharField(
        label="Elastic SAN name", max_length=24,
        help_text="3 to 24 characters: lowercase letters, numbers, hyphens and underscores.",
    )
    sku = forms.ChoiceField(choices=ElasticSan.Sku.choices, label="Redundancy")
    base_size_tib = forms.IntegerField(min_value=1, max_value=100, initial=1, label="Base size (TiB)")
    extended_capacity_size_tib = forms.IntegerField(min_value=0, max_value=600, initial=0, label="Additional capacity (TiB)")


class VolumeGroupForm(forms.Form):
    name = forms.CharField(
        max_length=63, help_text="3 to 63 characters: lowercase letters, numbers, hyphens and underscores."
    )


class VolumeForm(forms.Form):
    SOURCE_CHOICES = [("new", "New empty volume"), ("attach", "Attach an existing image file")]

    name = forms.CharField(
        max_length=63, help_text="3 to 63 characters: lowercase letters, numbers, hyphens and underscores."
    )
    source = forms.ChoiceField(choices=SOURCE_CHOICES, widget=forms.RadioSelect, initial="new", label="Source")
    size_gib = forms.IntegerField(
        required=False, min_value=1, max_value=65536, initial=1, label="Size (GiB)",
        help_text="1 GiB to 64 TiB. The image is created sparse: it takes disk space only as data is written.",
    )
    attach_path = forms.CharField(
        required=False, max_length=1024, label="Existing image file",
        help_text="Full path of a raw image file below an allowed attach root.",
    )


class PostgresServerForm(_DatasourceForm):
    name = forms.CharField(
        label="Server name", max_length=63,
        help_text="3 to 63 characters: lowercase letters, numbers and hyphens; not starting or ending with a hyphen.",
    )
    host = forms.CharField(
        max_length=255, initial="127.0.0.1", help_text="Host name or IP address PostgreSQL listens on.",
        # What a resolver accepts (letters, digits, dots, hyphens; IPv6 colons): anything else would fail
        # deep in the connection attempt instead of beside the field.
        validators=[RegexValidator(r"^[A-Za-z0-9._:\[\]-]+\Z",
                                   "Enter a host name or an IP address (letters, digits, dots, hyphens, colons).")],
    )
    port = forms.IntegerField(min_value=1, max_value=65535, initial=5432)
    admin_user = forms.CharField(max_length=63, initial="postgres", label="Admin username")
    password = forms.CharField(
        required=False, widget=forms.PasswordInput, max_length=200,
        help_text="Stored encrypted. Leave empty when the server trusts this host.",
    )


class DatabaseForm(forms.Form):
    name = forms.CharField(
        max_length=63, label="Database name",
        help_text="Letters, numbers and underscores, starting with a letter or an underscore.",
    )


# --- networking -------------------------------------------------------------------------------------------------


class VirtualNetworkForm(_ResourceForm):
    name = forms.CharField(
        label="Virtual network name", max_length=64,
        help_text="2 to 64 characters: letters, numbers, underscores, periods and hyphens.",
    )
    address_prefixes = forms.CharField(
        label="IPv4 address space", max_length=400, initial="10.0.0.0/16",
        help_text="One or more CIDR ranges, separated by commas, such as 10.0.0.0/16.",
    )
    subnet_name = forms.CharField(label="Subnet name", max_length=80, initial="default", required=False)
    subnet_prefix = forms.CharField(
        label="Subnet address range", max_length=43, initial="10.0.0.0/24", required=False,
        help_text="Inside the address space; at least a /29. Azure keeps the first four addresses and the last.",
    )


class SubnetForm(forms.Form):
    name = forms.CharField(max_length=80, help_text="1 to 80 characters: letters, numbers, underscores, periods and hyphens.")
    address_prefix = forms.CharField(
        label="Subnet address range", max_length=43,
        help_text="A CIDR range inside the virtual network's address space, at least a /29 (such as 10.0.1.0/24).",
    )


class PrivateDnsZoneForm(forms.Form):
    resource_group = forms.ModelChoiceField(queryset=None, label="Resource group", empty_label=None)
    name = forms.CharField(
        max_length=253, label="Name",
        help_text="The zone's DNS name, such as privatelink.blob.core.windows.net or privatelink.eus.backup.windowsazure.com.",
    )

    def __init__(self, *args, resource_groups, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["resource_group"].queryset = resource_groups
        self.fields["resource_group"].label_from_instance = lambda g: f"{g.name} ({g.subscription.display_name})"


class DnsRecordForm(forms.Form):
    name = forms.CharField(max_length=253, help_text="Relative to the zone, such as contosovault-ab-pod01-prot1.")
    ip = forms.CharField(label="IP address", max_length=15, help_text="An IPv4 address, such as 10.20.2.4.")


class VirtualNetworkLinkForm(forms.Form):
    name = forms.CharField(label="Link name", max_length=80)
    virtual_network = forms.ModelChoiceField(queryset=None, label="Virtual network", empty_label="Select a virtual network")

    def __init__(self, *args, virtual_networks, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["virtual_network"].queryset = virtual_networks
        self.fields["virtual_network"].label_from_instance = lambda v: f"{v.name} ({v.resource_group.name})"


class DatasourceNetworkForm(forms.Form):
    """Public network, or a subnet of a VNet the principal can see, in the datasource's region."""

    network = forms.ChoiceField(label="Network", required=False)

    def __init__(self, *args, subnets, **kwargs):
        super().__init__(*args, **kwargs)
        self.subnets = {str(s.pk): s for s in subnets}
        self.fields["network"].choices = [("", "Public network")] + [
            (pk, f"{s.virtual_network.name} / {s.name} ({s.address_prefix})") for pk, s in self.subnets.items()]

    def clean_network(self):
        value = self.cleaned_data.get("network") or ""
        return self.subnets.get(value) if value else None
