"""Portal data in the admin site, read-only: state changes go through the services."""

from django.contrib import admin
from django.shortcuts import redirect

from portal.models import LabPersona, Operation, Region, ResourceGroup, Subscription
from security.admin import ReadOnlyAdmin

for model in (Region, Subscription, ResourceGroup, Operation, LabPersona):
    admin.site.register(model, ReadOnlyAdmin)


def _password_change(request, extra_context=None):
    """The admin site's Change password is the portal's: Django's admin form checks the current password
    without the sign-in throttle, so an open session could guess it there without a lockout."""
    return redirect("portal:password_change")


admin.site.password_change = _password_change  # read by admin.site.urls (portal.urls), after this module
