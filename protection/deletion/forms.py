"""Forms of Delete backup data and Undelete (reference §5.5: "Type the name of Backup Item", Reason, Comments)."""

from __future__ import annotations

from django import forms

from protection.deletion import services as deletion


class DeleteBackupDataForm(forms.Form):
    confirm_name = forms.CharField(label="Type the name of Backup Item", max_length=200,
                                   widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}))
    reason = forms.ChoiceField(label="Reason", required=False,
                               choices=[("", "Select a reason")] + [(r, r) for r in deletion.DELETE_REASONS])
    comments = forms.CharField(label="Comments", required=False, max_length=500,
                               widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, instance, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["confirm_name"].help_text = f"Type “{instance.name}” to confirm."
