"""The admin site shows security data read-only: every change goes through the services."""

from django.contrib import admin

from security.models import (
    AccessRequest,
    ActivityLogEntry,
    Alert,
    Principal,
    ResourceGuard,
    ResourceGuardProxy,
    RoleAssignment,
    RoleDefinition,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Principal)
class PrincipalAdmin(ReadOnlyAdmin):
    list_display = ("display_name", "kind", "enabled", "resource_id")
    list_filter = ("kind", "enabled")
    search_fields = ("display_name", "id")


@admin.register(RoleDefinition)
class RoleDefinitionAdmin(ReadOnlyAdmin):
    list_display = ("name", "built_in", "id")


@admin.register(RoleAssignment)
class RoleAssignmentAdmin(ReadOnlyAdmin):
    list_display = ("principal", "role", "scope", "ends_at")
    search_fields = ("scope", "principal__display_name")


@admin.register(ActivityLogEntry)
class ActivityLogEntryAdmin(ReadOnlyAdmin):
    list_display = ("sequence", "timestamp", "operation_name", "status", "caller", "scope")
    list_filter = ("status",)
    search_fields = ("principal_name", "caller", "scope")


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = ("raised_at", "name", "severity", "state", "affected_resource_id")


# Multi-user authorization: guards, their links to vaults and access requests change only through
# `security.mua` (a Resource Guard must never be unlinked or approved around its rules).
for _model in (ResourceGuard, ResourceGuardProxy, AccessRequest):
    admin.site.register(_model, ReadOnlyAdmin)
