"""Forms of the backup policy pages: the create wizard's tabs (Basics, Schedule + retention) and the
edit page, which reuses the Schedule + retention form. The forms check what they can alone and call
`services.validate_spec` for the per-type limits, so errors appear beside the field."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from portal.wizards import ReviewForm
from protection import datasource_types
from protection.policies import services as svc
from protection.policy_rules import DAYS, HOURLY_EVERY, Policy
from security import operations as ops
from security.rbac import authorize

UNIT_CHOICES = [(u, u) for u in svc.UNITS]
TYPE_CHOICES = datasource_types.CHOICES


class VaultChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return f"{obj.name} ({obj.resource_group.name}, {obj.region.display_name})"


def writable_vaults(principal):
    """Vaults in which the principal may create backup policies."""
    from vaults.services import vaults_for

    vaults = vaults_for(principal)
    ids = [v.pk for v in vaults if authorize(principal, ops.POLICY_WRITE, f"{v.resource_id}/backupPolicies/x").allowed]
    return vaults.filter(pk__in=ids)


class PolicyBasicsForm(forms.Form):
    """Basics: Policy name, Datasource type, Vault."""

    name = forms.CharField(label="Policy name", max_length=150,
                           error_messages={"required": "Enter a name for the backup policy."})
    datasource_type = forms.ChoiceField(label="Datasource type", choices=TYPE_CHOICES, initial=datasource_types.ADLS,
                                        widget=forms.RadioSelect)
    vault = VaultChoiceField(queryset=None, label="Vault", empty_label="Select vault",
                             error_messages={"required": "Select the vault that will hold the policy."})

    def __init__(self, *args, principal, **kwargs):
        super().__init__(*args, **kwargs)
        self.principal = principal
        self.fields["vault"].queryset = writable_vaults(principal)
        self.fields["name"].widget.attrs.update({"autocomplete": "off", "spellcheck": "false"})

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if problem := svc.name_rule_error(name):
            raise forms.ValidationError(problem)
        return name

    def clean(self):
        data = super().clean()
        vault, name = data.get("vault"), data.get("name")
        if vault is not None and name and vault.backup_policies.filter(name__iexact=name).exists():
            self.add_error("name", f"A backup policy named '{name}' already exists in the vault '{vault.name}'. Choose another name.")
        return data

    def summary(self):
        d = self.cleaned_data
        return [("Policy name", d["name"]), ("Datasource type", datasource_types.get(d["datasource_type"]).label),
                ("Vault", d["vault"].name), ("Region", d["vault"].region.display_name)]


def _retention_fields(tag: str, *, required: bool):
    count = forms.IntegerField(label=f"{tag} retention", min_value=1, required=required,
                               error_messages={"min_value": "Enter a whole number of at least 1.",
                                               "invalid": "Enter a whole number.",
                                               "required": f"Enter how long the {tag} rule keeps backups."})
    unit = forms.ChoiceField(label=f"{tag} retention unit", choices=UNIT_CHOICES, initial=svc.RULE_UNIT[tag])
    return count, unit


class PolicyScheduleForm(forms.Form):
    """Schedule + retention, per datasource type (reference §5.3)."""

    frequency = forms.ChoiceField(label="Backup frequency", widget=forms.RadioSelect, choices=())
    every = forms.TypedChoiceField(label="Every", coerce=int, required=False, empty_value=None,
                                   choices=[(n, f"{n} hour{'s' if n != 1 else ''}") for n in HOURLY_EVERY],
                                   error_messages={"invalid_choice": "Choose every 1, 2, 4, 6, 8 or 12 hours."})
    time = forms.TimeField(label="Time (UTC)", initial=dt.time(2, 0), widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
                           error_messages={"required": "Enter the backup time (HH:MM, UTC).", "invalid": "Enter a time as HH:MM."})
    days = forms.MultipleChoiceField(label="Days of the week", choices=[(d, d) for d in DAYS], required=False,
                                     widget=forms.CheckboxSelectMultiple)
    default_count, default_unit = _retention_fields("Default", required=True)
    daily_enabled = forms.BooleanField(required=False, label="Daily rule",
                                       widget=forms.CheckboxInput(attrs={"text": "Keep the first successful backup of each day"}))
    daily_count, daily_unit = _retention_fields("Daily", required=False)
    weekly_enabled = forms.BooleanField(required=False, label="Weekly rule",
                                        widget=forms.CheckboxInput(attrs={"text": "Keep the first successful backup of each week"}))
    weekly_count, weekly_unit = _retention_fields("Weekly", required=False)
    monthly_enabled = forms.BooleanField(required=False, label="Monthly rule",
                                         widget=forms.CheckboxInput(attrs={"text": "Keep the first successful backup of each month"}))
    monthly_count, monthly_unit = _retention_fields("Monthly", required=False)
    yearly_enabled = forms.BooleanField(required=False, label="Yearly rule",
                                        widget=forms.CheckboxInput(attrs={"text": "Keep the first successful backup of each year"}))
    yearly_count, yearly_unit = _retention_fields("Yearly", required=False)

    ALL_EXTRA = (("Daily", "daily"), ("Weekly", "weekly"), ("Monthly", "monthly"), ("Yearly", "yearly"))
    EXTRA = ALL_EXTRA[1:]  # a type's own rules replace these (`type_rules.rules`)
    # Azure Disk's words (reference §5.3): "first successful backup taken daily or weekly".
    TAKEN = {"Daily": "First successful backup taken daily", "Weekly": "First successful backup taken weekly"}
    # --- archive tier (issue 21): "Tier to archive" of the Default rule (PostgreSQL policies)
    tier_enabled = forms.BooleanField(required=False, label="Tier to archive")
    tier_when = forms.ChoiceField(label="Tier to archive", widget=forms.RadioSelect, required=False, initial="after",
                                  choices=[("after", "After (months)"), ("expiry", "On expiry")])
    tier_after_months = forms.IntegerField(label="Months in Vault-standard", required=False, min_value=3, max_value=120,
                                           initial=3, error_messages={"min_value": "Points move to archive at 3 months old at the earliest."})
    tier_archive_count = forms.IntegerField(label="Retention in all (archive included)", required=False, min_value=1,
                                            initial=2)
    tier_archive_unit = forms.ChoiceField(label="Retention unit", choices=[("Months", "Months"), ("Years", "Years")],
                                          initial="Years", required=False)

    @property
    def tiering_offered(self) -> bool:
        return self.datasource_type == datasource_types.POSTGRES_FLEX

    def _tiering(self):
        d = self.cleaned_data
        if not d.get("tier_enabled"):
            return None
        after = d.get("tier_after_months") if d.get("tier_when") != "expiry" else None
        return svc.Tiering(after, svc.Retention(d.get("tier_archive_count") or 0, d.get("tier_archive_unit") or "Years"))
    # --- end archive tier

    def __init__(self, *args, datasource_type=None, spec: svc.PolicySpec | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.datasource_type = datasource_type
        self.kind = datasource_types.TYPES.get(datasource_type)
        self.type_rules = svc.TYPE_RULES.get(datasource_type)
        if self.type_rules is None:
            self.fields["frequency"].choices = [("Daily", "Daily"), ("Weekly", "Weekly")]
            return
        self.fields["frequency"].choices = [(f, f) for f in self.type_rules.frequencies]
        self.EXTRA = tuple((tag, p) for tag, p in self.ALL_EXTRA if tag in self.type_rules.rules)
        for tag, prefix in self.ALL_EXTRA:  # a rule the type does not have is not asked for
            if (tag, prefix) not in self.EXTRA:
                for name in ("enabled", "count", "unit"):
                    del self.fields[f"{prefix}_{name}"]
        if "Hourly" not in self.type_rules.frequencies:
            del self.fields["every"]
        if "Weekly" not in self.type_rules.frequencies:
            del self.fields["days"]
        spec = spec or svc.default_spec(datasource_type)
        initial = {
            "frequency": spec.frequency, "time": spec.time, "days": list(spec.days) or ["Sunday"],
            "default_count": spec.default.count, "default_unit": spec.default.unit,
            "every": spec.every or self.type_rules.default_every,
        }
        initial = {k: v for k, v in initial.items() if k in self.fields}
        for tag, prefix in self.EXTRA:
            rule = spec.extra.get(tag)
            initial[f"{prefix}_enabled"] = rule is not None
            initial[f"{prefix}_count"] = rule.count if rule else {"Daily": 30, "Weekly": 12, "Monthly": 12, "Yearly": 3}[tag]
            initial[f"{prefix}_unit"] = rule.unit if rule else svc.RULE_UNIT[tag]
        if spec.tiering is not None:  # archive tier
            initial.update(tier_enabled=True, tier_when="after" if spec.tiering.after_months else "expiry",
                           tier_after_months=spec.tiering.after_months or 3,
                           tier_archive_count=spec.tiering.archive.count, tier_archive_unit=spec.tiering.archive.unit)
        for key, value in initial.items():
            self.fields[key].initial = value
        most = self.type_rules.unit_max or svc.UNIT_MAX
        self.fields["default_count"].help_text = (
            f"At least {self.type_rules.min_days} day{'s' if self.type_rules.min_days != 1 else ''}; at most "
            f"{most['Days']:,} days, {most['Weeks']} weeks, {most['Months']} months or {self.type_rules.max_label}."
        )
        if "Hourly" in self.type_rules.frequencies:  # Azure Disk's Backup policy tab (reference §5.3)
            self.fields["frequency"].label = "Frequency"
            self.fields["time"].label = "Start time (UTC)"
            self.fields["time"].help_text = "When the first backup of the day starts (not when it completes)."
            self.fields["every"].help_text = "Premium SSD v2 and Ultra disks: every 12 hours only."
            for tag, prefix in self.EXTRA:
                self.fields[f"{prefix}_enabled"].widget.attrs["text"] = self.TAKEN[tag]

    @property
    def hourly(self) -> bool:
        return bool(self.type_rules and "Hourly" in self.type_rules.frequencies)

    @property
    def weekly_days(self) -> bool:
        return bool(self.type_rules and "Weekly" in self.type_rules.frequencies)

    @property
    def has_extra_rules(self) -> bool:
        """A rule besides Default is on (or has an error): the wizard shows the added rules open."""
        for _, prefix in self.EXTRA:
            if self[f"{prefix}_count"].errors:
                return True
            enabled = self[f"{prefix}_enabled"]
            if self.fields[enabled.name].widget.value_from_datadict(self.data, self.files, enabled.html_name) \
                    if self.is_bound else self.fields[enabled.name].initial:
                return True
        return False

    @property
    def rule_priority(self) -> str:
        tags = [t for t in ("Yearly", "Monthly", "Weekly", "Daily") if not self.type_rules or t in self.type_rules.rules]
        return " > ".join([*tags, "Default"])

    @property
    def schedule_notes(self):
        return self.type_rules.notes if self.type_rules else ()

    @property
    def extra_rules(self):
        return [{"tag": tag, "enabled": self[f"{p}_enabled"], "count": self[f"{p}_count"], "unit": self[f"{p}_unit"]}
                for tag, p in self.EXTRA]

    def spec(self) -> svc.PolicySpec:
        d = self.cleaned_data
        extra = {}
        for tag, prefix in self.EXTRA:
            if d.get(f"{prefix}_enabled"):
                extra[tag] = svc.Retention(d.get(f"{prefix}_count"), d.get(f"{prefix}_unit"))
        return svc.PolicySpec(
            frequency=d.get("frequency"), time=d.get("time"),
            days=tuple(sorted(d.get("days") or (), key=DAYS.index)) if d.get("frequency") == "Weekly" else (),
            default=svc.Retention(d.get("default_count"), d.get("default_unit")), extra=extra,
            every=d.get("every") if d.get("frequency") == "Hourly" else None,
            tiering=self._tiering(),  # archive tier
        )

    def clean(self):
        data = super().clean()
        if self.type_rules is None:
            raise ValidationError("Choose the datasource type on Basics first.")
        for tag, prefix in self.EXTRA:
            if data.get(f"{prefix}_enabled") and data.get(f"{prefix}_count") is None and f"{prefix}_count" not in self.errors:
                self.add_error(f"{prefix}_count", f"Enter how long the {tag} rule keeps backups.")
        if data.get("tier_enabled") and data.get("tier_when") != "expiry" and data.get("tier_after_months") is None \
                and "tier_after_months" not in self.errors:  # archive tier
            self.add_error("tier_after_months", "Enter after how many months points move to archive (3 or more).")
        if data.get("tier_enabled") and not data.get("tier_archive_count") and "tier_archive_count" not in self.errors:
            self.add_error("tier_archive_count", "Enter how long tiered points are kept in all.")
        if self.errors:
            return data
        try:
            self.policy_rules = svc.validate_spec(self.datasource_type, self.spec())
        except ValidationError as exc:
            for key, messages in exc.message_dict.items():
                self.add_error(None if key == NON_FIELD_ERRORS or key not in self.fields else key, messages)
        return data

    def summary(self):
        rules = getattr(self, "policy_rules", None) or svc.build_rules(self.datasource_type, self.spec())
        lines = Policy(rules).summary()
        rows = [("Backup schedule", lines[0].removeprefix("Backup: "))]
        for line in lines[1:]:
            label, _, value = line.partition(": ")
            rows.append((label.replace("Retention ", "Retention: "), value))
        if self.type_rules and self.type_rules.max_recovery_points:
            rows.append(("Recovery points kept at most", f"{svc.max_recovery_points(rules)} of {self.type_rules.max_recovery_points}"))
        return rows


class PolicyReviewForm(ReviewForm):
    pass
