"""Protection's pages. Each area keeps its own url list; this module only joins them."""

from django.urls import include, path

app_name = "protection"

urlpatterns = [
    path("", include("protection.urls_policies")),
    path("", include("protection.urls_instances")),
    path("", include("protection.urls_jobs")),
    path("", include("protection.urls_restores")),
    path("", include("protection.urls_deletion")),
]
