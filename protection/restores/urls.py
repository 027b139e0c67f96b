"""Protection urls: the Restore wizard (and Home → Recover), Validate / Assign missing roles, and a
recovery point's page (Verify, browse, download a blob, a database's table of contents)."""

from django.urls import path

from protection.restores import views
from protection.restores.wizard import RestoreWizard

urlpatterns = [
    path("restore/start/", views.restore_start, name="restore_start"),
    path("restore/", RestoreWizard.as_view(), name="restore_wizard"),
    path("restore/validate/", views.restore_validate, name="restore_validate"),
    path("restore/assign-roles/", views.restore_assign_roles, name="restore_assign_roles"),
    path("instances/<uuid:pk>/secondary-restore/", views.instance_secondary_restore, name="instance_secondary_restore"),
    path("recovery-points/<uuid:pk>/", views.recovery_point_detail, name="recovery_point_detail"),
    path("recovery-points/<uuid:pk>/verify/", views.recovery_point_verify, name="recovery_point_verify"),
    path("recovery-points/<uuid:pk>/browse/", views.recovery_point_browse, name="recovery_point_browse"),
    path("recovery-points/<uuid:pk>/download/", views.recovery_point_download, name="recovery_point_download"),
    path("recovery-points/<uuid:pk>/databases/<str:database>/", views.recovery_point_toc, name="recovery_point_toc"),
]
