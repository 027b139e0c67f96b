"""Protection urls: backup jobs, the vault overview tiles, and a backup instance's backup actions."""

from django.urls import path

from protection.views import jobs as views

urlpatterns = [
    path("jobs/", views.job_list, name="job_list"),
    path("jobs/<uuid:pk>/", views.job_detail, name="job_detail"),
    path("jobs/<uuid:pk>/progress/", views.job_progress, name="job_progress"),
    path("jobs/<uuid:pk>/cancel/", views.job_cancel, name="job_cancel"),
    path("vaults/<int:pk>/jobs/", views.vault_jobs, name="vault_jobs"),
    path("vaults/<int:pk>/tiles/jobs/", views.vault_jobs_tile, name="vault_jobs_tile"),
    path("vaults/<int:pk>/tiles/instances/", views.vault_instances_tile, name="vault_instances_tile"),
    path("instances/<uuid:pk>/actions/", views.instance_actions, name="instance_actions"),
    path("instances/<uuid:pk>/backup-now/", views.instance_backup_now, name="instance_backup_now"),
    path("instances/<uuid:pk>/stop-backup/", views.instance_stop_backup, name="instance_stop_backup"),
    path("instances/<uuid:pk>/resume-backup/", views.instance_resume_backup, name="instance_resume_backup"),
    path("instances/<uuid:pk>/recovery-points/", views.instance_recovery_points, name="instance_recovery_points"),
    path("instances/<uuid:pk>/jobs/", views.instance_jobs, name="instance_jobs"),
]
