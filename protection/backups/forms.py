"""Forms of the backup actions: Backup now, Stop backup, and the recovery points' time range."""

from __future__ import annotations

import datetime as dt

from django import forms

from protection.backups import services as backups
from security import clock


class BackupNowForm(forms.Form):
    """Backup now: "Retention rule" — one of the policy's retention rules (reference §5.5)."""

    retention_rule = forms.ChoiceField(label="Retention rule", widget=forms.RadioSelect,
                                       help_text="The recovery point is kept as this rule of the policy says.")

    def __init__(self, instance, *args, **kwargs):
        super().__init__(*args, **kwargs)
        choices = backups.backup_rule_choices(instance)
        self.fields["retention_rule"].choices = choices
        default = "Default" if any(t == "Default" for t, _ in choices) else (choices[0][0] if choices else "")
        self.fields["retention_rule"].initial = default


class StopBackupForm(forms.Form):
    """Stop backup → Retain Backup Data → Backup data retention (reference §5.5).

    Delete Backup Data arrives with soft delete (issue 10) and is not offered here."""

    retain = forms.ChoiceField(
        label="Backup data retention", widget=forms.RadioSelect, initial=backups.RETAIN_AS_PER_POLICY,
        choices=[(backups.RETAIN_FOREVER, "Retain forever"), (backups.RETAIN_AS_PER_POLICY, "Retain as per policy")],
        help_text="Retain forever keeps every recovery point until you delete it. Retain as per policy lets "
                  "retention go on (the latest recovery point is kept forever).",
    )
    reason = forms.ChoiceField(label="Reason", required=False,
                               choices=[("", "Select a reason")] + [(r, r) for r in backups.STOP_REASONS])
    comments = forms.CharField(label="Comments", required=False, max_length=500, widget=forms.Textarea(attrs={"rows": 2}))


class RecoveryPointRangeForm(forms.Form):
    """The recovery points' time range (UTC dates, both included); the last 30 days by default."""

    start = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    # archive tier (issue 21): the recovery points of one tier
    tier = forms.ChoiceField(label="Tier", required=False, choices=[("", "All tiers"), ("VaultStore", "Vault-standard"),
                                                                     ("ArchiveStore", "Vault-archive"),
                                                                     ("OperationalStore", "Operational tier (snapshot)")])
    end = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def chosen_tier(self) -> str:
        return (self.cleaned_data.get("tier") or "") if self.is_bound and self.is_valid() else ""

    def range(self) -> tuple[dt.datetime, dt.datetime]:
        now = clock.now()
        data = self.cleaned_data if self.is_bound and self.is_valid() else {}
        end_day = data.get("end") or now.date()
        start_day = data.get("start") or (end_day - dt.timedelta(days=30))
        if start_day > end_day:
            start_day, end_day = end_day, start_day
        utc = dt.timezone.utc
        return (dt.datetime.combine(start_day, dt.time.min, tzinfo=utc),
                dt.datetime.combine(end_day, dt.time.max, tzinfo=utc))
