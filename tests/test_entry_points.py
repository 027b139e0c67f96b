"""Every path is guarded (issue 10, DESIGN §7): no entry point goes around a guard.

The test enumerates, programmatically, every URL pattern (walking the resolver), every management
command of our apps, every Celery task of our apps and every admin registration, and requires each to be
classified in the literal tables below — read-only, or the guarded operations (Azure action strings) it
can reach. An unclassified entry point fails the test, and so does a classified one that no longer exists.

Then, with a temporary guard that refuses every operation except reads (`tests._entry_world.lockdown`),
each entry point is driven with real input against a world built through the services: a view by the
test client (GET for its form, then POST with the form's fields as a browser sends them, through every
tab of a wizard), a command by `call_command`, a task by calling it, an admin registration by POSTing its
add, change and delete pages. For each one:

* nothing changed: every row of every guarded model and every data file is as before;
* an entry point that reaches guarded operations *was refused* at one of them (it really got there with
  valid input), and every operation it was refused at is in its row of the table (the table is exact);
* a read-only one was refused nothing.
"""

from __future__ import annotations

import datetime as dt
import os

import pytest
from django.core.management import call_command, get_commands
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from tests._entry_world import ENTRY_LAB, ENTRY_STEP, add_archive_work, add_class, build_world, difference, entry_lab_registered, fingerprint
from tests._entry_world import form_data, lockdown

pytestmark = pytest.mark.django_db

OUR_APPS = ("portal", "security", "vaults", "protection", "labs")

DP = "Microsoft.DataProtection"
BV = f"{DP}/backupVaults"
STORAGE = "Microsoft.Storage/storageAccounts"
ESAN = "Microsoft.ElasticSan/elasticSans"
PG = "Microsoft.DBforPostgreSQL/flexibleServers"
VNET = "Microsoft.Network/virtualNetworks"
SUBNET_JOIN = f"{VNET}/subnets/join/action"
DNS_ZONE = "Microsoft.Network/privateDnsZones"
PRIVATE_ENDPOINT = "Microsoft.Network/privateEndpoints"
RG_WRITE = "Microsoft.Resources/subscriptions/resourceGroups/write"
RG_DELETE = "Microsoft.Resources/subscriptions/resourceGroups/delete"
ROLE_WRITE = "Microsoft.Authorization/roleAssignments/write"
ROLE_DELETE = "Microsoft.Authorization/roleAssignments/delete"
LAB = "Strongroom.Lab"

READ = "read-only"  # changes nothing (reads, previews, downloads)
SESSION = "session"  # changes only the caller's own session or notification list, no resource
ACCOUNTS = "accounts"  # Django sign-in accounts and groups (superusers only): no Strongroom resource or right
SCHEDULES = "schedules"  # creates job rows only; the job's work is guarded when run_job runs it
BOOTSTRAP = "bootstrap"  # the installation's first Owner (no one can authorize it); refused once an Owner exists
EXPIRY = "expiry"  # records the end of MUA grants whose time is up (they already count as absent): no right is added
OWN_PASSWORD = "own password"  # the signed-in person's own password (anyone may; logged): no Strongroom resource or right
TLS_FILES = "tls files"  # writes the local CA and the API's certificate under var/tls: no Strongroom resource or right
LOG_CHECK = "log check"  # checks the activity log's chain: stores the outcome, raises an alert on a break (bookkeeping)

# --- the tables ----------------------------------------------------------------------------------------

POINT_DATA = {f"{STORAGE}/blobServices/containers/blobs/read", f"{STORAGE}/listKeys/action",
              f"{BV}/backupInstances/restore/action"}

URLS: dict[str, object] = {
    # portal shell
    "portal:home": READ,
    "portal:search": READ,
    "portal:subscription_list": READ,
    "portal:subscription_detail": READ,
    "portal:resource_group_list": READ,
    "portal:resource_group_create": {RG_WRITE},
    "portal:resource_group_detail": READ,
    "portal:resource_group_delete": {RG_DELETE},
    "portal:iam": READ,
    "portal:iam_add": {ROLE_WRITE},
    "portal:iam_remove": {ROLE_DELETE},
    "portal:iam_condition": {ROLE_WRITE},  # changing an assignment's condition writes the assignment
    "portal:iam_check_access": READ,
    "portal:activity_log": READ,
    "portal:activity_log_verify": {"Strongroom.ActivityLog/verify/action"},
    "portal:alert_list": READ,
    "portal:alert_change_state": {"Microsoft.AlertsManagement/alerts/changestate/action"},
    "portal:notifications": READ,
    "portal:notifications_dismiss": SESSION,
    "portal:switch_persona": {f"{LAB}/personas/assume/action"},  # logged; the session keeps the persona only then
    "portal:lab_clock": {f"{LAB}/clock/write"},
    "portal:check_workers": {f"{LAB}/workers/check/action"},
    "login": SESSION,  # failed sign-ins are counted (axes) and logged; a lockout is lifted by signin_unlock
    "logout": SESSION,
    "portal:password_change": OWN_PASSWORD,
    "portal:signin_lockouts": READ,
    "portal:signin_unlock": {"Microsoft.Authorization/signInLockouts/delete"},
    # app registrations (security.applications) and the token endpoint of their service principals
    "portal:app_list": READ,
    "portal:app_create": {"Microsoft.Directory/applications/create"},
    "portal:app_detail": READ,
    "portal:app_secret_add": {"Microsoft.Directory/applications/credentials/update"},
    "portal:app_secret_remove": {"Microsoft.Directory/applications/credentials/update"},
    "portal:app_delete": {"Microsoft.Directory/applications/delete"},
    "identity:openid_configuration": READ,
    "identity:openid_configuration_v1": READ,
    "identity:keys": READ,
    # a client's secret checked: failures counted (axes) and logged, a token issued (no state) when it is good
    "identity:token": SESSION,
    # inventory
    "portal:storage_account_list": READ,
    "portal:storage_account_create": {f"{STORAGE}/write"},
    "portal:storage_account_detail": READ,
    "portal:storage_account_containers": READ,
    "portal:container_create": {f"{STORAGE}/blobServices/containers/write"},
    "portal:storage_account_delete": {f"{STORAGE}/delete"},
    "portal:container_detail": READ,
    "portal:container_upload": {f"{STORAGE}/listKeys/action"},  # blob writes are authorized by the account key
    "portal:blob_download": READ,
    "portal:blob_delete": {f"{STORAGE}/listKeys/action"},
    "portal:container_delete": {f"{STORAGE}/blobServices/containers/delete"},
    "portal:elastic_san_list": READ,
    "portal:elastic_san_create": {f"{ESAN}/write"},
    "portal:elastic_san_detail": READ,
    "portal:elastic_san_volume_groups": READ,
    "portal:volume_group_create": {f"{ESAN}/volumeGroups/write"},
    "portal:elastic_san_volumes": READ,
    "portal:elastic_san_delete": {f"{ESAN}/delete"},
    "portal:volume_group_detail": READ,
    "portal:volume_create": {f"{ESAN}/volumeGroups/volumes/write"},
    "portal:volume_group_delete": {f"{ESAN}/volumeGroups/delete"},
    "portal:volume_detail": READ,
    "portal:volume_write_sample_data": {f"{ESAN}/volumeGroups/volumes/write"},
    "portal:volume_compute_checksum": {f"{ESAN}/volumeGroups/volumes/write"},  # a job over the whole volume: no read-only role
    "portal:volume_delete": {f"{ESAN}/volumeGroups/volumes/delete"},
    "portal:snapshot_detail": READ,
    "portal:snapshot_delete": {"Microsoft.Compute/snapshots/delete"},
    "portal:disk_list": READ,
    "portal:disk_create": {"Microsoft.Compute/disks/write"},
    "portal:disk_detail": READ,
    "portal:disk_write_sample_data": {"Microsoft.Compute/disks/write"},
    "portal:disk_delete": {"Microsoft.Compute/disks/delete"},
    "portal:postgres_server_list": READ,
    "portal:postgres_server_create": {f"{PG}/write"},
    "portal:postgres_server_detail": READ,
    "portal:postgres_server_databases": READ,
    "portal:postgres_database_create": {f"{PG}/databases/write"},
    "portal:postgres_server_refresh": {f"{PG}/write"},  # logs in with the server's admin login, records what it found
    "portal:postgres_server_delete": {f"{PG}/delete"},
    "portal:postgres_database_detail": READ,
    "portal:postgres_database_delete": {f"{PG}/databases/delete"},
    # a datasource's network: its write, and joining the subnet it is put in
    "portal:storage_account_network": {f"{STORAGE}/write", SUBNET_JOIN},
    "portal:elastic_san_network": {f"{ESAN}/write", SUBNET_JOIN},
    "portal:postgres_server_network": {f"{PG}/write", SUBNET_JOIN},
    # virtual networks and private DNS zones
    "portal:vnet_list": READ,
    "portal:vnet_create": {f"{VNET}/write"},
    "portal:vnet_detail": READ,
    "portal:subnet_create": {f"{VNET}/subnets/write"},
    "portal:vnet_delete": {f"{VNET}/delete"},
    "portal:subnet_detail": READ,
    "portal:subnet_delete": {f"{VNET}/subnets/delete"},
    # private endpoints (created from a vault's Networking blade; here they are listed, shown and deleted)
    "portal:private_endpoint_list": READ,
    "portal:private_endpoint_detail": READ,
    "portal:private_endpoint_delete": {f"{PRIVATE_ENDPOINT}/delete"},
    "portal:dns_zone_list": READ,
    "portal:dns_zone_create": {f"{DNS_ZONE}/write"},
    "portal:dns_zone_detail": READ,
    "portal:dns_record_create": {f"{DNS_ZONE}/A/write"},
    "portal:dns_link_create": {f"{DNS_ZONE}/virtualNetworkLinks/write", f"{VNET}/join/action"},
    "portal:dns_zone_delete": {f"{DNS_ZONE}/delete"},
    "portal:dns_record_detail": READ,  # leads to its zone's page
    "portal:dns_record_delete": {f"{DNS_ZONE}/A/delete"},
    "portal:dns_link_detail": READ,
    "portal:dns_link_delete": {f"{DNS_ZONE}/virtualNetworkLinks/delete"},
    # vaults
    "vaults:vault_list": READ,
    "vaults:vault_create": {f"{BV}/write", f"{DP}/locations/checkNameAvailability/action"},
    "vaults:check_name": {f"{DP}/locations/checkNameAvailability/action"},
    "vaults:resource_group_options": READ,
    "vaults:vault_detail": READ,
    "vaults:vault_properties": READ,
    "vaults:vault_soft_delete": {f"{BV}/write"},
    "vaults:vault_immutability": {f"{BV}/write"},
    "vaults:vault_cross_region_restore": {f"{BV}/write"},
    "vaults:vault_cross_subscription_restore": {f"{BV}/write"},
    "vaults:vault_storage_redundancy": {f"{BV}/write"},
    "vaults:vault_storage_location": {f"{BV}/write"},  # issue 22: S3 per vault
    "vaults:vault_mua": {f"{BV}/backupResourceGuardProxies/write", f"{BV}/backupResourceGuardProxies/delete"},
    "vaults:vault_identity": {f"{BV}/write"},
    "vaults:vault_delete": {f"{BV}/delete"},
    "vaults:vault_networking": {f"{BV}/publicNetworkAccess/write"},  # the Public access tab's Apply
    # Create a private endpoint: joining the subnet is asked first, then the endpoint's write in its group.
    "vaults:private_endpoint_create": {"Microsoft.Network/virtualNetworks/subnets/join/action"},
    # Approve (driven here) and Reject ask the vault's approval action; Remove the connection's delete.
    "vaults:private_endpoint_connection_action": {f"{BV}/privateEndpointConnectionsApproval/action"},
    # protection
    "protection:policy_list": READ,
    "protection:policy_create": {f"{BV}/backupPolicies/write"},
    "protection:policy_detail": READ,
    "protection:policy_edit": {f"{BV}/backupPolicies/write"},
    "protection:policy_delete": {f"{BV}/backupPolicies/delete"},
    "protection:vault_policies": READ,
    "protection:instance_list": READ,
    "protection:instance_detail": READ,
    "protection:instance_change_policy": {f"{BV}/backupInstances/write"},
    "protection:vault_instances": READ,
    "protection:configure_start": READ,
    "protection:configure_protection": {f"{BV}/backupInstances/write"},
    "protection:configure_revalidate": READ,  # re-checks backup readiness (RBAC reads), changes nothing
    "protection:configure_assign_roles": {ROLE_WRITE},
    "protection:job_list": READ,
    "protection:job_detail": READ,
    "protection:job_progress": READ,
    "protection:job_cancel": {f"{BV}/backupJobs/cancel/action"},
    "protection:vault_jobs": READ,
    "protection:vault_jobs_tile": READ,
    "protection:vault_instances_tile": READ,
    "protection:instance_actions": READ,
    "protection:instance_secondary_restore": READ,  # the command bar's Restore to secondary region (htmx)
    "protection:instance_backup_now": {f"{BV}/backupInstances/backup/action"},
    "protection:instance_stop_backup": {f"{BV}/backupInstances/stopProtection/action",
                                        f"{BV}/backupInstances/suspendBackups/action"},
    "protection:instance_resume_backup": {f"{BV}/backupInstances/resumeProtection/action",
                                          f"{BV}/backupInstances/resumeBackups/action"},
    "protection:instance_recovery_points": READ,
    "protection:instance_jobs": READ,
    "protection:instance_delete_data": {f"{BV}/backupInstances/delete"},
    "protection:instance_undelete": {f"{BV}/deletedBackupInstances/undelete/action"},
    "protection:vault_alerts": READ,
    "protection:restore_start": READ,
    "protection:restore_wizard": {f"{BV}/backupInstances/restore/action", f"{BV}/backupInstances/validateRestore/action"},
    "protection:restore_validate": {f"{BV}/backupInstances/validateRestore/action"},
    "protection:restore_assign_roles": {ROLE_WRITE, f"{BV}/backupInstances/validateRestore/action"},
    "protection:recovery_point_detail": READ,
    "protection:recovery_point_verify": {f"{BV}/backupInstances/validateRestore/action"},
    # archive tier (issue 21)
    "protection:recovery_point_move_to_archive": {f"{BV}/backupInstances/recoveryPoints/move/action"},
    # Data access (protection/restores/access.py): the live blob read (data action, or the account key) or
    # the restore permission; a download needs both.
    "protection:recovery_point_browse": POINT_DATA,
    "protection:recovery_point_download": POINT_DATA,
    "protection:recovery_point_toc": READ,  # the world's point holds containers, not databases: 404 before any check
    # MUA
    "mua:guard_list": READ,
    "mua:guard_create": {f"{DP}/resourceGuards/write"},
    "mua:guard_detail": READ,
    "mua:guard_operations": {f"{DP}/resourceGuards/write"},
    "mua:guard_approvers": {f"{DP}/resourceGuards/write"},
    "mua:guard_delete": {f"{DP}/resourceGuards/delete"},
    "mua:request_access": {"Microsoft.Authorization/roleAssignmentScheduleRequests/write"},
    "mua:approvals": {"Microsoft.Authorization/roleAssignmentApprovals/approve/action",
                      "Microsoft.Authorization/roleAssignmentApprovals/reject/action"},
    "mua:my_requests": READ,
    "mua:cancel_request": {"Microsoft.Authorization/roleAssignmentScheduleRequests/cancel/action"},
    # training labs: a trainee's own (Lab Trainee) and an instructor's on a trainee's run (Lab Instructor)
    "labs:lab_list": READ,
    "labs:lab_page": READ,
    "labs:run_page": READ,
    "labs:start": {f"{LAB}/labs/start/action"},
    "labs:check": {f"{LAB}/labs/check/action"},  # asks a worker to run the checks
    "labs:hint": {f"{LAB}/labs/check/action"},
    "labs:reset": {f"{LAB}/sandboxes/reset/action"},
    "labs:solve": {f"{LAB}/trainees/solve/action"},
    "labs:reset_for_trainee": {f"{LAB}/trainees/reset/action"},
    # self-study MUA: the trainee decides their own request as their sandbox's security admin (role-played)
    "labs:role_play": {f"{LAB}/sandboxes/securityAdmin/action"},
    # classes: a Lab Instructor's (the pages ask for Strongroom.Lab/classes/read; 404 without it)
    "labs:class_list": READ,
    "labs:class_create": {f"{LAB}/classes/write"},  # answered with the sign-in sheet
    "labs:class_page": READ,
    "labs:class_export": READ,
    "labs:class_reset_seat": {f"{LAB}/trainees/reset/action"},  # the seat and its partner: a pair resets together
    "labs:class_reset_pair": {f"{LAB}/trainees/reset/action"},
    "labs:class_reset": {f"{LAB}/trainees/reset/action"},
    "labs:class_close": {f"{LAB}/classes/close/action"},
    "labs:class_clock": {f"{LAB}/clock/write"},  # after naming every open class it moves
}

# Admin: every registration of a Strongroom model is read-only (add, change and delete refused by the
# admin itself); Django's own accounts are ACCOUNTS. Admin urls are named per registration below.
ADMIN_REGISTRATIONS: dict[str, str] = {
    "auth.Group": ACCOUNTS,
    "auth.User": ACCOUNTS,
    "security.Principal": READ,
    "security.RoleDefinition": READ,
    "security.RoleAssignment": READ,
    "security.ActivityLogEntry": READ,
    "security.Alert": READ,
    "security.ResourceGuard": READ,
    "security.ResourceGuardProxy": READ,
    "security.AccessRequest": READ,
    "portal.Region": READ,
    "portal.Subscription": READ,
    "portal.ResourceGroup": READ,
    "portal.Operation": READ,
    "portal.LabPersona": READ,
    "vaults.BackupVault": READ,
    "protection.BackupPolicy": READ,
    "protection.BackupInstance": READ,
    "protection.RecoveryPoint": READ,
    "protection.Job": READ,
}
ADMIN_SITE_URLS = {  # the admin site's own pages: index, login, logout, password, jsi18n, ...
    "admin:index": READ, "admin:login": SESSION, "admin:logout": SESSION, "admin:password_change": ACCOUNTS,
    "admin:password_change_done": READ, "admin:autocomplete": READ, "admin:jsi18n": READ,
    "admin:view_on_site": READ, "admin:app_list": READ, "admin:catch_all": READ,
}

COMMANDS: dict[str, object] = {
    # A production installation's first Owner: the one bootstrap write, refused (nothing made) once an Owner is.
    "create_owner": BOOTSTRAP,
    # Walks the activity log's chain and reports; --record stores the outcome as the hourly task does.
    "verify_activity_log": READ,
    # The demo lab, through every app's services as the trainer.
    "seed_lab": {RG_WRITE, ROLE_WRITE, f"{STORAGE}/write", f"{BV}/write", f"{DP}/resourceGuards/write",
                 "Microsoft.Resources/subscriptions/write", "Microsoft.Subscription/aliases/write",
                 f"{VNET}/write", f"{VNET}/subnets/write", SUBNET_JOIN, f"{ESAN}/write", f"{PG}/write"},
    # Each virtual network's DNS resolver: answers queries from the private DNS zones, changes nothing.
    "dns_responder": READ,
    # The local CA and the API's TLS certificate: files under var/tls, no Strongroom resource or right.
    "tls_certificate": TLS_FILES,
}

TASKS: dict[str, object] = {
    "protection.tasks.run_job": {  # whatever the job's handler does, as the system or the initiator
        f"{BV}/backupInstances/backup/action", f"{BV}/backupInstances/recoveryPoints/delete",
        f"{BV}/deletedBackupInstances/purge/action", f"{BV}/deletedBackupInstances/write", f"{BV}/backupInstances/write",
    },
    "protection.tasks.reconcile_jobs": READ,  # job bookkeeping only (re-sends or fails lost jobs)
    "protection.tasks.dispatch_backups": {f"{BV}/backupInstances/backup/action"},
    # Creates Retention jobs (rows only; run_job does the guarded work), then the archive tier's settle
    # (protection.restores.rehydration.settle): the policies' tiering moves and the end of rehydrated copies
    # (move/action, as the system principal) and the restores that waited on a rehydration (restore/action, as
    # the person who asked). Marking a rehydration COMPLETED once its delay passed is bookkeeping on the clock,
    # as recording an expiry is (the lab clock's settler runs both).
    "protection.tasks.start_retention": {f"{BV}/backupInstances/recoveryPoints/move/action",
                                         f"{BV}/backupInstances/restore/action"},
    # Create Purge jobs (and raise Upcoming Purge): job rows only; run_job does the guarded work.
    "protection.tasks.start_purges": SCHEDULES,
    "protection.tasks.start_verifies": {f"{BV}/backupInstances/validateRestore/action"},
    "security.tasks.close_expired_grants": EXPIRY,
    "security.tasks.verify_activity_log": LOG_CHECK,
    "portal.tasks.answer_worker_check": READ,  # completes the worker-check notification
    "portal.inventory.run_volume_job": {f"{ESAN}/volumeGroups/volumes/write"},
    # A lab's checks read real state; the outcome they store for the lab page is bookkeeping.
    "labs.tasks.check_run": READ,
    # A retired sandbox is taken down through the services as the sandbox provisioner, in a person's order:
    # lower the vaults' protection where it may be lowered, delete backup data, policies, vaults, Resource
    # Guards, then what the resource groups hold (private endpoints before DNS zones and VNets), then the groups
    # (previews ask the same operations).
    "labs.tasks.take_down_retired": {
        f"{BV}/write", f"{BV}/backupInstances/delete", f"{BV}/backupPolicies/delete", f"{BV}/delete",
        f"{DP}/resourceGuards/delete", "Microsoft.Compute/snapshots/delete", f"{STORAGE}/delete",
        f"{ESAN}/volumeGroups/volumes/delete", f"{ESAN}/volumeGroups/delete", f"{ESAN}/delete",
        f"{PG}/databases/delete", f"{PG}/delete", f"{PRIVATE_ENDPOINT}/delete", f"{DNS_ZONE}/delete",
        f"{VNET}/delete", RG_DELETE,
    },
}


@pytest.fixture(autouse=True)
def _entry_lab():
    """The world's training lab is offered during each test; its sandboxes leave nothing on the cluster."""
    with entry_lab_registered():
        yield


# --- enumeration ---------------------------------------------------------------------------------------


def url_patterns():
    """(key, route, pattern) for every URL pattern; key = "namespace:name", or the admin's catch-all."""
    out = []

    def walk(patterns, prefix="", namespace=""):
        for p in patterns:
            if isinstance(p, URLResolver):
                ns = f"{namespace}:{p.namespace}".strip(":") if p.namespace else namespace
                walk(p.url_patterns, prefix + str(p.pattern), ns)
            elif isinstance(p, URLPattern):
                route = prefix + str(p.pattern)
                if p.name:
                    key = f"{namespace}:{p.name}" if namespace else p.name
                elif namespace == "admin" and "(?P<url>" in route:
                    key = "admin:catch_all"
                else:  # the admin's "<model>/<id>/" redirects to the change page
                    key = f"{namespace}:redirect:{route}"
                out.append((key, route, p))

    walk(get_resolver().url_patterns)
    # The API's routes (JSON, several methods per path) have their own proof: tests/api/test_api_entry_points.py.
    return [row for row in out if not row[0].startswith("arm:")]


def admin_model_of(key: str) -> str | None:
    """"admin:security_alert_change" -> "security.Alert" (None for the site's own urls)."""
    from django.contrib import admin

    for model in admin.site._registry:
        prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}_"
        if key.startswith(prefix) or key.startswith("admin:redirect:") and f"{model._meta.app_label}/{model._meta.model_name}/" in key:
            return model._meta.label
    return None


def our_commands() -> list[str]:
    return sorted(name for name, app in get_commands().items() if app in OUR_APPS or app.startswith("portal"))


def our_tasks() -> list[str]:
    from portal.celery import app

    app.loader.import_default_modules()
    return sorted(name for name in app.tasks if name.split(".")[0] in OUR_APPS)


def test_every_entry_point_is_classified():
    """GIVEN the tables WHEN the resolver, the commands, the tasks and the admin are enumerated THEN every
    entry point has a row, and every row names an entry point that exists."""
    from django.contrib import admin

    keys = {key for key, _route, _p in url_patterns()}
    admin_keys = {k for k in keys if k.startswith("admin:")}
    site_keys = {k for k in admin_keys if admin_model_of(k) is None}
    unclassified = sorted(k for k in keys - admin_keys if k not in URLS)
    unclassified += sorted(k for k in site_keys if k not in ADMIN_SITE_URLS)
    registered = {m._meta.label for m in admin.site._registry}
    unclassified += sorted(f"admin registration {m}" for m in registered - set(ADMIN_REGISTRATIONS))
    unclassified += sorted(f"command {c}" for c in our_commands() if c not in COMMANDS)
    unclassified += sorted(f"task {t}" for t in our_tasks() if t not in TASKS)
    assert not unclassified, "Classify these entry points in tests/test_entry_points.py: " + ", ".join(unclassified)
    stale = sorted(set(URLS) - keys) + sorted(set(ADMIN_SITE_URLS) - site_keys)
    stale += sorted(set(ADMIN_REGISTRATIONS) - registered)
    stale += sorted(set(COMMANDS) - set(our_commands())) + sorted(set(TASKS) - set(our_tasks()))
    assert not stale, "These rows name entry points that no longer exist: " + ", ".join(stale)
    assert len(keys) > 150 and our_tasks() and our_commands()


# --- driving the views ---------------------------------------------------------------------------------


def url_args(key: str, w) -> list:
    """The arguments of ``key``'s pattern in the world."""
    lab = w.lab
    name = key.split(":")[-1]
    if key.startswith("labs:class_"):
        slug = w.lab_class.slug
        return {"class_list": [], "class_create": [], "class_reset_seat": [slug, 1],
                "class_reset_pair": [slug, 1]}.get(name, [slug])
    if key.startswith("labs:"):
        return {"lab_list": [], "run_page": [w.lab_run.pk], "solve": [w.lab_run.pk, ENTRY_STEP],
                "reset_for_trainee": [w.lab_run.pk], "hint": [ENTRY_LAB, ENTRY_STEP]}.get(name, [ENTRY_LAB])
    by_name = {
        "subscription_detail": [lab.lab_subscription.pk],
        "resource_group_detail": [w.empty_group.pk], "resource_group_delete": [w.empty_group.pk],
        "iam_remove": [w.assignment.pk], "iam_condition": [w.assignment.pk], "alert_change_state": [w.alert.pk],
        "storage_account_detail": [w.account.pk], "storage_account_containers": [w.account.pk],
        "container_create": [w.account.pk], "storage_account_delete": [w.account.pk],
        "container_detail": [w.blob_container.pk], "container_upload": [w.blob_container.pk],
        "blob_download": [w.blob_container.pk], "blob_delete": [w.blob_container.pk],
        "container_delete": [w.blob_container.pk],
        "elastic_san_detail": [w.san.pk], "elastic_san_volume_groups": [w.san.pk], "volume_group_create": [w.san.pk],
        "elastic_san_volumes": [w.san.pk], "elastic_san_delete": [w.san.pk],
        "volume_group_detail": [w.volume_group.pk], "volume_create": [w.volume_group.pk],
        "volume_group_delete": [w.volume_group.pk],
        "volume_detail": [w.volume.pk], "volume_write_sample_data": [w.volume.pk],
        "volume_compute_checksum": [w.volume.pk], "volume_delete": [w.volume.pk],
        "snapshot_detail": [w.snapshot.pk],
        "snapshot_delete": [w.snapshot.pk],
        "disk_detail": [w.disk.pk], "disk_write_sample_data": [w.disk.pk], "disk_delete": [w.disk.pk],
        "postgres_server_detail": [w.server.pk], "postgres_server_databases": [w.server.pk],
        "postgres_database_create": [w.server.pk], "postgres_server_refresh": [w.server.pk],
        "postgres_server_delete": [w.server.pk],
        "postgres_database_detail": [w.database.pk], "postgres_database_delete": [w.database.pk],
        "policy_detail": [w.adls_policy.pk], "policy_edit": [w.adls_policy.pk], "policy_delete": [w.adls_policy.pk],
        "instance_undelete": [w.soft_deleted.pk],
        "job_detail": [w.queued_job.pk], "job_progress": [w.queued_job.pk], "job_cancel": [w.queued_job.pk],
        "recovery_point_toc": [w.point.pk, "documents"],
        "guard_detail": [w.guard.pk], "guard_operations": [w.guard.pk], "guard_approvers": [w.guard.pk],
        "guard_delete": [w.guard.pk], "request_access": [w.guard.pk], "cancel_request": [w.pending_request.pk],
        "private_endpoint_connection_action": [w.vault.pk, w.pe_connection.pk, "approve"],
        "storage_account_network": [w.account.pk], "elastic_san_network": [w.san.pk],
        "postgres_server_network": [w.server.pk],
        "vnet_detail": [w.vnet.pk], "subnet_create": [w.vnet.pk], "vnet_delete": [w.vnet.pk],
        "subnet_detail": [w.subnet.pk], "subnet_delete": [w.subnet.pk],
        "dns_zone_detail": [w.dns_zone.pk], "dns_record_create": [w.dns_zone.pk], "dns_link_create": [w.dns_zone.pk],
        "dns_zone_delete": [w.dns_zone.pk], "dns_record_detail": [w.dns_record.pk],
        "dns_record_delete": [w.dns_record.pk], "dns_link_detail": [w.dns_link.pk], "dns_link_delete": [w.dns_link.pk],
        "private_endpoint_detail": [w.pe_connection.private_endpoint_id],
        "private_endpoint_delete": [w.pe_connection.private_endpoint_id],
        "app_detail": [w.app.pk], "app_secret_add": [w.app.pk], "app_secret_remove": [w.app.pk, w.app_secret.pk],
        "app_delete": [w.app.pk],
    }
    if key.startswith("identity:"):
        from portal.api import tokens

        return [tokens.tenant_id()]
    if name in by_name:
        return by_name[name]
    vault_pages = {"vault_detail", "vault_properties", "vault_soft_delete", "vault_immutability",
                   "vault_cross_region_restore", "vault_cross_subscription_restore", "vault_storage_redundancy",
                   "vault_mua", "vault_identity", "vault_delete", "vault_policies", "vault_instances", "vault_jobs",
                   "vault_jobs_tile", "vault_instances_tile", "vault_alerts", "vault_networking",
                   "private_endpoint_create"}
    vault_pages |= {"vault_storage_location"}  # issue 22: S3 per vault
    if name in vault_pages:
        return [w.vault.pk]
    if name.startswith("instance_") and name != "instance_list":
        return [w.instance.pk]
    if name.startswith("recovery_point_"):
        return [w.point.pk]
    return []


HX = {"HTTP_HX_REQUEST": "true"}
WIZARDS = {"vaults:vault_create", "vaults:private_endpoint_create", "protection:policy_create", "protection:configure_protection",
           "protection:restore_wizard", "mua:guard_create"}
# Who clicks (default: the trainer, Owner and Lab Instructor at the root, so that only the lockdown refuses).
ACTORS = {"mua:approvals": "security-admin", "mua:cancel_request": "backup-admin", "mua:request_access": "backup-admin",
          **{f"labs:{name}": "trainee" for name in ("lab_page", "start", "check", "hint", "reset", "role_play")}}
# htmx helpers that post a wizard's form from one of its tabs: (wizard, its start query, the tab).
WIZARD_HELPERS = {
    "protection:configure_revalidate": ("protection:configure_protection", "datasources"),
    "protection:configure_assign_roles": ("protection:configure_protection", "datasources"),
    "protection:restore_validate": ("protection:restore_wizard", "parameters"),
    "protection:restore_assign_roles": ("protection:restore_wizard", "parameters"),
}


def wizard_query(key: str, w) -> str:
    """The query string an entry point is opened with (a wizard's start, a page's scope)."""
    return {
        "portal:iam": f"?scope={w.vault.resource_id}",
        "portal:iam_check_access": f"?scope={w.vault.resource_id}&member={w.lab.personas['reader'].principal.pk}",
        "protection:configure_protection": f"?vault={w.vault.pk}&type=adls",
        "protection:policy_create": f"?vault={w.vault.pk}",
        "protection:restore_wizard": f"?instance={w.instance.pk}",
        "protection:recovery_point_browse": "?container=documents",
    }.get(key, "")


def overrides(key: str, w, data: dict) -> dict:
    """What a person types or picks on top of the form's defaults (or posts from a button elsewhere)."""
    from portal.inventory import blobs
    from security import mua
    from security.models import RoleDefinition

    lab = w.lab
    hns2 = f"sa{w.account2.pk}"
    table = {
        "portal:resource_group_create": {"name": "rg-new", "subscription": lab.lab_subscription.pk},
        "portal:resource_group_delete": {"confirm_name": "rg-entry-empty"},
        "portal:iam_add": {"scope": w.vault.resource_id, "member": str(lab.personas["reader"].principal.pk),
                           "role": str(RoleDefinition.objects.get(name="Backup Contributor").pk)},
        "portal:iam_remove": {"scope": w.vault.resource_id},
        "portal:iam_condition": {"scope": w.vault.resource_id, "delegation": "allButPrivileged"},
        "portal:alert_change_state": {"state": "Acknowledged"},
        "portal:signin_unlock": {"username": "outsider", "ip_address": "127.0.0.1"},
        "portal:app_create": {"display_name": "app-entry-two"},
        "portal:app_secret_add": {"description": "entry two", "expires": "90"},
        "portal:app_delete": {"confirm_name": "app-entry"},
        "portal:lab_clock": {"amount": "1", "unit": "days"},
        "labs:role_play": {"request_id": str(w.pending_request.pk), "decision": "approve"},
        "labs:class_create": {"name": "Entry class two", "labs": [ENTRY_LAB], "trainees": "1"},
        "labs:class_reset": {"confirm_name": w.lab_class.name if w.lab_class else ""},
        "labs:class_close": {"confirm_name": w.lab_class.name if w.lab_class else ""},
        "portal:switch_persona": {"persona": str(lab.personas["reader"].pk)},
        "portal:storage_account_create": {"name": "sanewentry", "resource_group": lab.lab_group.pk},
        "portal:container_create": {"name": "newcontainer"},
        "portal:storage_account_delete": {"confirm_name": w.account.name},
        "portal:container_upload": {"files": __import__("io").BytesIO(b"new blob")},
        "portal:blob_delete": {"blobs": [b.name for b in blobs.iter_blobs(w.blob_container)]},
        "portal:container_delete": {"confirm_name": w.blob_container.name},
        "portal:elastic_san_create": {"name": "esan-new", "resource_group": lab.lab_group.pk},
        "portal:volume_group_create": {"name": "vg-new"},
        "portal:elastic_san_delete": {"confirm_name": w.san.name},
        "portal:volume_create": {"name": "vol-new", "size_gib": "1"},
        "portal:volume_group_delete": {"confirm_name": w.volume_group.name},
        "portal:volume_delete": {"confirm_name": w.volume.name},
        "portal:disk_create": {"name": "disk-new", "resource_group": lab.lab_group.pk},
        "portal:disk_delete": {"confirm_name": w.disk.name},
        "portal:snapshot_delete": {"confirm_name": w.snapshot.name},
        "portal:postgres_server_create": {"name": "pg-new", "resource_group": lab.lab_group.pk},
        "portal:postgres_database_create": {"name": "newdb"},
        "portal:postgres_server_delete": {"confirm_name": w.server.name},
        "portal:postgres_database_delete": {"confirm_name": w.database.name},
        "portal:storage_account_network": {"network": str(w.subnet.pk)},
        "portal:elastic_san_network": {"network": str(w.subnet.pk)},
        "portal:postgres_server_network": {"network": ""},  # back to the public network: the write alone
        "portal:vnet_create": {"name": "vnet-new", "resource_group": lab.lab_group.pk},
        "portal:subnet_create": {"name": "snet-new", "address_prefix": "10.20.5.0/24"},
        "portal:vnet_delete": {"confirm_name": w.vnet.name},
        "portal:subnet_delete": {"confirm_name": w.subnet.name},
        "portal:dns_zone_create": {"name": "privatelink.queue.core.windows.net", "resource_group": lab.lab_group.pk},
        "portal:dns_record_create": {"name": "rec-new", "ip": "10.20.2.9"},
        "portal:dns_link_create": {"name": "link-new", "virtual_network": str(w.vnet.pk)},
        "portal:dns_zone_delete": {"confirm_name": w.dns_zone.name},
        "portal:private_endpoint_delete": {"confirm_name": w.pe_connection.private_endpoint.name},
        "vaults:vault_soft_delete": {"state": "Off"},
        "vaults:vault_immutability": {"enabled": "on"},
        "vaults:vault_cross_region_restore": {"state": "Enabled"},
        "vaults:vault_cross_subscription_restore": {"state": "Disabled"},
        "vaults:vault_storage_redundancy": {"storage_redundancy": "LocallyRedundant"},
        "vaults:vault_storage_location": {"location_type": "Local"},  # issue 22: S3 per vault
        "vaults:vault_mua": {"guard": str(w.guard.pk)},
        "vaults:vault_identity": {"status": "off"},
        "vaults:vault_delete": {"confirm_name": w.vault.name},
        "vaults:vault_networking": {"public_network_access": "Disabled"},
        "vaults:private_endpoint_connection_action": {"description": "entry-point test"},
        "protection:policy_delete": {"confirm_name": w.adls_policy.name},
        "protection:instance_change_policy": {"policy": str(w.vault.backup_policies.get(name="adls-30d").pk)},
        "protection:instance_backup_now": {"retention_rule": "Default"},
        "protection:instance_stop_backup": {"retain": "RetainForever"},
        "protection:instance_delete_data": {"confirm_name": w.instance.name},
        "mua:guard_operations": {f"op-{mua.DELETE_INSTANCE}": "disable"},
        "mua:guard_approvers": {"form": "approvers"},
        "mua:guard_delete": {"confirm_name": w.guard.name},
        "mua:request_access": {"justification": "entry-point test", "hours": "1"},
        "mua:approvals": {"request": str(w.pending_request.pk), "decision": "approve", "comment": "ok"},
        # wizards (fields of every tab; each tab takes its own)
        "vaults:vault_create": {"basics-name": "bv-new-entry", "basics-resource_group": lab.lab_group.pk},
        "vaults:private_endpoint_create": {"basics-name": "pe-entry-new", "basics-resource_group": lab.lab_group.pk,
                                           "network-virtual_network": w.pe_subnet.virtual_network.pk,
                                           "network-subnet": w.pe_subnet.pk},
        "protection:policy_create": {"basics-name": "new-policy", "basics-vault": w.vault.pk},
        "mua:guard_create": {"basics-name": "rg-guard-new", "basics-resource_group": lab.security_group.pk},
        "protection:configure_protection": {f"datasources-{hns2}_selected": "on", f"datasources-{hns2}_name": "bi-new",
                                            f"datasources-{hns2}_scope": "all"},
        "protection:restore_wizard": {"parameters-target_storage_account": w.restore_target.resource_id},
    }
    for helper, (wizard, _tab) in WIZARD_HELPERS.items():
        table.setdefault(helper, dict(table[wizard]))
    for helper in ("protection:configure_revalidate", "protection:configure_assign_roles"):  # the button's hx-vals
        table[helper].update({"vault": str(w.vault.pk), "type": "adls"})
    hns3 = f"sa{w.account3.pk}"  # an account the vault's identity has no role on yet
    table["protection:configure_assign_roles"].update({"assign_scope": "Resource", f"datasources-{hns3}_selected": "on"})
    table["protection:restore_assign_roles"].update({"scope": "Resource"})
    for helper in ("protection:restore_validate", "protection:restore_assign_roles"):  # the button's hx-vals
        table[helper].update({"instance": str(w.instance.pk), "point": str(w.point.pk)})
    return dict(table.get(key, {}))


def _current_step(data: dict) -> str:
    return next((v for k, v in data.items() if k.endswith("-current_step")), "")


def wizard_to(client, key: str, w, tab: str | None):
    """Walk the wizard with Next from its first tab up to ``tab`` (None: the review tab). Returns the
    form data of that tab (with the overrides), or None when it could not get there."""
    path = reverse(key, args=url_args(key, w))
    html = client.get(path + wizard_query(key, w)).content.decode(errors="replace")
    extra = overrides(key, w, {})
    for _ in range(8):
        data = form_data(html, path)
        if data is None:
            return None, html
        data.update({k: v for k, v in extra.items() if k.split("-")[0] == _current_step(data) or "-" not in k})
        step = _current_step(data)
        if step == (tab or "review"):
            return data, html
        response = client.post(path + wizard_query(key, w), data)
        html = response.content.decode(errors="replace")
    return None, html


def drive(client, key: str, w, before: dict) -> tuple[dict, dict]:
    """Fill the entry point's POST form as a browser would and POST it under lockdown: (its row, the
    fingerprint after it, which is the next entry point's ``before``)."""
    args = url_args(key, w)
    path = reverse(key, args=args)
    html = ""
    if key in WIZARDS or key in WIZARD_HELPERS:
        wizard, tab = WIZARD_HELPERS.get(key, (key, None))
        data, html = wizard_to(client, wizard, w, tab)
        data = dict(data or {})
        data.update(overrides(key, w, data) if key in WIZARD_HELPERS else {})
        post_path = path + (wizard_query(key, w) if key in WIZARDS else "")
        headers = HX if key in WIZARD_HELPERS else {}
    elif key in GET_WRITES:  # an htmx GET that asks a guard (e.g. the name check while typing)
        data = {}
        with lockdown() as state:
            response = client.get(path + GET_WRITES[key](w), **HX)
        after = fingerprint()
        return {"key": key, "path": path, "status": response.status_code, "refused": sorted(state.operations),
                "changed": difference(before, after), "reached_form": True}, after
    else:
        page = client.get(path + wizard_query(key, w))
        html = page.content.decode(errors="replace") if page.status_code == 200 else ""
        data = form_data(html, path) or {}
        data.update(overrides(key, w, data))
        post_path, headers = path + wizard_query(key, w), {}
        assert page.status_code < 500, (key, page.status_code)
    with lockdown(total=total_lockdown(key), allow=ALLOWED_DURING_LOCKDOWN.get(key, ())) as state:
        response = client.post(post_path, {k: v for k, v in data.items() if v is not None}, **headers)
    after = fingerprint()
    return {"key": key, "path": path, "status": response.status_code, "refused": sorted(state.operations),
            "changed": difference(before, after), "reached_form": bool(data)}, after


GET_WRITES = {"vaults:check_name": lambda w: f"?name=bv-entry-two&resource_group={w.lab.lab_group.pk}",
              # a download is a GET that asks for data access (the live blob read, then the restore)
              "protection:recovery_point_download": lambda w: "?container=documents&path=dir0/file%200.bin"}

# Read-like checks an entry point makes before its write, let through so the proof reaches the write.
ALLOWED_DURING_LOCKDOWN = {"vaults:vault_create": {f"{DP}/locations/checkNameAvailability/action"}}


def total_lockdown(key: str) -> bool:
    """Entry points guarded by a *read* action (they record what they read) are driven with every
    operation refused, reads included."""
    ops = URLS.get(key)
    return isinstance(ops, set) and any(op.endswith("/read") for op in ops)


def client_for(client, key: str, lab):
    client.logout()
    who = ACTORS.get(key)
    principal = lab.trainee if who == "trainee" else lab.personas[who].principal if who else lab.trainer
    client.force_login(principal.user)
    return client


def check(row: dict, expected) -> list[str]:
    """What is wrong with one driven entry point (empty: it is guarded as its row says)."""
    problems = []
    if "error" in row:
        return [f"{row['key']}: {row['error']}"]
    if row["changed"]:
        problems.append(f"{row['key']}: state changed under lockdown: {row['changed']}")
    if row["status"] >= 500:
        problems.append(f"{row['key']}: server error {row['status']}")
    problems.extend(refusal_problems(row["key"], set(row["refused"]), expected,
                                     nothing_reached=f" (status {row['status']}); check its input"))
    return problems


def refusal_problems(name: str, refused: set, expected, nothing_reached: str = "") -> list[str]:
    """What is wrong with the operations a driven entry point asked the guards for: a write (its row a
    set) must ask for some, all in its row; anything else must ask for none."""
    if isinstance(expected, set):
        if not refused:
            return [f"{name}: reached no guarded operation{nothing_reached}"]
        if not refused <= expected:
            return [f"{name}: refused at {sorted(refused - expected)}, not in its row"]
    elif refused:
        return [f"{name}: classified {expected} but asked for {sorted(refused)}"]
    return []


def test_every_url_is_refused_when_the_guard_says_so(client, lab):
    """GIVEN the world and a guard refusing everything but reads WHEN every URL is driven with a real
    form (POST; wizards tab by tab) THEN nothing changed, each write was refused at an operation of its
    row, and each read-only page asked for nothing."""
    w = add_class(build_world(lab))
    problems, driven = [], 0
    state = fingerprint()  # each entry point's after is the next one's before (a fingerprint reads every table)
    for key, _route, _p in url_patterns():
        if key.startswith("admin:") or key == "logout":
            continue  # the admin has its own test; logging out would end the client's session
        try:
            row, state = drive(client_for(client, key, lab), key, w, state)
        except Exception as exc:  # noqa: BLE001  (reported with the others)
            row = {"key": key, "error": f"{type(exc).__name__}: {exc}"[:300]}
            state = fingerprint()
        problems += check(row, URLS[key])
        driven += 1
    assert not problems, "\n".join(problems)
    assert driven == len([k for k, _r, _p in url_patterns() if not k.startswith("admin:")]) - 1


# --- admin -----------------------------------------------------------------------------------------------


def test_the_admin_is_read_only_for_every_strongroom_model(client, lab):
    """GIVEN a superuser WHEN they POST each registration's add, change and delete pages THEN each is
    refused by the admin itself (403) and nothing changed; only Django's accounts are editable."""
    from django.contrib import admin

    w = build_world(lab)
    client.force_login(w.admin_user)
    problems = []
    for model, model_admin in admin.site._registry.items():
        label = model._meta.label
        if ADMIN_REGISTRATIONS[label] == ACCOUNTS:
            continue
        obj = model.objects.first()
        base = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        urls = [reverse(f"{base}_add")]
        if obj is not None:
            urls += [reverse(f"{base}_change", args=[obj.pk]), reverse(f"{base}_delete", args=[obj.pk])]
        else:
            problems.append(f"{label}: no row in the world to try change and delete on")
        assert client.get(reverse(f"{base}_changelist")).status_code == 200, label
        before = fingerprint()
        with lockdown() as state:
            for url in urls:
                status = client.post(url, {"post": "yes"}).status_code
                if status != 403:
                    problems.append(f"{label}: POST {url} answered {status}, not 403")
        if changed := difference(before, fingerprint()):
            problems.append(f"{label}: state changed: {changed}")
        assert not state.refused
    assert not problems, "\n".join(problems)


# --- commands and tasks ----------------------------------------------------------------------------------


def test_seed_lab_is_refused_when_the_guard_says_so(db):
    """GIVEN an empty installation (built-in roles only) WHEN seed_lab runs under lockdown THEN its first
    write is refused and the command fails; all it left is the installation's bootstrap, which no guard
    can authorize (the trainer's account and its Owner assignment at the root, as `bootstrap_root_owner`
    logs it) — no subscription, resource group, vault or any other resource."""
    from security import scopes
    from security.models import RoleAssignment

    before = fingerprint()
    with lockdown() as state:
        with pytest.raises(Exception, match="Lockdown"):
            call_command("seed_lab", stdout=open(os.devnull, "w"))
    assert state.refused and set(state.refused) <= COMMANDS["seed_lab"], state.refused
    changed = set(difference(before, fingerprint()))
    assert changed <= {"auth.User", "security.Principal", "security.RoleAssignment"}, changed
    [bootstrap] = RoleAssignment.objects.all()
    assert bootstrap.role.name == "Owner" and bootstrap.scope == scopes.ROOT
    assert bootstrap.principal.display_name == "Terry Trainer"


def test_create_owner_makes_nothing_once_an_owner_exists(lab, monkeypatch):
    """GIVEN an installation with an Owner (the lab's trainer) WHEN create_owner runs under lockdown THEN it is
    refused before making anything: later Owners are assigned in IAM, through the guards."""
    from django.core.management.base import CommandError

    monkeypatch.setenv("STRONGROOM_OWNER_USERNAME", "second-owner")
    monkeypatch.setenv("STRONGROOM_OWNER_PASSWORD", "a long enough passphrase 7")
    before = fingerprint()
    with lockdown() as state:
        with pytest.raises(CommandError, match="already has an Owner"):
            call_command("create_owner", "--no-input", stdout=open(os.devnull, "w"))
    assert not difference(before, fingerprint()) and not state.refused
    assert COMMANDS["create_owner"] == BOOTSTRAP


def test_verify_activity_log_reads_only(lab):
    """GIVEN the world WHEN verify_activity_log runs under lockdown (reads refused too) THEN it reports the
    chain unbroken, asked the guards nothing and changed nothing, its own bookkeeping included."""
    import io

    from security.models import ActivityLogCheck

    build_world(lab)
    before = fingerprint()
    out = io.StringIO()
    with lockdown(total=True) as state:
        call_command("verify_activity_log", stdout=out)
    assert "the chain is unbroken" in out.getvalue()
    assert not state.asked and not difference(before, fingerprint())
    assert not ActivityLogCheck.objects.exists()


def test_tls_certificate_asks_nothing_and_changes_no_row(lab, tmp_path):
    """GIVEN the world WHEN tls_certificate runs under total lockdown THEN it made its files (0600 keys), asked the
    guards nothing and changed no row; a second run keeps the CA."""
    import io

    build_world(lab)
    before = fingerprint()
    with lockdown(total=True) as state:
        call_command("tls_certificate", dir=str(tmp_path / "tls"), stdout=io.StringIO())
        ca = (tmp_path / "tls" / "ca.pem").read_bytes()
        out = io.StringIO()
        call_command("tls_certificate", dir=str(tmp_path / "tls"), stdout=out)
    assert "Kept the existing CA" in out.getvalue() and (tmp_path / "tls" / "ca.pem").read_bytes() == ca
    assert (tmp_path / "tls" / "ca-key.pem").stat().st_mode & 0o777 == 0o600
    assert not state.asked and not [c for c in difference(before, fingerprint()) if not c.startswith("file ")]
    assert COMMANDS["tls_certificate"] == TLS_FILES


def test_dns_responder_reads_only(lab):
    """GIVEN the world (a VNet) WHEN dns_responder serves briefly under lockdown (reads refused too) THEN it
    listened for the VNet, asked the guards nothing and changed nothing."""
    import io

    w = build_world(lab)
    before = fingerprint()
    out = io.StringIO()
    with lockdown(total=True) as state:
        call_command("dns_responder", port=0, seconds=0.2, refresh=0.05, stdout=out)
    assert f"{w.vnet.name} on 127.53." in out.getvalue()
    assert not state.asked and not difference(before, fingerprint())
    assert COMMANDS["dns_responder"] == READ


def test_every_task_is_refused_when_the_guard_says_so(lab, monkeypatch):
    """GIVEN the world, where every periodic task has work (a due scheduled backup, an expired recovery
    point, a soft-deleted instance past its purge, queued jobs of each kind, an ended grant, a volume
    job, a trainee's lab run and, after its reset, a retired sandbox) WHEN each task is called under lockdown THEN nothing guarded changed and each task that reaches
    guarded operations was refused at one of its row."""
    from portal import tasks as portal_tasks
    from portal.inventory import services as inv
    from portal.inventory import tasks as inventory_tasks
    from protection.jobs import runner as jobs
    from protection import tasks as protection_tasks
    from protection.models import BackupInstance, Job, JobOperation
    from protection.deletion import services as deletion
    from protection.backups import retention
    from security import clock, mua
    from security import tasks as security_tasks
    from labs import services as lab_services
    from labs import tasks as labs_tasks
    from labs.models import StepResult

    monkeypatch.setattr(jobs, "enqueue", lambda job: None)  # the test runs every job itself
    w = build_world(lab)
    archive = add_archive_work(w)  # a point to tier, a rehydrated copy that ended, a restore waiting on rehydration
    # A scheduled backup is due, and a Configure protection job is waiting.
    BackupInstance.objects.filter(pk=w.instance.pk).update(next_backup_at=clock.now() - dt.timedelta(minutes=1))
    operation = inv.start_volume_job(lab.trainer, w.volume, "WriteSampleData", enqueue=False)
    waiting = {
        JobOperation.BACKUP: w.queued_job,
        JobOperation.RETENTION: retention.start_retention_runs()[0],
        JobOperation.PURGE: deletion.start_purges()[0],
    }
    problems = []

    def run(name, call, expected):
        from security.models import RoleAssignment

        before = fingerprint()
        active = set(RoleAssignment.objects.active_at(clock.now()).values_list("pk", flat=True))
        with lockdown() as state:
            try:
                call()
            except Exception as exc:  # noqa: BLE001  (a refused task may raise: what matters is below)
                if "Lockdown" not in str(exc):
                    problems.append(f"{name}: {type(exc).__name__}: {exc}")
        changed = difference(before, fingerprint())
        asked = set(state.asked)
        if expected == EXPIRY:
            if not set(changed) <= {"security.AccessRequest", "security.RoleAssignment"}:
                problems.append(f"{name}: changed more than expired grants: {changed}")
            if set(RoleAssignment.objects.active_at(clock.now()).values_list("pk", flat=True)) != active:
                problems.append(f"{name}: changed which role assignments are active")
        elif changed:
            problems.append(f"{name}: state changed under lockdown: {changed}")
        problems.extend(refusal_problems(name, asked, expected))
        return state

    for kind, job in waiting.items():
        run(f"protection.tasks.run_job ({kind})", lambda job=job: protection_tasks.run_job(str(job.pk)),
            TASKS["protection.tasks.run_job"])
    run("protection.tasks.dispatch_backups", protection_tasks.dispatch_backups, TASKS["protection.tasks.dispatch_backups"])
    run("protection.tasks.start_purges", protection_tasks.start_purges, TASKS["protection.tasks.start_purges"])
    settled = run("protection.tasks.start_retention", protection_tasks.start_retention,
                  TASKS["protection.tasks.start_retention"])
    # each piece of the archive tier's work reached its guarded operation, and was refused there
    assert settled.asked.count(f"{BV}/backupInstances/recoveryPoints/move/action") == 2, settled.asked
    assert f"{BV}/backupInstances/restore/action" in settled.asked, settled.asked
    assert not Job.objects.filter(operation__in=[JobOperation.TIERING, JobOperation.RESTORE],
                                  recovery_point__in=list(archive.values())).exists()
    run("protection.tasks.start_verifies", protection_tasks.start_verifies, TASKS["protection.tasks.start_verifies"])
    run("protection.tasks.reconcile_jobs", protection_tasks.reconcile_jobs, TASKS["protection.tasks.reconcile_jobs"])
    run("security.tasks.close_expired_grants", security_tasks.close_expired_grants,
        TASKS["security.tasks.close_expired_grants"])
    run("security.tasks.verify_activity_log", security_tasks.verify_activity_log,
        TASKS["security.tasks.verify_activity_log"])
    run("portal.tasks.answer_worker_check", lambda: portal_tasks.answer_worker_check(str(operation.pk)),
        TASKS["portal.tasks.answer_worker_check"])
    run("portal.inventory.run_volume_job", lambda: inventory_tasks.run_volume_job(w.volume.pk, str(operation.pk)),
        TASKS["portal.inventory.run_volume_job"])
    # The trainee's lab: its checks run (reading real state), then a reset retires the sandbox to take down.
    run("labs.tasks.check_run", lambda: labs_tasks.check_run(str(w.lab_run.pk)), TASKS["labs.tasks.check_run"])
    assert StepResult.objects.get(run=w.lab_run, step=ENTRY_STEP).checked_at is not None  # the check really ran
    lab_services.reset_lab(lab.trainee, w.lab_run, run_jobs_inline=True)
    run("labs.tasks.take_down_retired", lambda: labs_tasks.take_down_retired(str(w.lab_run.sandbox_id)),
        TASKS["labs.tasks.take_down_retired"])
    assert Job.objects.filter(operation=JobOperation.PURGE).exists() and mua  # the world had the work
    assert not problems, "\n".join(problems)
