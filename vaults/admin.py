"""Read-only admin: vault state changes only through `vaults.services` (guarded and logged)."""

from django.contrib import admin

from security.admin import ReadOnlyAdmin
from vaults.models import BackupVault


@admin.register(BackupVault)
class BackupVaultAdmin(ReadOnlyAdmin):
    list_display = ("name", "resource_group", "region", "storage_redundancy", "soft_delete_state",
                    "immutability_state", "created_at")
    list_filter = ("storage_redundancy", "soft_delete_state", "immutability_state", "region")
    search_fields = ("name", "resource_id")

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]
