"""Isolation between sandboxes is real (issue 16, "Sandboxes"): RBAC hides one trainee's sandbox from
another, and on the shared PostgreSQL cluster a sandbox's login can neither open nor list another's database.

Trainee A and trainee B each start a lab; B also backs up their PostgreSQL server and has a Resource Guard.
Signed in as A, every GET route of the URL resolver is requested, its path parameters filled with B's
objects, and nothing of B's may appear in any answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import psycopg
import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from labs import services
from labs.sandboxes import SandboxWorld
from portal.inventory import postgres
from portal.inventory.disks import services as disk_services
from portal.lab import LAB_REGION
from protection import datasource_types
from security import applications, mua
from security.models import RoleAssignment
from tests.labs._trainee_backups import backup_now, probe_lab, protect  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db

# Routes with a parameter that none of B's objects fits (B has no snapshot, alert or access request, and is
# in no class: a trainee is refused every class page, tests/labs/test_class_pages.py).
UNFILLED = {"portal:snapshot_detail", "portal:snapshot_delete", "portal:alert_change_state", "mua:cancel_request",
            *(f"labs:{name}" for name in ("class_page", "class_export", "class_reset_seat", "class_reset_pair",
                                          "class_reset", "class_close", "class_clock"))}


@dataclass
class Pair:
    a: object
    b: object
    world_a: SandboxWorld
    world_b: SandboxWorld
    run_b: object
    vault_b: object
    instance_b: object
    job_b: object
    guard_b: object
    network_b: dict  # B's VNet, subnet, private DNS zone with a record and a link, private endpoint
    app_b: object = None  # B's app registration (B owns it: Lab Trainee registers apps as their owner)
    secret_b: object = None
    disk_b: object = None  # a managed disk in B's sandbox


@pytest.fixture
def pair(lab, make_trainee, probe_lab):
    a, b = make_trainee("traineea"), make_trainee("traineeb")
    services.start_lab(a, probe_lab.slug, run_jobs_inline=True)
    run_b = services.start_lab(b, probe_lab.slug, run_jobs_inline=True)
    world_a, world_b = SandboxWorld(services.active_run(a, probe_lab.slug).sandbox), SandboxWorld(run_b.sandbox)
    vault_b, instance_b = protect(b, world_b, world_b.pg_server, datasource_types.POSTGRES_FLEX)
    job_b = backup_now(b, instance_b)
    guard_b = mua.create_resource_guard(world_b.security_admin, resource_group_id=world_b.security_group.resource_id,
                                        name=f"guard-{world_b.names.code}", region=LAB_REGION)
    app_b = applications.create_application(b, f"app-{world_b.names.code}")
    secret_b, _ = applications.add_client_secret(b, app_b, description=f"secret-{world_b.names.code}")
    disk_b = disk_services.create_disk(b, resource_group=world_b.backup_group, name=f"disk-{world_b.names.code}",
                                       region=world_b.source_account.region, size_gib=1)
    return Pair(a, b, world_a, world_b, run_b, vault_b, instance_b, job_b, guard_b, b_network(lab, world_b, vault_b),
                app_b, secret_b, disk_b)


def b_network(lab, world: SandboxWorld, vault) -> dict:
    """Networking in B's sandbox: every name carries B's code, and B's source account sits in the subnet, beside a
    private endpoint to B's vault (its row as the vault networking service makes it: B's vault protects already)."""
    from portal.inventory import services as inventory
    from portal.inventory.models import PrivateEndpoint

    code, group = world.names.code, world.backup_group
    vnet = inventory.create_virtual_network(lab.trainer, resource_group=group, name=f"vnet-{code}",
                                            region=world.source_account.region, address_prefixes="10.20.0.0/16",
                                            subnet_name=f"snet-{code}", subnet_prefix="10.20.1.0/24")
    inventory.set_datasource_network(lab.trainer, world.source_account, vnet.subnets.get())
    zone = inventory.create_private_dns_zone(lab.trainer, resource_group=group, name=f"zone-{code}.contoso.internal")
    record = inventory.add_a_record(lab.trainer, zone, name=f"rec-{code}", ip="10.20.1.4")
    link = inventory.add_vnet_link(lab.trainer, zone, name=f"link-{code}", virtual_network=vnet)
    endpoint = PrivateEndpoint.objects.create(
        name=f"pe-{code}", resource_group=group, region=vnet.region, subnet=vnet.subnets.get(),
        target_resource_id=vault.resource_id, target_sub_resource="AzureBackup",
        ip_configurations=[{"fqdn": f"{vault.name}-ab-pod01-prot1.privatelink.eus.backup.windowsazure.com",
                            "ip": "10.20.1.5"}])
    return {"vnet": vnet, "subnet": vnet.subnets.get(), "zone": zone, "record": record, "link": link,
            "endpoint": endpoint}


def markers(trainee, world: SandboxWorld) -> list[str]:
    """Text that names a sandbox or its trainee: every resource name carries the sandbox's code."""
    code = world.names.code
    return [f"sbx{code}", f"-{code}", f"sbx_{code}", f"sandbox {code}", trainee.user.username, trainee.display_name]


# The management API's routes (ARM paths, a bearer token, no session): isolation there is proved per route by
# tests/api (403/404 for a principal without a role at the path's scope), not by this walk of pages.
API_NAMESPACES = ("arm", "identity")


def routes():
    """(key, pattern) of every page route outside the Django admin (A is no staff member: the admin turns them
    away) and outside the management API (`API_NAMESPACES`)."""
    out = []

    def walk(patterns, namespace=""):
        for p in patterns:
            if isinstance(p, URLResolver):
                if p.namespace not in ("admin", *API_NAMESPACES):
                    walk(p.url_patterns, f"{namespace}:{p.namespace}".strip(":") if p.namespace else namespace)
            elif isinstance(p, URLPattern) and p.name:
                out.append((f"{namespace}:{p.name}" if namespace else p.name, p))

    walk(get_resolver().url_patterns)
    return out


def b_objects(pair: Pair) -> list[tuple[str, object]]:
    """B's object for a route, by the route's name (most specific first)."""
    w = pair.world_b
    point = pair.job_b.recovery_point
    assignment = RoleAssignment.objects.filter(principal=pair.b, scope=w.subscription.resource_id).first()
    return [
        ("container_create", w.source_account), ("volume_group_create", w.elastic_san),
        ("volume_create", w.volume.volume_group), ("postgres_database_create", w.pg_server),
        ("subscription_", w.subscription), ("resource_group_", w.backup_group), ("iam_remove", assignment),
        ("iam_condition", assignment),
        ("storage_account_", w.source_account), ("container_", w.source_account.containers.get(name="documents")),
        ("blob_", w.source_account.containers.get(name="documents")), ("elastic_san_", w.elastic_san),
        ("volume_group_", w.volume.volume_group), ("volume_", w.volume), ("postgres_server_", w.pg_server),
        ("postgres_database_", w.pg_database), ("vault_", pair.vault_b), ("policy_", pair.instance_b.policy),
        ("instance_", pair.instance_b), ("job_", pair.job_b), ("recovery_point_", point), ("guard_", pair.guard_b),
        ("request_access", pair.guard_b), ("run_page", pair.run_b), ("solve", pair.run_b),
        ("reset_for_trainee", pair.run_b), ("private_endpoint_detail", pair.network_b["endpoint"]),
        ("private_endpoint_delete", pair.network_b["endpoint"]), ("private_endpoint_", pair.vault_b),
        ("vnet_", pair.network_b["vnet"]), ("subnet_create", pair.network_b["vnet"]),
        ("subnet_", pair.network_b["subnet"]), ("dns_zone_", pair.network_b["zone"]),
        ("dns_record_create", pair.network_b["zone"]), ("dns_link_create", pair.network_b["zone"]),
        ("dns_record_", pair.network_b["record"]), ("dns_link_", pair.network_b["link"]), ("app_", pair.app_b),
        ("disk_", pair.disk_b),
    ]


def url_for(key: str, pattern: URLPattern, pair: Pair, slug: str) -> tuple[str | None, bool]:
    """(the route's URL with B's objects in it, whether it names one of B's objects); None when none fits."""
    params = list(pattern.pattern.converters)
    if not params:
        return reverse(key), False
    name = key.split(":")[-1]
    if params == ["slug"] or params == ["slug", "step"]:  # a lab by its slug: A's own run of it
        return reverse(key, args=[slug, "scratch"][: len(params)]), False
    obj = next((o for prefix, o in b_objects(pair) if name.startswith(prefix)), None)
    if obj is None:
        return None, False
    # B's vault has no private endpoint connection: any id does (the vault is not found first).
    extra = {"database": pair.world_b.names.pg_database, "step": "scratch", "connection_pk": 1, "action": "approve",
             "secret_id": pair.secret_b.pk}
    return reverse(key, args=[obj.pk] + [extra[p] for p in params[1:]]), True


def queries(pair: Pair) -> list[str]:
    """Pages opened with one of B's objects in the query string, as links and wizards open them."""
    w, vault, instance = pair.world_b, pair.vault_b, pair.instance_b
    return [
        reverse("portal:search") + f"?q={w.names.code}",
        reverse("portal:iam") + f"?scope={vault.resource_id}",
        reverse("portal:iam_check_access") + f"?scope={vault.resource_id}&member={pair.b.pk}",
        reverse("portal:resource_group_list") + f"?subscription={w.subscription.pk}",
        reverse("portal:activity_log") + f"?scope={w.subscription.resource_id}",
        reverse("protection:configure_protection") + f"?vault={vault.pk}&type=pg",
        reverse("protection:policy_create") + f"?vault={vault.pk}",
        reverse("protection:restore_wizard") + f"?instance={instance.pk}",
        reverse("protection:instance_list") + f"?vault={vault.pk}",
        reverse("protection:job_list") + f"?vault={vault.pk}",
        reverse("protection:recovery_point_browse", args=[pair.job_b.recovery_point.pk]) + "?container=documents",
    ]


def leaks(response, names: list[str]) -> list[str]:
    text = response.content.decode(errors="replace") + response.get("Location", "")
    return [n for n in names if n in text]


def test_trainee_a_finds_nothing_of_trainee_b_at_any_url(pair, probe_lab, client):
    client.force_login(pair.a.user)
    b_names, problems, requested, unfilled = markers(pair.b, pair.world_b), [], 0, set()
    for key, pattern in routes():
        url, names_b_object = url_for(key, pattern, pair, probe_lab.slug)
        if url is None:
            unfilled.add(key)
            continue
        response = client.get(url)
        requested += 1
        if found := leaks(response, b_names):
            problems.append(f"{key} ({url}, {response.status_code}) shows {found}")
        if names_b_object and response.status_code == 200:
            problems.append(f"{key} ({url}) answered 200 for one of B's objects")
    for url in queries(pair):
        response = client.get(url)
        requested += 1
        if found := leaks(response, b_names):
            problems.append(f"{url} ({response.status_code}) shows {found}")
    assert not problems, "\n".join(problems)
    assert unfilled == UNFILLED and requested > 120
    # The same client still sees A's own sandbox (signed in all along), and B sees what A was refused.
    assert f"sbx{pair.world_a.names.code}src" in client.get(reverse("portal:storage_account_list")).content.decode()
    client.force_login(pair.b.user)
    for url in (reverse("vaults:vault_detail", args=[pair.vault_b.pk]),
                reverse("protection:recovery_point_detail", args=[pair.job_b.recovery_point.pk]),
                reverse("portal:postgres_server_databases", args=[pair.world_b.pg_server.pk]),
                reverse("labs:run_page", args=[pair.run_b.pk])):
        response = client.get(url)
        assert response.status_code == 200 and leaks(response, b_names), url


def test_a_neither_sees_nor_touches_b_app_registration(pair, client):
    """B's app is B's alone: A's App registrations list and IAM picker leave it out, its pages and POSTs answer
    404, and the services refuse A (A holds no directory role; owning an app is what lets B manage it)."""
    from security.guards import GuardDenied

    own = applications.create_application(pair.a, f"app-{pair.world_a.names.code}")
    client.force_login(pair.a.user)
    listing = client.get(reverse("portal:app_list")).content.decode()
    assert own.display_name in listing and pair.app_b.display_name not in listing
    picker = client.get(reverse("portal:iam") + f"?scope={pair.world_a.backup_group.resource_id}&tab=add").content.decode()
    assert own.display_name in picker and pair.app_b.display_name not in picker
    b_app = pair.app_b.pk
    for url in (reverse("portal:app_secret_add", args=[b_app]), reverse("portal:app_delete", args=[b_app]),
                reverse("portal:app_secret_remove", args=[b_app, pair.secret_b.pk])):
        assert client.post(url, {"confirm": pair.app_b.display_name, "expires": "90"}).status_code == 404, url
    for attempt in (lambda: applications.add_client_secret(pair.a, pair.app_b),
                    lambda: applications.remove_client_secret(pair.a, pair.secret_b),
                    lambda: applications.delete_application(pair.a, pair.app_b)):
        with pytest.raises(GuardDenied):
            attempt()
    pair.secret_b.refresh_from_db()
    assert pair.secret_b.revoked_at is None and applications.visible_applications(pair.b).get() == pair.app_b


def test_b_login_cannot_open_and_b_backup_neither_reads_nor_lists_a_database(pair):
    a_database, b_database = pair.world_a.names.pg_database, pair.world_b.names.pg_database
    b_params = pair.world_b.pg_server.connection_params()
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        postgres.connect(b_params.with_database(a_database)).close()
    assert [d.name for d in postgres.discover_databases(b_params, owned_only=True)] == [b_database]

    job, point = pair.job_b, pair.job_b.recovery_point
    assert job.status == "Completed", job.error_message
    assert [m["database"] for m in point.manifests if m.get("database")] == [b_database]
    recorded = json.dumps([job.extended_info, job.error_message, point.manifests, point.verify_details], default=str)
    assert b_database in recorded and a_database not in recorded


def test_b_backup_of_the_roles_names_no_other_sandbox_login(pair, tmp_path):
    """pg_dumpall --globals-only lists every role of the cluster: for a sandbox's server only its own login
    is kept (another sandbox's login would name it)."""
    from vaults.storage import open_store

    point = pair.job_b.recovery_point
    globals_part = next(m for m in point.manifests if m["item"] == "globals.sql")
    with open_store(pair.instance_b.vault) as store, open(tmp_path / "globals.sql", "wb") as out:
        store.restore_stream(globals_part["id"], out)
    text = (tmp_path / "globals.sql").read_text()
    assert f"CREATE ROLE {pair.world_b.names.pg_login};" in text
    assert pair.world_a.names.pg_login not in text and "CREATE ROLE postgres;" not in text
