"""Portal data in the admin site, read-only: state changes go through the services."""

from django.contrib import admin

from portal.models import LabPersona, Operation, Region, ResourceGroup, Subscription
from security.admin import ReadOnlyAdmin

for model in (Region, Subscription, ResourceGroup, Operation, LabPersona):
    admin.site.register(model, ReadOnlyAdmin)
