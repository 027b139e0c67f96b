"""Protection urls: a backup instance's backup actions, recovery points and jobs."""

from django.urls import path

from protection.backups import views

urlpatterns = [
    path("instances/<uuid:pk>/actions/", views.instance_actions, name="instance_actions"),
    path("instances/<uuid:pk>/backup-now/", views.instance_backup_now, name="instance_backup_now"),
    path("instances/<uuid:pk>/stop-backup/", views.instance_stop_backup, name="instance_stop_backup"),
    path("instances/<uuid:pk>/resume-backup/", views.instance_resume_backup, name="instance_resume_backup"),
    path("instances/<uuid:pk>/recovery-points/", views.instance_recovery_points, name="instance_recovery_points"),
    path("instances/<uuid:pk>/jobs/", views.instance_jobs, name="instance_jobs"),
]
