"""Forms of the Resource Guard pages: the create wizard's tabs, protected operations, approvers,
access requests and decisions. The services (`security.mua`) re-check every rule."""

from __future__ import annotations

from django import forms

from portal import services as portal_services
from portal.models import Region
from portal.wizards import ReviewForm
from security import mua
from security.models import Principal
from security.operations import GUARD_WRITE

DEFAULT_REGION = "eastus"
DESCRIPTION_HELP = (
    "Shown on every vault this guard protects and on each refusal: tell backup admins how to request "
    "access (who approves, where to ask)."
)


def duration_choices():
    """1, 2, 4 or 8 hours; in lab mode also 5 or 15 minutes (asked when the form is made)."""
    return [(value, mua.duration_label(duration)) for value, duration in mua.access_durations()]


class GroupChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return f"{obj.name} ({obj.subscription.display_name})"


class UserChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj):
        return f"{obj.display_name} ({obj.sign_in_name})" if obj.sign_in_name else obj.display_name


def user_principals():
    return Principal.objects.filter(kind=Principal.Kind.USER, enabled=True).select_related("user").order_by(
        "display_name"
    )


class GuardBasicsForm(forms.Form):
    resource_group = GroupChoiceField(
        queryset=None, label="Resource group", empty_label="Select a resource group",
        help_text="Any subscription: a separate one (owned by the security team) isolates the guard best.",
        error_messages={"required": "Select a resource group."},
    )
    name = forms.CharField(label="Name", max_length=50, error_messages={"required": "Enter a name for the Resource Guard."})
    region = forms.ModelChoiceField(
        queryset=Region.objects.all(), empty_label=None, label="Region",
        help_text="The guard must be in the same region as the vaults it protects.",
    )
    description = forms.CharField(
        label="Description", required=False, max_length=1000, help_text=DESCRIPTION_HELP,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        initial="Ask the security team for Backup MUA Operator on this guard (Approvals) before a critical operation.",
    )

    def __init__(self, *args, principal=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["resource_group"].queryset = portal_services.resource_groups_for(principal, GUARD_WRITE)
        self.fields["region"].initial = DEFAULT_REGION

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if len(name) < 2 or not mua.GUARD_NAME_RE.match(name):
            raise forms.ValidationError(mua.GUARD_NAME_RULE)
        return name

    def summary(self):
        data = self.cleaned_data
        group = data.get("resource_group")
        return [
            ("Subscription", group.subscription.display_name if group else "—"),
            ("Resource group", group.name if group else "—"),
            ("Name", data.get("name") or "—"),
            ("Region", str(data.get("region") or "—")),
            ("Description", data.get("description") or "—"),
        ]


OPTIONAL_CHOICES = [(c.action, c.label) for c in mua.CRITICAL_OPERATIONS if not c.mandatory]


class ProtectedOperationsForm(forms.Form):
    """Which optional operations the guard protects (the mandatory two always are)."""

    protected = forms.MultipleChoiceField(
        choices=OPTIONAL_CHOICES, required=False, widget=forms.CheckboxSelectMultiple, label="Protected operations",
        initial=[c.action for c in mua.CRITICAL_OPERATIONS if not c.mandatory and c.default_protected],
    )

    def __init__(self, *args, principal=None, **kwargs):
        super().__init__(*args, **kwargs)

    def exclusions(self) -> list[str]:
        chosen = set(self.cleaned_data.get("protected") or [])
        return [action for action, _ in OPTIONAL_CHOICES if action not in chosen]

    def summary(self):
        chosen = set(self.cleaned_data.get("protected") or [])
        rows = []
        for c in mua.CRITICAL_OPERATIONS:
            if c.mandatory:
                rows.append((c.label, "Protected (mandatory)"))
            else:
                rows.append((c.label, "Protected" if c.action in chosen else "Not protected"))
        return rows


class ApproversForm(forms.Form):
    approvers = UserChoiceField(
        queryset=None, required=False, widget=forms.CheckboxSelectMultiple, label="Approvers",
        help_text="Who approves access requests. Nobody approves their own request. With no approvers, every "
                  "request is approved automatically.",
    )

    def __init__(self, *args, principal=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["approvers"].queryset = user_principals()
        if principal is not None and principal.kind == Principal.Kind.USER and "approvers" not in self.initial:
            self.fields["approvers"].initial = [principal.pk]

    def summary(self):
        chosen = self.cleaned_data.get("approvers") or []
        if not chosen:
            return [("Approvers", "None: requests are approved automatically")]
        return [("Approvers", ", ".join(p.display_name for p in chosen))]


class GuardReviewForm(ReviewForm):
    pass


class DescriptionForm(forms.Form):
    description = forms.CharField(label="Description", required=False, max_length=1000, help_text=DESCRIPTION_HELP,
                                  widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))


class RequestAccessForm(forms.Form):
    justification = forms.CharField(
        label="Justification", max_length=mua.JUSTIFICATION_MAX,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Why you need it: the approvers read this to decide.",
        error_messages={"required": "Enter a justification: the approvers read it to decide."},
    )
    hours = forms.ChoiceField(label="Duration", choices=duration_choices, initial="1",
                              help_text="The access ends by itself after this time.")


class DecisionForm(forms.Form):
    comment = forms.CharField(
        label="Comment", max_length=500, widget=forms.Textarea(attrs={"rows": 2, "cols": 40}),
        error_messages={"required": "Enter a comment: the requester sees it with your decision."},
    )
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("reject", "Reject")])
