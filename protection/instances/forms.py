"""Forms of Configure protection (Basics, Backup policy, Datasources) and of Change policy.

The Datasources tab is built from `services.candidates`: only what the reference lets the
chosen vault protect is selectable (same region; Elastic SAN also same subscription; HNS storage
accounts; a volume in no other backup instance), and each row carries its backup readiness.
"""

from __future__ import annotations

from django import forms

from portal.wizards import ReviewForm
from protection import datasource_types, readiness
from protection.instances import services as svc
from protection.policies import services as policy_services

TYPE_CHOICES = datasource_types.CHOICES


class VaultChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return f"{obj.name} ({obj.resource_group.name}, {obj.region.display_name})"


class PolicyChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return obj.name


class ConfigureStartForm(forms.Form):
    """Home → "+ Configure protection": Resource managed by, Datasource type, Solution."""

    managed_by = forms.ChoiceField(label="Resource managed by", choices=[("Azure", "Azure")], initial="Azure")
    datasource_type = forms.ChoiceField(label="Datasource type", choices=TYPE_CHOICES, initial=datasource_types.ADLS)
    solution = forms.ChoiceField(label="Solution", choices=[("AzureBackup", "Azure Backup")], initial="AzureBackup")


class ConfigureBasicsForm(forms.Form):
    """Basics: Datasource type and Vault."""

    datasource_type = forms.ChoiceField(label="Datasource type", choices=TYPE_CHOICES, initial=datasource_types.ADLS)
    vault = VaultChoiceField(queryset=None, label="Vault", empty_label="Select vault",
                             error_messages={"required": "Select the vault that will hold the backups."})

    def __init__(self, *args, principal, **kwargs):
        super().__init__(*args, **kwargs)
        from vaults.services import vaults_for

        self.principal = principal
        self.fields["vault"].queryset = vaults_for(principal)

    def clean(self):
        data = super().clean()
        vault = data.get("vault")
        if vault is not None and not vault.identity_enabled:
            self.add_error("vault", f"The vault '{vault.name}' has its system-assigned identity off: turn it on in the "
                                    "vault's Identity blade first (the vault needs it to read your data).")
        return data

    def summary(self):
        d = self.cleaned_data
        return [("Datasource type", datasource_types.get(d["datasource_type"]).label), ("Vault", d["vault"].name),
                ("Vault region", d["vault"].region.display_name),
                ("Vault resource group", d["vault"].resource_group.name)]


class ConfigurePolicyForm(forms.Form):
    """Backup policy: pick one of the vault's policies for the datasource type, or create a new one."""

    policy = PolicyChoiceField(queryset=None, label="Backup policy", widget=forms.RadioSelect, empty_label=None,
                               error_messages={"required": "Select a backup policy, or create a new one."})

    def __init__(self, *args, principal, vault=None, datasource_type=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.vault, self.datasource_type = vault, datasource_type
        qs = policy_services.policies_for(principal)
        if vault is None or datasource_type is None:
            qs = qs.none()
        else:
            qs = qs.filter(vault=vault, datasource_type=datasource_type).order_by("name")
        self.fields["policy"].queryset = qs
        self.policies = list(qs)
        if len(self.policies) == 1 and not self.is_bound:
            self.fields["policy"].initial = self.policies[0].pk

    def clean(self):
        data = super().clean()
        if self.vault is None:
            raise forms.ValidationError("Choose the datasource type and the vault on Basics first.")
        return data

    def summary(self):
        policy = self.cleaned_data["policy"]
        return [("Backup policy", policy.name), *[("", line) for line in policy.parsed.summary()]]


class DatasourcesForm(forms.Form):
    """Datasources: per type, the offered datasources with instance names (auto-filled, editable),
    containers (ADLS), volume-group filter and snapshot resource group (Elastic SAN)."""

    def __init__(self, *args, principal, vault=None, datasource_type=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.principal, self.vault, self.datasource_type = principal, vault, datasource_type
        self.kind = datasource_types.TYPES.get(datasource_type)
        self.rows: list[svc.Candidate] = []
        self.elastic_sans = []
        self.san = None
        if vault is None or self.kind is None:
            return
        if datasource_type == datasource_types.ELASTIC_SAN:
            self._elastic_san_fields()
        else:
            self.rows = svc.candidates(principal, vault, datasource_type)
        if datasource_type == datasource_types.AZURE_DISK:
            self._disk_fields()
        for row in self.rows:
            self._row_fields(row)

    # --- fields ---------------------------------------------------------------------------------

    def _elastic_san_fields(self):
        self.elastic_sans = list(svc.elastic_sans_for(self.principal, self.vault))
        choices = [(str(s.pk), f"{s.name} ({s.resource_group.name})") for s in self.elastic_sans]
        self.fields["elastic_san"] = forms.ChoiceField(label="Elastic SAN", choices=choices, required=bool(choices))
        chosen = self.data.get(self.add_prefix("elastic_san")) if self.is_bound else None
        self.san = next((s for s in self.elastic_sans if str(s.pk) == str(chosen)), None) or (
            self.elastic_sans[0] if self.elastic_sans else None)
        if self.san is None:
            return
        self.fields["elastic_san"].initial = str(self.san.pk)
        self.rows = svc.volume_candidates(self.principal, self.vault, self.san)
        groups = sorted({r.volume_group for r in self.rows})
        self.fields["volume_group"] = forms.ChoiceField(label="Volume group", required=False,
                                                        choices=[("", "All volume groups")] + [(g, g) for g in groups])
        rgs = svc.snapshot_resource_groups_for(self.principal, self.san.resource_group.subscription)
        self.fields["snapshot_resource_group"] = forms.ChoiceField(
            label="Snapshot resource group", choices=[(g.resource_id, g.name) for g in rgs],
            help_text="Where the recovery points (snapshots) are kept. Defaults to the Elastic SAN's resource group; "
                      "it must be in the volume's subscription.",
        )
        default_rg = self.san.resource_group.resource_id
        self.fields["snapshot_resource_group"].initial = default_rg
        key = self.add_prefix("snapshot_resource_group")
        if self.is_bound and not self.data.get(key):
            # A new Elastic SAN was chosen: its resource group becomes the default again.
            self.data = self.data.copy()
            self.data[key] = default_rg

    def _disk_fields(self):
        """Azure Disk: one snapshot resource group for the disks chosen here; in the vault's (and so the
        disks') subscription, never a chosen disk's own resource group (checked by the service)."""
        rgs = svc.snapshot_resource_groups_for(self.principal, self.vault.resource_group.subscription)
        self.fields["snapshot_resource_group"] = forms.ChoiceField(
            label="Snapshot resource group", choices=[("", "Select resource group")] + [(g.resource_id, g.name) for g in rgs],
            error_messages={"required": "Select the snapshot resource group."},
            help_text="Where the recovery points (incremental snapshots) are kept: a resource group of the disk's "
                      "subscription other than the disk's own (a dedicated one is recommended). It cannot be changed later.")

    def _row_fields(self, row: svc.Candidate):
        k = row.key
        self.fields[f"{k}_selected"] = forms.BooleanField(required=False, label=f"Select {row.name}", disabled=not row.offered)
        self.fields[f"{k}_name"] = forms.CharField(required=False, max_length=svc.INSTANCE_NAME_MAX, label="Backup instance name",
                                                   initial=row.default_instance_name)
        if row.datasource_type == datasource_types.ADLS and row.offered:
            self.fields[f"{k}_scope"] = forms.ChoiceField(
                label="Containers", widget=forms.RadioSelect, initial="all", required=False,
                choices=[("all", "All containers (new containers are not added automatically)"),
                         ("selected", f"Selected containers (up to {svc.MAX_CONTAINERS})")])
            choices = [(c, c) for c in row.containers]
            self.fields[f"{k}_containers"] = forms.MultipleChoiceField(required=False, choices=choices,
                                                                       widget=forms.CheckboxSelectMultiple, label="Back up")
            self.fields[f"{k}_excluded"] = forms.MultipleChoiceField(required=False, choices=choices,
                                                                     widget=forms.CheckboxSelectMultiple, label="Exclude")

    # --- reading it -----------------------------------------------------------------------------

    @property
    def snapshot_resource_group_id(self) -> str:
        if self.datasource_type not in svc.SNAPSHOT_GROUP_TYPES:
            return ""
        if hasattr(self, "cleaned_data") and self.cleaned_data.get("snapshot_resource_group"):
            return self.cleaned_data["snapshot_resource_group"]
        if self.is_bound:
            return self.data.get(self.add_prefix("snapshot_resource_group"), "")
        field = self.fields.get("snapshot_resource_group")
        return field.initial if field else ""

    def is_selected(self, row) -> bool:
        if hasattr(self, "cleaned_data"):
            return bool(self.cleaned_data.get(f"{row.key}_selected"))
        return self[f"{row.key}_selected"].value() in (True, "on", "true", "True")

    def table(self):
        """Rows for the template: candidate, its fields, readiness."""
        filter_group = self.data.get(self.add_prefix("volume_group"), "") if self.is_bound else ""
        rg = self.snapshot_resource_group_id
        out = []
        for row in self.rows:
            k = row.key
            out.append({
                "row": row,
                "selected": self[f"{k}_selected"],
                "name": self[f"{k}_name"],
                "scope": self[f"{k}_scope"] if f"{k}_scope" in self.fields else None,
                "containers": self[f"{k}_containers"] if f"{k}_containers" in self.fields else None,
                "excluded": self[f"{k}_excluded"] if f"{k}_excluded" in self.fields else None,
                "readiness": svc.check_readiness(self.principal, self.vault, row, rg) if row.offered else None,
                "hidden": bool(filter_group) and row.volume_group != filter_group,
                # ADLS: how many containers past the limit "all containers" would be (shown before the click)
                "over_limit": max(len(row.containers) - svc.MAX_CONTAINERS, 0),
            })
        return out

    def clean(self):
        data = super().clean()
        if self.vault is None or self.kind is None:
            raise forms.ValidationError("Choose the datasource type and the vault on Basics first.")
        chosen = [r for r in self.rows if r.offered and data.get(f"{r.key}_selected")]
        if not chosen:
            raise forms.ValidationError("Select at least one datasource to protect.")
        names = {}
        for row in chosen:
            k = row.key
            name = (data.get(f"{k}_name") or "").strip()
            data[f"{k}_name"] = name
            if problem := svc.name_rule_error(name):
                self.add_error(f"{k}_name", problem)
            elif name.lower() in names:
                self.add_error(f"{k}_name", f"'{name}' is already the name of the backup instance for {names[name.lower()]}.")
            elif self.vault.backup_instances.filter(name__iexact=name).exists():
                self.add_error(f"{k}_name", f"A backup instance named '{name}' already exists in the vault '{self.vault.name}'.")
            names.setdefault(name.lower(), row.name)
            if row.datasource_type == datasource_types.ADLS:
                if data.get(f"{k}_scope") == "selected":
                    picked = data.get(f"{k}_containers") or []
                    if not picked:
                        self.add_error(f"{k}_containers", "Select at least one container, or choose all containers.")
                    elif problem := svc.container_limit_error(len(set(picked)), all_containers=False):
                        self.add_error(f"{k}_containers", problem)
                elif set(row.containers) and set(data.get(f"{k}_excluded") or []) >= set(row.containers):
                    self.add_error(f"{k}_excluded", "Every container is excluded: leave at least one to back up.")
                elif problem := svc.container_limit_error(
                        len(set(row.containers) - set(data.get(f"{k}_excluded") or [])), all_containers=True):
                    self.add_error(f"{k}_scope", problem)
        rg = self.snapshot_resource_group_id
        for row in chosen:
            if self.datasource_type == datasource_types.AZURE_DISK and (problem := svc.snapshot_group_error(row, rg)):
                self.add_error("snapshot_resource_group" if rg else None, f"{row.name}: {problem}")
                continue
            result = svc.check_readiness(self.principal, self.vault, row, rg)
            if not result.ok:
                self.add_error(f"{row.key}_selected", f"{row.name}: backup readiness is '{result.status}'. {result.message}")
        return data

    def selections(self) -> list[svc.DatasourceSelection]:
        d = self.cleaned_data
        out = []
        for row in self.rows:
            k = row.key
            if not (row.offered and d.get(f"{k}_selected")):
                continue
            all_containers = (d.get(f"{k}_scope") or "all") == "all"
            out.append(svc.DatasourceSelection(
                resource_id=row.resource_id, instance_name=d[f"{k}_name"], key=k,
                all_containers=all_containers if row.datasource_type == datasource_types.ADLS else False,
                containers=tuple(d.get(f"{k}_containers") or ()) if not all_containers else (),
                excluded_containers=tuple(d.get(f"{k}_excluded") or ()) if all_containers else (),
                snapshot_resource_group_id=self.snapshot_resource_group_id,
            ))
        return out

    def summary(self):
        rows = []
        if self.datasource_type in svc.SNAPSHOT_GROUP_TYPES:
            rows.append(("Snapshot resource group", self.snapshot_resource_group_id.rsplit("/", 1)[-1]))
        by_id = {r.resource_id: r for r in self.rows}
        for sel in self.selections():
            row = by_id[sel.resource_id]
            what = {datasource_types.ADLS: "Storage account", datasource_types.ELASTIC_SAN: "Volume",
                    datasource_types.POSTGRES_FLEX: "Server", datasource_types.AZURE_DISK: "Disk"}[row.datasource_type]
            text = f"{what} {row.name}"
            if row.datasource_type == datasource_types.ADLS:
                if sel.all_containers:
                    text += " · all containers" + (f" except {', '.join(sel.excluded_containers)}" if sel.excluded_containers else "")
                else:
                    text += f" · containers: {', '.join(sel.containers)}"
            if row.datasource_type == datasource_types.POSTGRES_FLEX:
                text += " · the whole server" + (f" ({len(row.databases)} databases)" if row.databases else "")
            rows.append((f"Backup instance '{sel.instance_name}'", text + " · Backup readiness: Success"))
        return rows


class ConfigureReviewForm(ReviewForm):
    pass


class ChangePolicyForm(forms.Form):
    policy = PolicyChoiceField(queryset=None, label="Backup policy", widget=forms.RadioSelect, empty_label=None,
                               error_messages={"required": "Select the new backup policy."})

    def __init__(self, *args, principal, instance, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["policy"].queryset = svc.policies_for_instance(principal, instance)
        self.fields["policy"].initial = instance.policy_id
        self.policies = list(self.fields["policy"].queryset)


SCOPE_LEVELS = readiness.SCOPE_LEVELS
