"""Protection's pages. Each feature package keeps its own url list; this module only joins them."""

from django.urls import include, path

app_name = "protection"

urlpatterns = [
    path("", include("protection.policies.urls")),
    path("", include("protection.instances.urls")),
    path("", include("protection.jobs.urls")),
    path("", include("protection.backups.urls")),
    path("", include("protection.restores.urls")),
    path("", include("protection.deletion.urls")),
    path("", include("protection.tiering.urls")),  # archive tier (issue 21)
]
