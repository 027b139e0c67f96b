"""The world tests/test_entry_points.py drives every entry point against, and the tools it uses.

* `build_world(lab)`: through the services as the trainer — the inventory (HNS and flat accounts with
  blobs, an Elastic SAN with two volumes, a PostgreSQL server and a database row), a vault with
  policies, a protected and backed-up storage account (a recovery point past its expiry), a protected
  and backed-up volume (an inventory snapshot), a soft-deleted PostgreSQL instance past its purge
  time, a queued backup job, the lab's Resource Guard with a pending access request and an expired
  grant, an alert, a role assignment and a resource group with nothing in it; and the demo trainee's run of
  a one-step training lab (`entry_lab`) in a sandbox of their own.
* `entry_lab_registered()`: registers that lab for a test, and drops every sandbox login the test made on
  the shared PostgreSQL lab cluster (also those of sandboxes whose rows were rolled back).
* `lockdown()`: registers a guard that refuses every operation except ``.../read`` and records every
  refusal (every `GuardDenied` made while it is on, whoever raises it).
* `fingerprint()`: every row of every guarded model, and every data file below the data roots
  (engine caches, locks and temporary files aside) — equal before and after means nothing changed.
* `form_data(html, path)`: the fields of the page's POST form for ``path`` with their defaults, as a
  browser would send them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import os
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from django.apps import apps
from django.conf import settings

from security.guards import GuardDenied, Refusal, register_guard, unregister_guard

LOCKDOWN = "Lockdown (test)"

# Bookkeeping, not guarded state: the activity log (it records the refusals) with its chain's head and
# last check, long-running operation notifications, job rows (requests for work whose work is guarded
# when it runs), fired alerts, sessions and Django's own tables.
NOT_GUARDED_STATE = {
    "security.ActivityLogEntry", "security.ActivityLogHead", "security.ActivityLogCheck",
    "portal.Operation", "portal.AsyncOperation", "protection.Job", "security.Alert",
    "sessions.Session", "admin.LogEntry", "contenttypes.ContentType", "auth.Permission",
}


# --- lockdown ------------------------------------------------------------------------------------------


@dataclass
class Lockdown:
    refused: list = field(default_factory=list)  # operations refused (a GuardDenied was made) while it was on
    asked: list = field(default_factory=list)  # every operation the lockdown guard refused, previews included

    @property
    def operations(self) -> set:
        return set(self.refused)


def _lockdown_guard(principal, operation, target, change):
    if operation.lower().endswith("/read"):
        return None
    return Refusal(LOCKDOWN, "TestLockdown", f"Lockdown: '{operation}' is refused by the test.")


def _total_guard(principal, operation, target, change):
    return Refusal(LOCKDOWN, "TestLockdown", f"Lockdown: '{operation}' is refused by the test (reads too).")


@contextlib.contextmanager
def lockdown(total: bool = False, allow=()):
    """Refuse every operation except reads (``total``: reads too; ``allow``: these too) while the block runs."""
    state = Lockdown()
    allowed = {a.lower() for a in allow}

    def guard(principal, operation, target, change):
        if operation.lower() in allowed:
            return None
        refusal = (_total_guard if total else _lockdown_guard)(principal, operation, target, change)
        if refusal is not None:
            state.asked.append(operation)
        return refusal

    original = GuardDenied.__init__

    def spying_init(self, decision):
        if decision.guard == LOCKDOWN:
            state.refused.append(decision.operation)
        original(self, decision)

    GuardDenied.__init__ = spying_init
    register_guard(LOCKDOWN, guard, order=1)
    try:
        yield state
    finally:
        unregister_guard(LOCKDOWN)
        GuardDenied.__init__ = original


# --- fingerprint ---------------------------------------------------------------------------------------


# Bookkeeping columns of guarded models: the dispatcher's schedule (it moves on past a refused slot) and
# a volume's job status (a refused job ends Failed); the data they describe is fingerprinted.
BOOKKEEPING_FIELDS = {
    "protection.BackupInstance": {"next_backup_at", "last_scheduled_slot", "updated_at"},
    "portal.Volume": {"activity", "activity_status", "activity_progress", "activity_message", "activity_started_at",
                      "activity_heartbeat_at", "activity_operation", "updated_at"},
    # A lab's stored check outcomes (the checks read real state; the lab page shows what they found), and
    # why a retired sandbox is still kept (a guard's refusal, in its words).
    "labs.LabRun": {"checked_at", "completed_at"},
    "labs.StepResult": {"passed", "message", "checked_at", "failures"},
    "labs.Sandbox": {"kept_because"},
    # signing in (the proof signs in as each entry point's actor) is not a guarded change
    "auth.User": {"last_login"},
}


def _rows(model) -> str:
    skip = BOOKKEEPING_FIELDS.get(model._meta.label, set())
    names = [f.attname for f in model._meta.concrete_fields if f.name not in skip and f.attname not in skip]
    rows = sorted(repr(r) for r in model.objects.all().values_list(*names))
    return hashlib.sha256("\n".join(rows).encode()).hexdigest() + f":{len(rows)}"


def _files() -> dict:
    out = {}
    roots = [Path(settings.STRONGROOM_DATA_ROOT), *[Path(p) for p in settings.STRONGROOM_ATTACH_ROOTS]]
    for root in roots:
        if not root.exists():
            continue
        for dirpath, _dirs, files in os.walk(root):
            rel_dir = os.path.relpath(dirpath, root)
            if "cache" in rel_dir or "/locks" in f"/{rel_dir}" or rel_dir.startswith("locks"):
                continue
            for name in files:
                if name.startswith(".tmp") or name.endswith(".lock") or ".init-lock" in name:
                    continue
                full = os.path.join(dirpath, name)
                st = os.stat(full)
                out[os.path.join(str(root), rel_dir, name)] = (st.st_size, st.st_mtime_ns)
    return out


def fingerprint() -> dict:
    state = {}
    for model in apps.get_models():
        if model._meta.label in NOT_GUARDED_STATE or model._meta.proxy:
            continue
        state[model._meta.label] = _rows(model)
    state["files"] = _files()
    return state


def difference(before: dict, after: dict) -> list:
    changed = [k for k in before if k != "files" and before[k] != after.get(k)]
    fb, fa = before["files"], after["files"]
    changed += [f"file {p}" for p in sorted(set(fb) ^ set(fa))]
    changed += [f"file {p} (changed)" for p in sorted(set(fb) & set(fa)) if fb[p] != fa[p]]
    return changed


# --- forms ---------------------------------------------------------------------------------------------


class _FormParser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms: list[dict] = []
        self._form = None
        self._select = None
        self._textarea = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._form = {"action": a.get("action") or a.get("hx-post") or "", "method": (a.get("method") or "get").lower(),
                          "id": a.get("id", ""), "fields": [], "selects": {}}
            self.forms.append(self._form)
        if self._form is None:
            return
        if tag == "input" and a.get("name"):
            kind = (a.get("type") or "text").lower()
            if kind in ("checkbox", "radio"):
                if "checked" in a and "disabled" not in a:
                    self._form["fields"].append((a["name"], a.get("value", "on")))
                elif kind == "radio":
                    self._form.setdefault("radios", {}).setdefault(a["name"], a.get("value", ""))
            elif kind not in ("submit", "button", "file", "image", "reset") and "disabled" not in a:
                self._form["fields"].append((a["name"], a.get("value", "")))
        elif tag == "select" and a.get("name") and "disabled" not in a:
            self._select = {"name": a["name"], "multiple": "multiple" in a, "first": None, "chosen": []}
        elif tag == "option" and self._select is not None:
            value = a.get("value", "")
            if self._select["first"] is None:
                self._select["first"] = value
            if "selected" in a:
                self._select["chosen"].append(value)
        elif tag == "textarea" and a.get("name"):
            self._textarea = [a["name"], ""]

    def handle_data(self, data):
        if self._textarea is not None:
            self._textarea[1] += data

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "select" and self._select is not None and self._form is not None:
            s = self._select
            values = s["chosen"] or ([] if s["multiple"] else [s["first"] or ""])
            for v in values:
                self._form["fields"].append((s["name"], v))
            self._select = None
        elif tag == "textarea" and self._textarea is not None and self._form is not None:
            self._form["fields"].append(tuple(self._textarea))
            self._textarea = None


def page_forms(html: str) -> list[dict]:
    parser = _FormParser()
    parser.feed(html)
    return parser.forms


def form_data(html: str, path: str, *, form_id: str = "") -> dict | None:
    """The POST form of ``path`` on the page: {name: value or [values]} with its defaults. Radio groups
    with nothing checked take their first choice (as a person picking the first option)."""
    chosen = None
    for form in page_forms(html):
        if form["method"] != "post":
            continue
        if form_id and form["id"] != form_id:
            continue
        action = form["action"].split("?")[0]
        if form_id or action in ("", path):
            chosen = form
            break
    if chosen is None:
        return None
    data: dict = {}
    for name, value in chosen["fields"]:
        if name in data:
            data[name] = (data[name] if isinstance(data[name], list) else [data[name]]) + [value]
        else:
            data[name] = value
    for name, first in chosen.get("radios", {}).items():
        data.setdefault(name, first)
    return data


# --- the world -----------------------------------------------------------------------------------------


@dataclass
class World:
    lab: object
    inventory: object
    vault: object
    adls_policy: object
    esan_policy: object
    pg_policy: object
    instance: object
    point: object
    volume_instance: object
    volume_point: object
    snapshot: object
    soft_deleted: object
    queued_job: object
    guard: object
    pending_request: object
    alert: object
    assignment: object
    empty_group: object
    database: object
    blob_container: object
    admin_user: object
    account: object = None
    san: object = None
    volume_group: object = None
    volume: object = None
    server: object = None
    account2: object = None
    account3: object = None
    restore_target: object = None
    trainee: object = None  # the demo trainee (Lab Trainee at the root)
    app: object = None  # an app registration with one client secret (app_secret)
    app_secret: object = None
    lab_run: object = None  # their run of the entry lab, in a sandbox of their own
    lab_class: object = None  # a class of two (a pair) doing the entry lab (`add_class`)
    pe_subnet: object = None  # a subnet with the vault's private endpoint (made before protection, as the rules want)
    pe_connection: object = None
    vnet: object = None  # vnet-entry: snet-entry holds the storage account saentryhns2, snet-free holds nothing
    subnet: object = None  # snet-free
    dns_zone: object = None  # privatelink.dfs.core.windows.net, linked to vnet-entry, one A record
    dns_record: object = None
    dns_link: object = None
    disk: object = None  # disk-entry: an Azure managed disk (1 GiB sparse image)


# --- a training lab -----------------------------------------------------------------------------------

ENTRY_LAB = "entry-points"
ENTRY_STEP = "container"
_entry_lab = None


def entry_lab():
    """A training lab of one step: create a container in the sandbox's source account (the check reads the
    account's containers: real state; the solve creates it through the services as the trainee)."""
    global _entry_lab
    if _entry_lab is None:
        from labs import catalogue
        from portal.inventory import services as inv

        def check(ctx):
            account = ctx.world.source_account
            if account.containers.filter(name="entry").exists():
                return catalogue.CheckResult.ok("The container entry exists.")
            return catalogue.CheckResult.missing(f"There is no container 'entry' in {account.name} yet.")

        def solve(ctx):
            inv.create_container(ctx.trainee, ctx.world.source_account, name="entry")

        step = catalogue.Step(ENTRY_STEP, "Make a container", "Create the container **entry**.", check, solve,
                              hints=("Open the storage account, then + Container.",))
        # Paired, so that a class of it pairs its trainees (the class pages reset a pair).
        _entry_lab = catalogue.Lab(ENTRY_LAB, "Entry points", "A lab for the entry-point proof.", ("nothing",), 1,
                                   catalogue.Document("Test", "none"), (step,), paired=True)
    return _entry_lab


@contextlib.contextmanager
def entry_lab_registered():
    """The entry lab is offered while the block runs; afterwards every sandbox made in it (its row kept or
    rolled back) leaves no login or database on the shared PostgreSQL lab cluster."""
    from django.db.models.signals import post_save

    from labs import catalogue
    from labs.models import Sandbox
    from labs.sandboxes import drop_pg_login

    logins: set[str] = set()

    def note(sender, instance, **kwargs):
        if instance.pg_login:
            logins.add(instance.pg_login)

    uid = "entry-world-sandbox-logins"
    post_save.connect(note, sender=Sandbox, weak=False, dispatch_uid=uid)
    catalogue.register(entry_lab())
    try:
        yield
    finally:
        catalogue._LABS.pop(ENTRY_LAB, None)
        post_save.disconnect(sender=Sandbox, dispatch_uid=uid)
        for login in logins:
            try:
                drop_pg_login(login)
            except Exception:  # noqa: BLE001 - the cluster may be down in a test that says so
                pass


def build_world(lab) -> World:
    from django.contrib.auth import get_user_model

    from portal.inventory import services as inv
    from portal.inventory.models import PostgresDatabase, Snapshot
    from portal.mua.lab import seed_mua
    from protection.jobs import runner as jobs
    from protection.backups import services as backups
    from protection.deletion import services as deletion
    from protection.policies.services import Retention
    from security import clock, mua
    from security import services as security_services
    from security.models import Alert, RoleDefinition
    from tests.protection._backups_fixtures import sample_files
    from tests.protection._protection_fixtures import protect, spec
    from vaults import services as vault_services

    t = lab.trainer
    account = inv.create_storage_account(t, resource_group=lab.lab_group, name="saentryhns", region=lab.region)
    for name in ("documents", "images"):
        inv.create_container(t, account, name=name)
    documents = account.containers.get(name="documents")
    inv.upload_blobs(t, documents, [inv.Upload(n, io.BytesIO(d)) for n, d in sample_files(7, count=2, size=2000).items()])
    flat = inv.create_storage_account(t, resource_group=lab.lab_group, name="saentryflat", region=lab.region,
                                      hierarchical_namespace=False)
    inv.create_container(t, flat, name="archive")
    san = inv.create_elastic_san(t, resource_group=lab.lab_group, name="esan-entry", region=lab.region)
    group = inv.create_volume_group(t, san, name="vg-entry")
    volumes = [inv.create_volume(t, group, name=n, size_gib=1) for n in ("vol-a", "vol-b")]
    server = inv.create_postgres_server(t, resource_group=lab.lab_group, name="pg-entry", region=lab.region,
                                        host="127.0.0.1", admin_user="postgres")
    # Discovery needs a live server; the row it would make is enough here (test setup, not a path).
    database = PostgresDatabase.objects.create(server=server, name="sales", discovered_at=clock.now())

    from protection import datasource_types
    from protection.policies import services as policy_services

    vault = vault_services.create_vault(t, name="bv-entry", region=lab.region, resource_group=lab.lab_group)
    # The vault's private endpoint, before anything is protected (a vault's first endpoint needs that).
    from tests.vaults._network_fixtures import make_vnet
    from vaults.networking import services as networking

    pe_subnet = make_vnet(lab, name="vnet-entry-pe", prefix="10.91.0.0/16", subnet_prefix="10.91.1.0/24")
    pe_connection = networking.create_private_endpoint(t, name="pe-entry", resource_group=lab.lab_group, vault=vault,
                                                       subnet=pe_subnet, integrate_dns=True, tags={})

    def policy(kind, name, **kw):
        return policy_services.create_policy(t, vault=vault, name=name, datasource_type=kind, spec=spec(kind, **kw))

    adls_policy = policy(datasource_types.ADLS, "adls-7d", default=Retention(7, "Days"))
    policy(datasource_types.ADLS, "adls-30d", default=Retention(30, "Days"))
    esan_policy = policy(datasource_types.ELASTIC_SAN, "esan-daily")
    pg_policy = policy(datasource_types.POSTGRES_FLEX, "pg-weekly")

    account2 = inv.create_storage_account(t, resource_group=lab.lab_group, name="saentryhns2", region=lab.region)
    inv.create_container(t, account2, name="reports")
    account3 = inv.create_storage_account(t, resource_group=lab.lab_group, name="saentryhns3", region=lab.region)
    inv.create_container(t, account3, name="logs")
    from protection import readiness
    from protection.instances import services as instance_services

    instance_services.assign_missing_roles(t, vault=vault, level=readiness.SCOPE_RESOURCE, datasources=[
        readiness.Datasource(datasource_types.ADLS, account2.resource_id, account2.name)])
    instance = protect(lab, vault, adls_policy, account, name="bi-entry")
    point = backups.backup_now(t, instance, retention_rule="Default")
    point = jobs.run(point.pk).recovery_point
    volume_instance = protect(lab, vault, esan_policy, volumes[0], name="bi-entry-vol")
    inv.write_sample_data_now(t, volumes[0])
    volume_point = jobs.run(backups.backup_now(t, volume_instance, retention_rule="Default").pk).recovery_point
    snapshot = Snapshot.objects.get(resource_id__iexact=volume_point.snapshot_resource_id)
    from protection.restores import readiness as restore_readiness
    from protection.restores import services as restore_services
    from protection.restores import targets

    restore_target = inv.create_storage_account(t, resource_group=lab.target_group, name="saentrytarget", region=lab.region)
    restore_services.assign_restore_roles(t, point, targets.AdlsTarget(restore_target.resource_id, True),
                                          restore_readiness.SCOPE_RESOURCE)
    soft_deleted = protect(lab, vault, pg_policy, server, name="bi-entry-pg")
    jobs.run(deletion.delete_backup_data(t, soft_deleted, confirm_name="bi-entry-pg").pk)
    soft_deleted.refresh_from_db()

    guard = seed_mua(lab)
    backup_admin = lab.personas["backup-admin"].principal
    expired = mua.request_access(backup_admin, guard, justification="an earlier drill", hours=1)
    mua.approve_request(lab.personas["security-admin"].principal, expired, comment="ok")
    alert = security_services.raise_alert(name="Backup Failure", category=Alert.Category.JOBS,
                                          severity=Alert.Severity.SEV1, resource_id=instance.resource_id,
                                          description="A test alert.")
    assignment = security_services.assign_role(t, assignee=lab.personas["reader"].principal,
                                               role=RoleDefinition.objects.get(name="Backup Reader"),
                                               scope=vault.resource_id)
    from portal import services as portal_services

    empty_group = portal_services.create_resource_group(t, subscription=lab.lab_subscription, name="rg-entry-empty",
                                                        region=lab.region)

    # Time passes: the point is past its expiry, the soft-deleted instance past its purge, the grant ended.
    security_services.move_lab_clock(t, forward=dt.timedelta(days=15))
    pending = mua.request_access(backup_admin, guard, justification="drill", hours=1)
    queued = backups.backup_now(t, instance, retention_rule="Default")  # not run: stays queued
    assert clock.now() > point.expiry_time and clock.now() > soft_deleted.scheduled_purge_at
    admin_user = get_user_model().objects.create_superuser("entry-admin", "admin@contoso.test", "x" * 12)
    # The system's own roles exist from the first scheduled run on (their bootstrap is logged, not guarded).
    from protection.system_access import ensure_system_access, ensure_verify_access

    ensure_system_access()
    ensure_verify_access()
    # A second vault protected by the Resource Guard (its link is a row the admin test needs).
    mua_vault = vault_services.create_vault(backup_admin, name="bv-entry-mua", region=lab.region,
                                            resource_group=lab.lab_group)
    mua.link_resource_guard(backup_admin, mua_vault, guard_id=guard.resource_id, region=lab.region.pk)
    # The demo trainee starts the entry lab (`entry_lab_registered` offers it): a sandbox of their own.
    from labs import services as lab_services

    lab_run = lab_services.start_lab(lab.trainee, ENTRY_LAB, run_jobs_inline=True)
    # Networking: a VNet with a subnet in use (by a storage account) and a free one, a linked zone with a record.
    vnet = inv.create_virtual_network(t, resource_group=lab.lab_group, name="vnet-entry", region=lab.region,
                                      address_prefixes="10.20.0.0/16", subnet_name="snet-entry",
                                      subnet_prefix="10.20.1.0/24")
    free_subnet = inv.add_subnet(t, vnet, name="snet-free", address_prefix="10.20.2.0/25")
    inv.set_datasource_network(t, account2, vnet.subnets.get(name="snet-entry"))
    zone = inv.create_private_dns_zone(t, resource_group=lab.lab_group, name="privatelink.dfs.core.windows.net")
    record = inv.add_a_record(t, zone, name="saentryhns2", ip="10.20.2.4")
    link = inv.add_vnet_link(t, zone, name="link-entry", virtual_network=vnet)
    from security import applications

    app = applications.create_application(t, "app-entry")
    app_secret, _ = applications.add_client_secret(t, app, description="entry")
    return World(lab, None, vault, adls_policy, esan_policy, pg_policy, instance, point, volume_instance,
                 volume_point, snapshot, soft_deleted, queued, guard, pending, alert, assignment, empty_group,
                 database, documents, admin_user, account=account, san=san, volume_group=group, volume=volumes[1],
                 server=server, account2=account2, account3=account3, restore_target=restore_target,
                 trainee=lab.trainee, lab_run=lab_run, pe_subnet=pe_subnet, pe_connection=pe_connection,
                 vnet=vnet, subnet=free_subnet, dns_zone=zone, dns_record=record, dns_link=link, app=app,
                 app_secret=app_secret, disk=_entry_disk(lab))


def _entry_disk(lab):
    from portal.inventory.disks import services as disks

    return disks.create_disk(lab.trainer, resource_group=lab.lab_group, name="disk-entry", region=lab.region, size_gib=1)


def add_class(w: World) -> World:
    """The trainer creates a class of two trainees (one pair) doing the entry lab: the class pages' world."""
    from labs import classes

    w.lab_class = classes.create_class(w.lab.trainer, name="Entry class", labs=[ENTRY_LAB], trainees=2).lab_class
    return w


def add_archive_work(w: World) -> dict:
    """The archive tier's scheduled work (`protection.restores.rehydration.settle`, run by the retention task):
    a PostgreSQL instance whose policy tiers Default to archive after 3 months, with three points — one the
    tiering rule moves now, one archived whose rehydrated copy's duration has ended, one archived and rehydrated
    whose Rehydrate job waits to start the person's restore. The points are rows as the Tiering and Rehydrate
    jobs leave them (their engine data is what tests/protection/test_archive_tier.py proves); the proof only
    needs each piece of work to reach its guarded operation. Returns {"due", "ended", "pending"}: the points."""
    from portal.inventory import services as inv
    from portal.inventory.models import PostgresDatabase
    from protection import datasource_types
    from protection.models import Job, JobCategory, JobOperation, JobStatus, RecoveryPoint
    from protection.policies import services as policy_services
    from protection.policies.services import Retention, Tiering
    from protection.restores import targets
    from security import clock
    from tests.protection._protection_fixtures import protect, spec

    lab, t, pg = w.lab, w.lab.trainer, datasource_types.POSTGRES_FLEX
    server = inv.create_postgres_server(t, resource_group=lab.lab_group, name="pg-entry-arch", region=lab.region,
                                        host="127.0.0.1", admin_user="postgres")
    PostgresDatabase.objects.create(server=server, name="sales", discovered_at=clock.now())
    policy = policy_services.create_policy(t, vault=w.vault, name="pg-tiered", datasource_type=pg,
                                           spec=spec(pg, default=Retention(1, "Years"),
                                                     tiering=Tiering(3, Retention(2, "Years"))))
    instance = protect(lab, w.vault, policy, server, name="bi-entry-pg-arch")
    now = clock.now()

    def point(age_days, **fields):
        time = now - dt.timedelta(days=age_days)
        return RecoveryPoint.objects.create(
            instance=instance, recovery_point_time=time, expiry_time=time + dt.timedelta(days=730),
            policy_name=policy.name, rule_name="BackupWeekly", retention_tag="Default", manifest_id=f"entry{age_days}",
            manifests=[{"item": "sales", "kind": "dump", "id": f"entry{age_days}"}], **fields)

    archived = {"datastore": RecoveryPoint.Datastore.ARCHIVE, "archived_at": now - dt.timedelta(days=20),
                "rehydration_status": "COMPLETED", "rehydration_priority": "High"}
    due = point(100, datastore=RecoveryPoint.Datastore.VAULT)
    ended = point(150, rehydration_ready_at=now - dt.timedelta(days=11), rehydration_expiry_time=now - dt.timedelta(hours=1),
                  **archived)
    pending = point(160, rehydration_ready_at=now - dt.timedelta(hours=1), rehydration_expiry_time=now + dt.timedelta(days=10),
                    **archived)
    target = targets.PgFilesTarget(w.blob_container.resource_id, "entry/")
    Job.objects.create(
        vault=w.vault, instance=instance, instance_name=instance.name, datasource_type=pg,
        datasource_name=instance.datasource_name, operation=JobOperation.REHYDRATE, category=JobCategory.RESTORE,
        status=JobStatus.COMPLETED, is_user_triggered=True, initiated_by=t, initiated_by_name="trainer",
        recovery_point=pending, start_time=now - dt.timedelta(hours=2), end_time=now - dt.timedelta(hours=2),
        parameters={"recoveryPointId": str(pending.pk), "rehydrationPriority": "High",
                    "rehydrationRetentionDuration": "P10D", "target": targets.to_json(target), "restorePending": True})
    from protection.tiering import services as tiering

    tiering.system_principal()  # the system's tiering role exists from the first scheduled run on (as ensure_system_access)
    return {"due": due, "ended": ended, "pending": pending}
