from django import forms
from django.contrib.auth import authenticate
from django.contrib.auth import forms as auth_forms

from portal.models import Region, Subscription
from security.models import Principal, RoleDefinition


class ResourceGroupForm(forms.Form):
    subscription = forms.ModelChoiceField(
        queryset=Subscription.objects.none(),
        help_text="All resources in a subscription are billed and governed together.",
    )
    name = forms.CharField(
        label="Resource group",
        max_length=90,
        help_text="1–90 letters, digits, underscores, hyphens, periods (not at the end) and parentheses.",
    )
    region = forms.ModelChoiceField(
        queryset=Region.objects.all(),
        empty_label=None,
        help_text="Where the group's metadata is kept; its resources may live in other regions.",
    )

    def __init__(self, *args, subscriptions, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["subscription"].queryset = subscriptions
        self.fields["subscription"].empty_label = None
        self.fields["name"].widget.attrs.update({"autocomplete": "off", "spellcheck": "false"})


class PrincipalChoiceField(forms.ModelChoiceField):
    """Principals named as the portal's people pickers show them: name, then sign-in or kind."""

    def label_from_instance(self, obj):
        if obj.kind == Principal.Kind.USER and obj.sign_in_name:
            return f"{obj.display_name} ({obj.sign_in_name})"
        return f"{obj.display_name} ({obj.get_kind_display()})"


def _members():
    return Principal.objects.exclude(kind=Principal.Kind.SYSTEM).select_related("user")


class RoleAssignmentForm(forms.Form):
    role = forms.ModelChoiceField(
        queryset=RoleDefinition.objects.all(),
        empty_label=None,
        widget=forms.RadioSelect,
        error_messages={"required": "Select a role."},
    )
    member = PrincipalChoiceField(
        queryset=_members(),
        empty_label="Select a member",
        label="Member",
        error_messages={"required": "Select the member who gets the role."},
    )
    ends_at = forms.DateTimeField(
        required=False,
        label="End (optional)",
        help_text="Lab time, UTC. Leave empty for a permanent assignment; with an end, the role "
        "stops counting the moment it ends.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    description = forms.CharField(
        required=False, max_length=500, help_text="Why this access is needed (shown in the list)."
    )


class CheckAccessForm(forms.Form):
    member = PrincipalChoiceField(queryset=_members(), empty_label="Select a member", label="Member")


class ClockForm(forms.Form):
    UNITS = [("hours", "hours"), ("days", "days")]
    amount = forms.IntegerField(min_value=1, max_value=3650, label="Move forward by")
    unit = forms.ChoiceField(choices=UNITS, label="Unit")


class OwnPasswordChangeForm(auth_forms.PasswordChangeForm):
    """Django's password change, with the old password checked through `authenticate`: wrong guesses count
    as failed sign-ins (throttled, logged) like those on the sign-in page, so a session left open is no way
    around the lockout."""

    def __init__(self, user, *args, request=None, **kwargs):
        self.request = request
        super().__init__(user, *args, **kwargs)
        self.fields["old_password"].label = "Current password"

    def clean_old_password(self):
        old_password = self.cleaned_data["old_password"]
        username = self.user.get_username()
        if authenticate(self.request, username=username, password=old_password) is None:
            raise forms.ValidationError("Your current password was entered incorrectly. Enter it again.",
                                        code="password_incorrect")
        return old_password
