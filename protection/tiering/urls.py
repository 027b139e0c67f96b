"""Protection urls: the archive tier (Move to archive)."""

from django.urls import path

from protection.tiering import views

urlpatterns = [
    path("recovery-points/<uuid:pk>/move-to-archive/", views.recovery_point_move_to_archive,
         name="recovery_point_move_to_archive"),
]
