from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from portal import views
from portal.api import identity
from portal.api.arm import build_api
from portal.views import account, activity, apps, iam, lab, shell, tenancy


portal_patterns = [
    path("", shell.home, name="home"),
    path("search/", shell.search, name="search"),
    path("subscriptions/", tenancy.subscription_list, name="subscription_list"),
    path("subscriptions/<int:pk>/", tenancy.subscription_detail, name="subscription_detail"),
    path("resource-groups/", tenancy.resource_group_list, name="resource_group_list"),
    path("resource-groups/create/", tenancy.resource_group_create, name="resource_group_create"),
    path("resource-groups/<int:pk>/", tenancy.resource_group_detail, name="resource_group_detail"),
    path("resource-groups/<int:pk>/delete/", tenancy.resource_group_delete, name="resource_group_delete"),
    path("iam/", iam.iam, name="iam"),
    path("iam/add/", iam.iam_add, name="iam_add"),
    path("iam/remove/<uuid:assignment_id>/", iam.iam_remove, name="iam_remove"),
    path("iam/condition/<uuid:assignment_id>/", iam.iam_condition, name="iam_condition"),
    path("iam/check/", iam.iam_check_access, name="iam_check_access"),
    path("activity-log/", activity.activity_log, name="activity_log"),
    path("activity-log/verify/", activity.activity_log_verify, name="activity_log_verify"),
    path("alerts/", activity.alert_list, name="alert_list"),
    path("alerts/<uuid:pk>/state/", activity.alert_change_state, name="alert_change_state"),
    path("notifications/", activity.notifications, name="notifications"),
    path("notifications/dismiss/", activity.notifications_dismiss, name="notifications_dismiss"),
    path("account/password/", account.PasswordChangeView.as_view(), name="password_change"),
    path("signin-lockouts/", account.signin_lockouts, name="signin_lockouts"),
    path("signin-lockouts/unlock/", account.signin_unlock, name="signin_unlock"),
    path("app-registrations/", apps.app_list, name="app_list"),
    path("app-registrations/new/", apps.app_create, name="app_create"),
    path("app-registrations/<uuid:pk>/", apps.app_detail, name="app_detail"),
    path("app-registrations/<uuid:pk>/secrets/", apps.app_secret_add, name="app_secret_add"),
    path("app-registrations/<uuid:pk>/secrets/<uuid:secret_id>/delete/", apps.app_secret_remove, name="app_secret_remove"),
    path("app-registrations/<uuid:pk>/delete/", apps.app_delete, name="app_delete"),
    path("lab/persona/", lab.switch_persona, name="switch_persona"),
    path("lab/clock/", lab.lab_clock, name="lab_clock"),
    path("lab/workers/check/", lab.check_workers, name="check_workers"),
    path("", include("portal.inventory.urls")),
]

arm_api = build_api()
handler404 = "portal.api.arm.not_found_handler"

# Entra ID's endpoints for the client credentials grant (azure-identity's ClientSecretCredential), by tenant.
identity_patterns = [
    path("<str:tenant>/v2.0/.well-known/openid-configuration", identity.openid_configuration, name="openid_configuration"),
    path("<str:tenant>/.well-known/openid-configuration", identity.openid_configuration, name="openid_configuration_v1"),
    path("<str:tenant>/discovery/v2.0/keys", identity.keys, name="keys"),
    path("<str:tenant>/oauth2/v2.0/token", identity.token, name="token"),
]

urlpatterns = [
    path("", include((identity_patterns, "identity"))),
    path("", arm_api.urls),
    path("", include((portal_patterns, "portal"))),
    path("vaults/", include("vaults.urls")),
    path("backup/", include("protection.urls")),
    path("", include("portal.mua.urls")),
    path("labs/", include("labs.urls")),
    path("signin/", views.SignInView.as_view(), name="login"),
    path("signout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]
