from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from portal import views


portal_patterns = [
    path("", views.home, name="home"),
    path("search/", views.search, name="search"),
    path("subscriptions/", views.subscription_list, name="subscription_list"),
    path("subscriptions/<int:pk>/", views.subscription_detail, name="subscription_detail"),
    path("resource-groups/", views.resource_group_list, name="resource_group_list"),
    path("resource-groups/create/", views.resource_group_create, name="resource_group_create"),
    path("resource-groups/<int:pk>/", views.resource_group_detail, name="resource_group_detail"),
    path("resource-groups/<int:pk>/delete/", views.resource_group_delete, name="resource_group_delete"),
    path("iam/", views.iam, name="iam"),
    path("iam/add/", views.iam_add, name="iam_add"),
    path("iam/remove/<uuid:assignment_id>/", views.iam_remove, name="iam_remove"),
    path("iam/check/", views.iam_check_access, name="iam_check_access"),
    path("activity-log/", views.activity_log, name="activity_log"),
    path("alerts/", views.alert_list, name="alert_list"),
    path("alerts/<uuid:pk>/state/", views.alert_change_state, name="alert_change_state"),
    path("notifications/", views.notifications, name="notifications"),
    path("notifications/dismiss/", views.notifications_dismiss, name="notifications_dismiss"),
    path("lab/persona/", views.switch_persona, name="switch_persona"),
    path("lab/clock/", views.lab_clock, name="lab_clock"),
    path("lab/workers/check/", views.check_workers, name="check_workers"),
    path("", include("portal.inventory.urls")),
]

urlpatterns = [
    path("", include((portal_patterns, "portal"))),
    path("vaults/", include("vaults.urls")),
    path("backup/", include("protection.urls")),
    path("", include("portal.mua.urls")),
    path("signin/", views.SignInView.as_view(), name="login"),
    path("signout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]
