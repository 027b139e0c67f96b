"""Resource Guards, Approvals and My access requests (namespace ``mua``), included by portal/urls.py."""

from django.urls import path

from portal.mua import views

app_name = "mua"

urlpatterns = [
    path("resource-guards/", views.guard_list, name="guard_list"),
    path("resource-guards/create/", views.GuardCreateWizard.as_view(), name="guard_create"),
    path("resource-guards/<int:pk>/", views.guard_detail, name="guard_detail"),
    path("resource-guards/<int:pk>/properties/", views.guard_operations, name="guard_operations"),
    path("resource-guards/<int:pk>/approvers/", views.guard_approvers, name="guard_approvers"),
    path("resource-guards/<int:pk>/delete/", views.guard_delete, name="guard_delete"),
    path("resource-guards/<int:pk>/request-access/", views.request_access, name="request_access"),
    path("access/approvals/", views.approvals, name="approvals"),
    path("access/my-requests/", views.my_requests, name="my_requests"),
    path("access/my-requests/<uuid:request_id>/cancel/", views.cancel_request, name="cancel_request"),
]
