"""Protection urls: backup jobs, and the vault overview's Jobs tile."""

from django.urls import path

from protection.jobs import views

urlpatterns = [
    path("jobs/", views.job_list, name="job_list"),
    path("jobs/<uuid:pk>/", views.job_detail, name="job_detail"),
    path("jobs/<uuid:pk>/progress/", views.job_progress, name="job_progress"),
    path("jobs/<uuid:pk>/cancel/", views.job_cancel, name="job_cancel"),
    path("vaults/<int:pk>/jobs/", views.vault_jobs, name="vault_jobs"),
    path("vaults/<int:pk>/tiles/jobs/", views.vault_jobs_tile, name="vault_jobs_tile"),
]
