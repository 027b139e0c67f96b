"""Protection data in the admin site, read-only: backup policies, instances, recovery points and jobs
change only through the services of each feature package (guarded and logged). tests/test_entry_points.py proves it."""

from django.contrib import admin

from protection.models import BackupInstance, BackupPolicy, Job, RecoveryPoint
from security.admin import ReadOnlyAdmin


@admin.register(BackupPolicy)
class BackupPolicyAdmin(ReadOnlyAdmin):
    list_display = ("name", "vault", "datasource_type", "updated_at")
    search_fields = ("name", "resource_id")


@admin.register(BackupInstance)
class BackupInstanceAdmin(ReadOnlyAdmin):
    list_display = ("name", "vault", "datasource_type", "protection_state", "scheduled_purge_at")
    list_filter = ("protection_state", "datasource_type")
    search_fields = ("name", "resource_id", "datasource_resource_id")


@admin.register(RecoveryPoint)
class RecoveryPointAdmin(ReadOnlyAdmin):
    list_display = ("recovery_point_time", "instance", "datastore", "retention_tag", "expiry_time")
    list_filter = ("datastore",)


@admin.register(Job)
class JobAdmin(ReadOnlyAdmin):
    list_display = ("start_time", "operation", "instance_name", "status", "initiated_by_name")
    list_filter = ("operation", "status")
