"""Protection urls: backup instances, Configure protection, and the vault overview's Backup instances tile."""

from django.urls import path

from protection.instances import views
from protection.instances.wizard import ConfigureProtectionWizard

urlpatterns = [
    path("instances/", views.instance_list, name="instance_list"),
    path("instances/<uuid:pk>/", views.instance_detail, name="instance_detail"),
    path("instances/<uuid:pk>/change-policy/", views.instance_change_policy, name="instance_change_policy"),
    path("vaults/<int:pk>/instances/", views.vault_instances, name="vault_instances"),
    path("vaults/<int:pk>/tiles/instances/", views.vault_instances_tile, name="vault_instances_tile"),
    path("configure/start/", views.configure_start, name="configure_start"),
    path("configure/", ConfigureProtectionWizard.as_view(), name="configure_protection"),
    path("configure/revalidate/", views.configure_revalidate, name="configure_revalidate"),
    path("configure/assign-roles/", views.configure_assign_roles, name="configure_assign_roles"),
]
