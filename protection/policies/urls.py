"""Protection urls: backup policies (Protection policies, the vault's blade, a policy, the wizard)."""

from django.urls import path

from protection.policies import views
from protection.policies.wizard import PolicyCreateWizard

urlpatterns = [
    path("policies/", views.policy_list, name="policy_list"),
    path("policies/create/", PolicyCreateWizard.as_view(), name="policy_create"),
    path("policies/<int:pk>/", views.policy_detail, name="policy_detail"),
    path("policies/<int:pk>/edit/", views.policy_edit, name="policy_edit"),
    path("policies/<int:pk>/delete/", views.policy_delete, name="policy_delete"),
    path("vaults/<int:pk>/policies/", views.vault_policies, name="vault_policies"),
]
