from django import forms
from django.contrib.auth import authenticate
from django.contrib.auth import forms as auth_forms

from portal.models import Region, Subscription
from security import conditions, roles
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


def members_for(viewer):
    """The members a people picker offers ``viewer``: everyone but the system, and of the service principals of
    app registrations only those of apps ``viewer`` may see (a trainee picks their own app, never another's)."""
    from security import applications

    if viewer is None or applications.reads_all(viewer):
        return _members()
    hidden = Principal.objects.filter(kind=Principal.Kind.SERVICE_PRINCIPAL).exclude(
        application__in=applications.visible_applications(viewer))
    return _members().exclude(pk__in=hidden)


class _MemberPicker:
    """Narrows the form's ``member`` choices to `members_for(viewer)`."""

    def __init__(self, *args, viewer=None, **kwargs):
        super().__init__(*args, **kwargs)
        if viewer is not None:
            self.fields["member"].queryset = members_for(viewer)


class RoleRadioSelect(forms.RadioSelect):
    """The role picker: a role whose assignments may carry a delegation condition is marked
    (``data-delegation``), so the page shows the Conditions section when it is chosen (CSS only)."""

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(name, value, label, selected, index, subindex, attrs)
        instance = getattr(value, "instance", None)
        if instance is not None and instance.name in roles.DELEGATION_ROLES:
            option["attrs"]["data-delegation"] = "true"
        return option


# "What user can do", as Azure's Conditions tab words the choices.
DELEGATE_CONSTRAINED = "constrained"
DELEGATE_ALL_BUT_PRIVILEGED = "allButPrivileged"
DELEGATE_ALL = "all"
DELEGATION_CHOICES = [
    (DELEGATE_ALL_BUT_PRIVILEGED, "Allow user to assign all roles except privileged administrator roles Owner, UAA, "
                                  "RBAC (Recommended)"),
    (DELEGATE_CONSTRAINED, "Allow user to only assign selected roles to selected principals (fewer privileges)"),
    (DELEGATE_ALL, "Allow user to assign all roles (highly privileged)"),
]


class ConditionForm(forms.Form):
    """Azure's Conditions tab: what the holder of Role Based Access Control Administrator or User Access
    Administrator may do with role assignments. ``condition_for(role)`` gives the condition data."""

    delegation = forms.ChoiceField(
        required=False, choices=DELEGATION_CHOICES, initial=DELEGATE_ALL_BUT_PRIVILEGED, widget=forms.RadioSelect,
        label="What user can do",
    )
    condition_roles = forms.ModelMultipleChoiceField(
        queryset=RoleDefinition.objects.all(), required=False, widget=forms.CheckboxSelectMultiple,
        label="Roles the member may assign and remove",
    )
    condition_principal_types = forms.MultipleChoiceField(
        required=False, choices=list(conditions.PRINCIPAL_TYPES.items()), widget=forms.CheckboxSelectMultiple,
        label="To principal types",
        help_text="Select none to allow every type.",
    )

    @classmethod
    def initial_for(cls, data) -> dict:
        """The form's initial values for a stored condition (None: no condition)."""
        condition = conditions.parse_stored(data)
        if condition is None:
            return {"delegation": DELEGATE_ALL}
        if condition.to_data() == conditions.all_but_privileged_administrators():
            return {"delegation": DELEGATE_ALL_BUT_PRIVILEGED}
        if condition.kind == conditions.ALLOW_ROLES:
            return {"delegation": DELEGATE_CONSTRAINED, "condition_roles": list(condition.role_ids),
                    "condition_principal_types": list(condition.principal_types)}
        return {"delegation": ""}  # a condition none of the three choices describes: saving replaces it

    def condition_for(self, role, data) -> dict | None:
        """The condition the choices describe for ``role`` (None for a role that cannot carry one), or None
        with an error added to the form."""
        if role is None or role.name not in roles.DELEGATION_ROLES:
            return None  # the Conditions section is not offered for this role: nothing to keep
        return self.condition_data(data)

    def condition_data(self, data) -> dict | None:
        """The condition the choices describe (None: "all roles", no condition)."""
        choice = data.get("delegation") or DELEGATE_ALL  # not sent (an API-style post): no condition, as in Azure
        if choice == DELEGATE_ALL_BUT_PRIVILEGED:
            return conditions.all_but_privileged_administrators()
        if choice == DELEGATE_CONSTRAINED:
            picked = data.get("condition_roles") or []
            if not picked:
                self.add_error("condition_roles", "Select the roles the member may assign, or choose another option "
                                                  "under “What user can do”.")
                return None
            return conditions.Condition(
                conditions.ALLOW_ROLES, tuple(str(r.pk).lower() for r in picked),
                tuple(data.get("condition_principal_types") or ()),
            ).to_data()
        return None


class RoleAssignmentForm(_MemberPicker, ConditionForm):
    role = forms.ModelChoiceField(
        queryset=RoleDefinition.objects.all(),
        empty_label=None,
        widget=RoleRadioSelect,
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

    field_order = ["role", "member", "ends_at", "description"]

    def clean(self):
        data = super().clean()
        data["condition"] = self.condition_for(data.get("role"), data)
        return data


class CheckAccessForm(_MemberPicker, forms.Form):
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


class AppRegistrationForm(forms.Form):
    display_name = forms.CharField(
        max_length=120, label="Name", help_text="The user-facing display name for this application; it also names its "
        "service principal in Access control (IAM).",
        error_messages={"required": "Enter a name for the application."},
    )


class ClientSecretForm(forms.Form):
    description = forms.CharField(required=False, max_length=100, label="Description")
    expires = forms.ChoiceField(label="Expires", initial="180", choices=())
    end_date = forms.DateField(required=False, label="End (custom)", help_text="Only for Custom: the last day the "
                               "secret works (UTC), at most 24 months away.",
                               widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, choices=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["expires"].choices = choices
