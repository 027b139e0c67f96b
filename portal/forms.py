from django import forms

from portal.models import Region, Subscription
from security.models import Principal, RoleDefinition


class ResourceGroupForm(forms.Form):
    subscription = forms.ModelChoiceField(queryset=Subscription.objects.none())
    name = forms.CharField(label="Resource group", max_length=90)
    region = forms.ModelChoiceField(queryset=Region.objects.all(), empty_label=None)

    def __init__(self, *args, subscriptions, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["subscription"].queryset = subscriptions
        self.fields["subscription"].empty_label = None


class RoleAssignmentForm(forms.Form):
    role = forms.ModelChoiceField(queryset=RoleDefinition.objects.all(), empty_label="Select a role")
    member = forms.ModelChoiceField(
        queryset=Principal.objects.exclude(kind=Principal.Kind.SYSTEM),
        empty_label="Select a member",
        label="Members",
    )
    ends_at = forms.DateTimeField(
        required=False,
        label="Ends (optional)",
        help_text="Leave empty for a permanent assignment.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    description = forms.CharField(required=False, max_length=500)


class CheckAccessForm(forms.Form):
    member = forms.ModelChoiceField(
        queryset=Principal.objects.exclude(kind=Principal.Kind.SYSTEM), empty_label="Select a member"
    )


class ClockForm(forms.Form):
    UNITS = [("hours", "hours"), ("days", "days")]
    amount = forms.IntegerField(min_value=1, max_value=3650)
    unit = forms.ChoiceField(choices=UNITS)
