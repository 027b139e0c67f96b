from django.urls import path

from vaults import views
from vaults.networking import views as networking
from vaults.networking.wizard import PrivateEndpointCreateWizard
from vaults.views_mua import vault_mua
from vaults.wizards import VaultCreateWizard

app_name = "vaults"

urlpatterns = [
    path("", views.vault_list, name="vault_list"),
    path("create/", VaultCreateWizard.as_view(), name="vault_create"),
    path("create/check-name/", views.check_name, name="check_name"),
    path("create/resource-groups/", views.resource_group_options, name="resource_group_options"),
    path("<int:pk>/", views.vault_detail, name="vault_detail"),
    path("<int:pk>/properties/", views.vault_properties, name="vault_properties"),
    path("<int:pk>/properties/soft-delete/", views.vault_soft_delete, name="vault_soft_delete"),
    path("<int:pk>/properties/immutability/", views.vault_immutability, name="vault_immutability"),
    path("<int:pk>/properties/cross-region-restore/", views.vault_cross_region_restore, name="vault_cross_region_restore"),
    path("<int:pk>/properties/cross-subscription-restore/", views.vault_cross_subscription_restore,
         name="vault_cross_subscription_restore"),
    path("<int:pk>/properties/storage-redundancy/", views.vault_storage_redundancy, name="vault_storage_redundancy"),
    path("<int:pk>/properties/mua/", vault_mua, name="vault_mua"),
    path("<int:pk>/properties/storage-location/", views.vault_storage_location, name="vault_storage_location"),
    path("<int:pk>/identity/", views.vault_identity, name="vault_identity"),
    path("<int:pk>/delete/", views.vault_delete, name="vault_delete"),
    path("<int:pk>/networking/", networking.vault_networking, name="vault_networking"),
    path("<int:pk>/networking/private-endpoints/create/", PrivateEndpointCreateWizard.as_view(),
         name="private_endpoint_create"),
    path("<int:pk>/networking/connections/<int:connection_pk>/<str:action>/", networking.connection_action,
         name="private_endpoint_connection_action"),
]
