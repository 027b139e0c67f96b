"""Protection urls: delete backup data, undelete, and the vault's Alerts blade."""

from django.urls import path

from protection.deletion import views

urlpatterns = [
    path("instances/<uuid:pk>/delete-backup-data/", views.instance_delete_data, name="instance_delete_data"),
    path("instances/<uuid:pk>/undelete/", views.instance_undelete, name="instance_undelete"),
    path("vaults/<int:pk>/alerts/", views.vault_alerts, name="vault_alerts"),
]
