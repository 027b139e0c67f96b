"""Forms of the Restore wizard (reference §5.6): Basics, Select recovery point, Restore parameters.

Choices come from what the signed-in principal may read. The Restore parameters tab builds a
`protection.restores.targets` target and runs the same rules the service runs
(`protection.restores.validation`), so every problem shows beside its field with its error code.
"""

from __future__ import annotations

import datetime as dt

from django import forms
from django.core.exceptions import ValidationError

from portal.shortcuts import visible
from protection import datasource_types
from protection import regions
from protection.restores import cross_region as crr
from protection.restores import layout, readiness, services, targets, validation
from security import clock

TYPE_CHOICES = datasource_types.CHOICES
REFRESH_ATTRS = {"data-refresh": "1"}  # the tab template re-renders the tab when these change


class RestoreStartForm(forms.Form):
    """Home → "Recover": Datasource type and Solution, then Continue."""

    datasource_type = forms.ChoiceField(label="Datasource type", choices=TYPE_CHOICES, initial=datasource_types.ADLS)
    solution = forms.ChoiceField(label="Solution", choices=[("AzureBackup", "Azure Backup")], initial="AzureBackup")


def _value(form, name):
    """A field's value as bound (what was typed) or its initial."""
    if form.is_bound:
        return form.data.get(form.add_prefix(name), "")
    return form.initial.get(name, form.fields[name].initial if name in form.fields else "")


class RestoreBasicsForm(forms.Form):
    datasource_type = forms.ChoiceField(label="Datasource type", choices=TYPE_CHOICES,
                                        widget=forms.Select(attrs=REFRESH_ATTRS))
    instance = forms.ChoiceField(label="Backup instance", help_text="The protected item to restore. Only instances "
                                 "you may read that have a recovery point are listed.",
                                 error_messages={"required": "Select the backup instance to restore."})

    def __init__(self, *args, principal, cross_region=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.principal = principal
        kind = _value(self, "datasource_type") or datasource_types.ADLS
        if cross_region:  # Restore to secondary region: PostgreSQL instances with points copied there
            kind = datasource_types.POSTGRES_FLEX
            self.fields["datasource_type"].choices = [(kind, datasource_types.get(kind).label)]
        instances = services.restorable_instances(principal, kind)
        if cross_region:
            instances = regions.secondary_instances(instances)
            self.fields["instance"].help_text = ("Secondary-region instances: PostgreSQL servers in vaults with Cross "
                                                 "Region Restore enabled whose recovery points are copied there.")
        self.instances = {str(i.pk): i for i in instances.select_related("vault__resource_group")}
        self.fields["instance"].choices = [("", "Select backup instance")] + [
            (pk, f"{i.name} — {i.datasource_name} (vault {i.vault.name})") for pk, i in self.instances.items()]

    def clean_instance(self):
        instance = self.instances.get(self.cleaned_data["instance"])
        if instance is None:
            raise ValidationError("Select one of the listed backup instances.")
        return instance

    def summary(self):
        d = self.cleaned_data
        i = d["instance"]
        return [("Datasource type", datasource_types.get(d["datasource_type"]).label), ("Backup instance", i.name),
                ("Datasource", i.datasource_name), ("Backup vault", i.vault.name)]


def _day(value) -> dt.date | None:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


class RecoveryPointForm(forms.Form):
    start = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    recovery_point = forms.ChoiceField(label="Recovery point", widget=forms.RadioSelect,
                                       error_messages={"required": "Select a recovery point."})
    # --- archive tier (issue 21): the tier filter, and rehydration of an archived point
    tier = forms.ChoiceField(label="Tier", required=False, choices=[
        ("", "All tiers"), ("VaultStore", "Vault-standard"), ("ArchiveStore", "Vault-archive"),
        ("OperationalStore", "Operational tier (snapshot)")])
    rehydration_priority = forms.ChoiceField(
        label="Rehydration priority", required=False, widget=forms.RadioSelect, initial="Standard",
        choices=[("Standard", "Standard (restorable after up to 15 hours)"), ("High", "High (restorable after 1 hour)")])
    rehydration_duration = forms.IntegerField(
        label="Rehydration duration (days)", required=False, min_value=10, max_value=30, initial=15,
        help_text="How long the rehydrated copy stays in Vault-standard (10 to 30 days); the point stays in archive.")

    @property
    def archived_points(self) -> bool:
        return any(p.is_archived and not p.is_rehydrated() for p in self.points)

    def needs_rehydration(self) -> bool:
        point = (self.cleaned_data or {}).get("recovery_point") if hasattr(self, "cleaned_data") else None
        return bool(point is not None and point.is_archived and not point.is_rehydrated())

    def clean(self):
        cleaned = super().clean()
        if self.needs_rehydration():
            if cleaned.get("rehydration_priority") not in ("Standard", "High"):
                self.add_error("rehydration_priority", "This recovery point is in the archive tier: choose a rehydration priority.")
            if cleaned.get("rehydration_duration") is None:
                self.add_error("rehydration_duration", "Choose how long the rehydrated copy stays: 10 to 30 days.")
        return cleaned
    # --- end archive tier

    def __init__(self, *args, principal, instance=None, cross_region=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance = instance
        self.points = []
        self.cross_region = cross_region
        if instance is None:
            self.fields["recovery_point"].choices = []
            return
        latest = self._points().first()
        today = clock.now().date()
        newest = latest.recovery_point_time.date() if latest else today
        self.fields["end"].initial = today
        self.fields["start"].initial = newest - dt.timedelta(days=30)
        start = _day(_value(self, "start")) or self.fields["start"].initial
        end = _day(_value(self, "end")) or today
        if start > end:
            start, end = end, start
        utc = dt.timezone.utc
        self.range = (dt.datetime.combine(start, dt.time.min, tzinfo=utc), dt.datetime.combine(end, dt.time.max, tzinfo=utc))
        points = self._points(*self.range)
        if _value(self, "tier") in ("VaultStore", "ArchiveStore", "OperationalStore"):  # archive tier: filter by tier
            points = points.filter(datastore=_value(self, "tier"))
        self.points = list(points[:200])
        self.fields["recovery_point"].choices = [(str(p.pk), f"{p.recovery_point_time:%Y-%m-%d %H:%M:%S} UTC")
                                                 for p in self.points]
        if self.points:  # the latest is preselected
            self.fields["recovery_point"].initial = str(self.points[0].pk)

    def _points(self, *time_range):
        """The instance's points; for a restore to the secondary region, the secondary region's points only."""
        points = services.points_of(self.instance, *time_range)
        return regions.secondary_points(points) if self.cross_region else points

    def clean_recovery_point(self):
        point = next((p for p in self.points if str(p.pk) == self.cleaned_data["recovery_point"]), None)
        if point is None:
            raise ValidationError("Select a recovery point in the time range.")
        return point

    def summary(self):
        p = self.cleaned_data["recovery_point"]
        rows = [("Recovery point", f"{p.recovery_point_time:%Y-%m-%d %H:%M:%S} UTC"), ("Datastore", p.get_datastore_display()),
                ("Retention tag", p.retention_tag), ("Health", p.get_health_display())]
        if self.needs_rehydration():  # archive tier
            rows += [("Rehydration priority", self.cleaned_data["rehydration_priority"]),
                     ("Rehydration duration", f"{self.cleaned_data['rehydration_duration']} days"),
                     ("Then", "A Rehydrate job copies the point to Vault-standard; the Restore job starts once it is "
                              "restorable (Standard: 15 hours, High: 1 hour, on Strongroom's clock).")]
        return rows


def _subscription_choices(objects, sub_of) -> list:
    subs = {}
    for obj in objects:
        sub = sub_of(obj)
        subs[sub.pk] = sub
    return [(str(pk), f"{s.display_name}") for pk, s in sorted(subs.items(), key=lambda kv: kv[1].display_name)]


class RestoreParametersForm(forms.Form):
    """The target of the restore; fields depend on the datasource type (and, for PostgreSQL, the
    restore type)."""

    def __init__(self, *args, principal, instance=None, point=None, cross_region=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.principal, self.instance, self.point = principal, instance, point
        self.cross_region = cross_region
        self.kind = instance.datasource_type if instance else None
        self.readiness = None
        if instance is None or point is None:
            return
        if self.kind == datasource_types.ADLS:
            self._adls_fields()
        elif self.kind == datasource_types.ELASTIC_SAN:
            self._esan_fields()
        elif self.kind == datasource_types.AZURE_DISK:
            self._disk_fields()
        else:
            self._pg_fields()

    # --- fields per type ------------------------------------------------------------------------

    def _target_subscription(self, objects, sub_of, default_sub):
        choices = _subscription_choices(objects, sub_of)
        self.fields["target_subscription"] = forms.ChoiceField(
            label="Target subscription", choices=choices or [("", "No subscription you can see")],
            initial=str(default_sub) if any(c[0] == str(default_sub) for c in choices) else (choices[0][0] if choices else ""),
            widget=forms.Select(attrs=REFRESH_ATTRS))
        return _value(self, "target_subscription") or self.fields["target_subscription"].initial

    def _adls_fields(self):
        from portal.inventory.models import StorageAccount
        from portal.inventory.services import STORAGE_ACCOUNT_READ

        self.point_containers = [p.item for p in layout.containers(self.point)]
        self.fields["restore_option"] = forms.ChoiceField(
            label="Select option to restore the blobs", widget=forms.RadioSelect, initial="all",
            choices=[("all", "Restore all backed-up containers"), ("selected", "Browse and select containers to restore")])
        self.fields["containers"] = forms.MultipleChoiceField(
            label="Containers", required=False, widget=forms.CheckboxSelectMultiple,
            choices=[(n, n) for n in self.point_containers],
            help_text=f"Up to {targets.MAX_CONTAINERS} containers; up to {targets.MAX_PREFIXES} prefixes each.")
        self.container_rows = []
        for index, name in enumerate(self.point_containers):
            self.fields[f"prefixes_{index}"] = forms.CharField(
                label=f"Prefixes for {name}", required=False, widget=forms.Textarea(attrs={"rows": 2}),
                help_text="One prefix per line; 'b' matches every blob whose name starts with b.")
            self.fields[f"rename_{index}"] = forms.CharField(
                label=f"Restore {name} as", required=False, max_length=63,
                help_text="A new container name (required for $web).")
            self.container_rows.append((name, index))
        accounts = list(visible(self.principal, StorageAccount.objects.select_related("resource_group__subscription", "region"),
                                STORAGE_ACCOUNT_READ).order_by("name"))
        sub = self._target_subscription(accounts, lambda a: a.resource_group.subscription,
                                        self.instance.vault.resource_group.subscription_id)
        source = self.instance.datasource_resource_id.lower()
        self.fields["target_storage_account"] = forms.ChoiceField(
            label="Target storage account", error_messages={"required": "Select the target storage account."},
            help_text="A different storage account with hierarchical namespace, in the same region as the source and "
                      "the vault, without containers of the restored names.",
            choices=[("", "Select storage account")] + [
                (a.resource_id, f"{a.name} ({a.region_id}{'' if a.hierarchical_namespace else ', no hierarchical namespace'}"
                                f"{', the source' if a.resource_id.lower() == source else ''})")
                for a in accounts if str(a.resource_group.subscription_id) == str(sub)])

    def _esan_fields(self):
        from portal.inventory.models import VolumeGroup
        from portal.inventory.services import VOLUME_GROUP_READ

        groups = list(visible(self.principal, VolumeGroup.objects.select_related(
            "elastic_san__resource_group__subscription", "elastic_san__region"), VOLUME_GROUP_READ)
            .order_by("elastic_san__name", "name"))
        source_group = next((g for g in groups if self.instance.datasource_resource_id.lower().startswith(
            g.resource_id.lower() + "/")), None)
        default_sub = (source_group.elastic_san.resource_group.subscription_id if source_group
                       else self.instance.vault.resource_group.subscription_id)
        sub = self._target_subscription(groups, lambda g: g.elastic_san.resource_group.subscription, default_sub)
        in_sub = [g for g in groups if str(g.elastic_san.resource_group.subscription_id) == str(sub)]
        rgs = {g.elastic_san.resource_group.pk: g.elastic_san.resource_group for g in in_sub}
        rg_choices = [(str(pk), rg.name) for pk, rg in sorted(rgs.items(), key=lambda kv: kv[1].name)]
        default_rg = source_group.elastic_san.resource_group_id if source_group else (rg_choices[0][0] if rg_choices else "")
        self.fields["target_resource_group"] = forms.ChoiceField(
            label="Resource group", choices=rg_choices or [("", "None")], widget=forms.Select(attrs=REFRESH_ATTRS),
            initial=str(default_rg))
        rg = _value(self, "target_resource_group") or str(default_rg)
        in_rg = [g for g in in_sub if str(g.elastic_san.resource_group_id) == str(rg)] or in_sub
        sans = {g.elastic_san.pk: g.elastic_san for g in in_rg}
        san_choices = [(str(pk), s.name) for pk, s in sorted(sans.items(), key=lambda kv: kv[1].name)]
        default_san = source_group.elastic_san_id if source_group and source_group in in_rg else (
            san_choices[0][0] if san_choices else "")
        self.fields["target_elastic_san"] = forms.ChoiceField(
            label="Target Elastic SAN instance", choices=san_choices or [("", "None")],
            widget=forms.Select(attrs=REFRESH_ATTRS), initial=str(default_san))
        san = _value(self, "target_elastic_san") or str(default_san)
        in_san = [g for g in in_rg if str(g.elastic_san_id) == str(san)] or in_rg
        self.fields["target_volume_group"] = forms.ChoiceField(
            label="Target Elastic SAN volume group", choices=[(g.resource_id, g.name) for g in in_san] or [("", "None")],
            initial=source_group.resource_id if source_group in in_san else (in_san[0].resource_id if in_san else ""),
            error_messages={"required": "Select the target volume group."})
        part = layout.volume_part(self.point)
        self.fields["volume_name"] = forms.CharField(
            label="Volume name", max_length=63, initial=f"{part.item}-restore"[:63],
            help_text="A new volume; a restore never overwrites one, and the name cannot be changed later.")

    def _disk_fields(self):
        """Azure Disk: Target subscription, Target resource group, Restored disk name (a new disk, ALR only)."""
        from portal.models import ResourceGroup
        from security.operations import RESOURCE_GROUP_READ

        groups = list(visible(self.principal, ResourceGroup.objects.select_related("subscription"), RESOURCE_GROUP_READ)
                      .order_by("name"))
        sub = self._target_subscription(groups, lambda g: g.subscription,
                                        self.instance.vault.resource_group.subscription_id)
        self.fields["target_resource_group"] = forms.ChoiceField(
            label="Target resource group", error_messages={"required": "Select the target resource group."},
            choices=[("", "Select resource group")] + [(g.resource_id, g.name) for g in groups
                                                       if str(g.subscription_id) == str(sub)],
            help_text="The new disk is created here, in the vault's region; the vault's identity needs Disk Restore "
                      "Operator on it.")
        self.fields["disk_name"] = forms.CharField(
            label="Restored disk name", max_length=80, initial=f"{self.instance.datasource_name}-restored"[:80],
            help_text="A new disk: a restore never overwrites a disk, so the name must not exist in the resource group.")

    def _pg_fields(self):
        from portal.inventory.models import Container, PostgresServer
        from portal.inventory.services import CONTAINER_READ, POSTGRES_READ

        dbs = [p.database for p in layout.databases(self.point)]
        kinds = [(targets.PG_DATABASE_KIND, "Restore as a new database (Strongroom)"),
                 (targets.PG_FILES_KIND, "Restore as files into a storage container")]
        if self.cross_region:  # as Azure: the secondary region restores the dumps as files
            kinds = kinds[1:]
        self.fields["restore_type"] = forms.ChoiceField(
            label="Restore type", widget=forms.RadioSelect(attrs=REFRESH_ATTRS), initial=kinds[0][0], choices=kinds)
        restore_type = _value(self, "restore_type") or kinds[0][0]
        self.restore_type = restore_type
        self.fields["database"] = forms.ChoiceField(
            label="Database", choices=([("", "All databases")] if restore_type == targets.PG_FILES_KIND else [])
            + [(d, d) for d in dbs], required=restore_type == targets.PG_DATABASE_KIND,
            initial=dbs[0] if dbs and restore_type == targets.PG_DATABASE_KIND else "")
        if restore_type == targets.PG_DATABASE_KIND:
            servers = list(visible(self.principal, PostgresServer.objects.select_related("resource_group__subscription"),
                                   POSTGRES_READ).order_by("name"))
            sub = self._target_subscription(servers, lambda s: s.resource_group.subscription,
                                            self.instance.vault.resource_group.subscription_id)
            in_sub = [s for s in servers if str(s.resource_group.subscription_id) == str(sub)]
            source = self.instance.datasource_resource_id.lower()
            self.fields["target_server"] = forms.ChoiceField(
                label="Target server", choices=[(s.resource_id, f"{s.name} ({s.host}:{s.port})") for s in in_sub]
                or [("", "None")],
                initial=next((s.resource_id for s in in_sub if s.resource_id.lower() == source),
                             in_sub[0].resource_id if in_sub else ""))
            stamp = f"{self.point.recovery_point_time:%Y%m%d%H%M}"
            first = (_value(self, "database") or (dbs[0] if dbs else "db"))[:40]
            self.fields["database_name"] = forms.CharField(
                label="New database name", max_length=63, initial=f"{first}_restored_{stamp}"[:63],
                help_text="Created empty from template0; restoring into an existing database is refused.")
        else:
            containers = list(visible(self.principal, Container.objects.select_related(
                "account__resource_group__subscription"), CONTAINER_READ).order_by("account__name", "name"))
            sub = self._target_subscription(containers, lambda c: c.account.resource_group.subscription,
                                            self.instance.vault.resource_group.subscription_id)
            in_sub = [c for c in containers if str(c.account.resource_group.subscription_id) == str(sub)]
            help_text = ""
            if self.cross_region:
                region = self.instance.vault.secondary_region
                in_sub = [c for c in in_sub if c.account.region_id == region.pk]
                help_text = f"A container of a storage account in the secondary region, {region.display_name}."
            self.fields["target_container"] = forms.ChoiceField(
                label="Target storage container", help_text=help_text, choices=[("", "Select container")] +
                [(c.resource_id, f"{c.account.name} / {c.name}") for c in in_sub],
                error_messages={"required": "Select the container the files go into."})
            self.fields["file_prefix"] = forms.CharField(
                label="File prefix", required=False, max_length=500, initial=validation.default_file_prefix(self.point),
                help_text="A folder for the files, e.g. restores/2024-05-01/ (empty: the container's root).")

    @property
    def container_table(self):
        """(container, its checkbox id, its prefixes field, its rename field) for the tab's table."""
        return [(name, index, self[f"prefixes_{index}"], self[f"rename_{index}"]) for name, index in self.container_rows]

    # --- the target and its checks --------------------------------------------------------------

    def target(self):
        d = self.cleaned_data
        if self.kind == datasource_types.ADLS:
            renames = {name: (d.get(f"rename_{i}") or "").strip() for name, i in self.container_rows}
            if d.get("restore_option") == "selected":
                chosen = []
                for name, i in self.container_rows:
                    if name in (d.get("containers") or []):
                        prefixes = tuple(p.strip() for p in (d.get(f"prefixes_{i}") or "").splitlines() if p.strip())
                        chosen.append(targets.ContainerChoice(name, prefixes, renames[name]))
                return targets.AdlsTarget(d.get("target_storage_account", ""), False, tuple(chosen))
            return targets.AdlsTarget(d.get("target_storage_account", ""), True,
                                      tuple(targets.ContainerChoice(n, (), r) for n, r in renames.items() if r))
        if self.kind == datasource_types.ELASTIC_SAN:
            return targets.VolumeTarget(d.get("target_volume_group", ""), (d.get("volume_name") or "").strip())
        if self.kind == datasource_types.AZURE_DISK:
            return targets.DiskTarget(d.get("target_resource_group", ""), (d.get("disk_name") or "").strip())
        if self.restore_type == targets.PG_FILES_KIND:
            return targets.PgFilesTarget(d.get("target_container", ""), (d.get("file_prefix") or "").strip(),
                                         d.get("database") or "")
        return targets.PgDatabaseTarget(d.get("database") or "", d.get("target_server", ""),
                                        (d.get("database_name") or "").strip())

    def clean(self):
        data = super().clean()
        if self.instance is None or self.point is None:
            raise ValidationError("Choose the backup instance on Basics and a recovery point first.")
        if self.errors:
            return data
        if self.kind == datasource_types.ADLS:
            for name, i in self.container_rows:
                if (data.get(f"prefixes_{i}") or "").strip() and name not in (data.get("containers") or []) \
                        and data.get("restore_option") == "selected":
                    self.add_error(f"prefixes_{i}", f"Select '{name}' to restore it with these prefixes.")
        try:
            if self.cross_region:
                crr.check(self.point, self.target())
            resolved = validation.resolve(self.point, self.target(), principal=self.principal)
        except ValidationError as exc:
            self._apply(exc)
            return data
        self.resolved = resolved
        ready = readiness.check(self.principal, self.instance.vault,
                                readiness.needs_for(self.point, self.target(), resolved))
        self.readiness = ready
        if not ready.ok:
            self.add_error(None, f"{validation.MISSING_PERMISSIONS}: {validation.MISSING_PERMISSIONS_TEXT} "
                                 f"{ready.message} Select Validate, then Assign missing roles.")
        return data

    def _apply(self, exc: ValidationError) -> None:
        aliases = {"prefixes": None, "rename": None, "containers": "containers", "restore_type": "restore_type"}
        for field, errors in exc.error_dict.items():
            name = aliases.get(field, field)
            if name not in self.fields:
                name = None
            if field == "prefixes" and self.kind == datasource_types.ADLS:
                name = next((f"prefixes_{i}" for n, i in self.container_rows if any(f"'{n}'" in str(e) for e in errors)), None)
            if field == "rename" and self.kind == datasource_types.ADLS:
                name = next((f"rename_{i}" for n, i in self.container_rows if any(f"'{n}'" in str(e) for e in errors)), None)
            self.add_error(name, errors)

    def summary(self):
        t = self.target()
        rows = []
        if isinstance(t, targets.AdlsTarget):
            account = getattr(self, "resolved", {}).get("account")
            rows.append(("Target storage account", account.name if account else t.account_id))
            chosen = t.effective(self.point_containers)
            rows.append(("Containers", "All backed-up containers" if t.all_containers else f"{len(chosen)} selected"))
            for c in chosen:
                extra = []
                if c.prefixes:
                    extra.append("prefixes " + ", ".join(c.prefixes))
                if c.rename_to:
                    extra.append(f"as {c.rename_to}")
                rows.append((f"  {c.name}", "; ".join(extra) or "everything"))
        elif isinstance(t, targets.VolumeTarget):
            group = self.resolved["volume_group"]
            rows += [("Target Elastic SAN", group.elastic_san.name), ("Target volume group", group.name),
                     ("New volume name", t.volume_name), ("Size", f"{self.resolved['size_gib']} GiB")]
        elif isinstance(t, targets.DiskTarget):
            rows += [("Target resource group", self.resolved["resource_group"].name), ("Restored disk name", t.disk_name),
                     ("Size", f"{self.resolved['size_gib']} GiB")]
        elif isinstance(t, targets.PgDatabaseTarget):
            rows += [("Restore type", "As a new database"), ("Database", t.database),
                     ("Target server", self.resolved["server"].name), ("New database name", t.database_name)]
        else:
            c = self.resolved["container"]
            rows += [("Restore type", "As files"), ("Database", t.database or "All databases"),
                     ("Target container", f"{c.account.name} / {c.name}"),
                     ("Files", ", ".join(n for n, _ in self.resolved["files"]))]
        if self.readiness is not None:
            rows.append(("Vault identity's roles", self.readiness.status))
        return rows


class AssignRolesForm(forms.Form):
    scope = forms.ChoiceField(label="Scope", widget=forms.RadioSelect, initial=readiness.SCOPE_RESOURCE,
                              choices=[(readiness.SCOPE_RESOURCE, "Target resource"),
                                       (readiness.SCOPE_RESOURCE_GROUP, "Target resource group"),
                                       (readiness.SCOPE_SUBSCRIPTION, "Target subscription")])
