"""A trainee's sandbox: their own subscription and resource groups, seeded through the services with real
data (a storage account with containers and blobs, an Elastic SAN volume with written extents, a
PostgreSQL database on the lab cluster under a login of the sandbox's own), and the roles the labs need.

Seeding is done by the system principal holding the "Strongroom Lab Sandbox Provisioner" role (lab mode
only), so every write is guarded and in the activity log. It is all or nothing: what was made is undone
when a later part fails (PostgreSQL down, a full disk), and the caller gets the reason.
"""

from __future__ import annotations

import io
import logging
import os
import random
import secrets
import shutil
import string
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from psycopg import sql

from labs.models import Sandbox
from portal import services as portal_services
from portal.inventory import postgres
from portal.inventory import services as inventory
from portal.inventory.lab import POSTGRES_HOST, POSTGRES_PORT, POSTGRES_USER, sample_text
from portal.inventory.models import ElasticSan, data_root, PostgresDatabase, PostgresServer, StorageAccount, Volume
from portal.lab import LAB_REGION
from portal.models import Region, ResourceGroup, Subscription
from protection.system_access import SystemRole, ensure_system_role
from security import clock, conditions, roles
from security import operations as ops
from security import services as security_services
from security.models import Principal, RoleDefinition

logger = logging.getLogger(__name__)

PROVISIONER_ROLE = SystemRole(
    "Strongroom Lab Sandbox Provisioner",
    (
        ops.SUBSCRIPTION_READ, ops.SUBSCRIPTION_WRITE,
        ops.RESOURCE_GROUP_READ, ops.RESOURCE_GROUP_WRITE, ops.RESOURCE_GROUP_DELETE,
        ops.ROLE_ASSIGNMENT_READ, ops.ROLE_ASSIGNMENT_WRITE, ops.ROLE_ASSIGNMENT_DELETE,
        ops.STORAGE_ACCOUNT_READ, ops.STORAGE_ACCOUNT_WRITE, ops.STORAGE_ACCOUNT_DELETE,
        ops.CONTAINER_READ, ops.CONTAINER_WRITE, ops.CONTAINER_DELETE,
        ops.ELASTIC_SAN_READ, ops.ELASTIC_SAN_WRITE, ops.ELASTIC_SAN_DELETE,
        ops.VOLUME_GROUP_READ, ops.VOLUME_GROUP_WRITE, ops.VOLUME_GROUP_DELETE,
        ops.VOLUME_READ, ops.VOLUME_WRITE, ops.VOLUME_DELETE,
        ops.SNAPSHOT_READ, ops.SNAPSHOT_DELETE,
        ops.POSTGRES_READ, ops.POSTGRES_WRITE, ops.POSTGRES_DELETE,
        ops.POSTGRES_DATABASE_READ, ops.POSTGRES_DATABASE_WRITE, ops.POSTGRES_DATABASE_DELETE,
        ops.GUARD_READ, ops.GUARD_WRITE, ops.GUARD_DELETE,
        ops.VAULT_READ, ops.VAULT_WRITE, ops.VAULT_DELETE, ops.POLICY_READ, ops.POLICY_DELETE,
        ops.INSTANCE_READ, ops.INSTANCE_DELETE, ops.STOP_PROTECTION, ops.SUSPEND_BACKUPS, ops.PROXY_READ, ops.PROXY_DELETE,
        ops.DELETED_INSTANCE_READ, ops.PURGE, ops.JOB_READ, ops.RECOVERY_POINT_READ,
        # a trainee's own networks, taken down with the sandbox
        ops.VNET_READ, ops.VNET_DELETE, ops.SUBNET_READ, ops.SUBNET_DELETE, ops.DNS_ZONE_READ, ops.DNS_ZONE_DELETE,
        ops.DNS_RECORD_READ, ops.DNS_LINK_READ, ops.PRIVATE_ENDPOINT_READ, ops.PRIVATE_ENDPOINT_DELETE,
        # the app registrations a trainee made for the sandbox (labs.teardown.sandbox_apps)
        ops.APPLICATION_READ, ops.APPLICATION_DELETE,
        # a trainee's managed disks
        ops.DISK_READ, ops.DISK_DELETE,
    ),
    "Held by the Strongroom system principal only, in lab mode: creates training sandboxes (subscription, "
    "resource groups, sample data, the trainee's roles) and takes them down again when the guards allow it. "
    "Do not assign it to people.",
    "Strongroom: training sandboxes",
    data_actions=(ops.BLOB_READ, ops.BLOB_WRITE, ops.BLOB_DELETE),
)

CODE_ALPHABET = string.ascii_lowercase + string.digits
CODE_LENGTH = 6


def provisioner() -> Principal:
    return ensure_system_role(PROVISIONER_ROLE)


@dataclass(frozen=True)
class SandboxNames:
    """Every name in a sandbox follows from its code: the labs' instructions and checks use these."""

    code: str

    @property
    def subscription(self) -> str:
        return f"Training sandbox {self.code}"

    @property
    def backup_group(self) -> str:
        return f"rg-lab-{self.code}"

    @property
    def restore_group(self) -> str:
        return f"rg-restore-{self.code}"

    @property
    def security_group(self) -> str:
        return f"rg-security-{self.code}"

    @property
    def source_account(self) -> str:
        return f"sbx{self.code}src"

    @property
    def target_account(self) -> str:
        return f"sbx{self.code}dst"

    @property
    def elastic_san(self) -> str:
        return f"esan-{self.code}"

    volume_group = "vg-lab"
    volume = "vol-data"

    @property
    def pg_server(self) -> str:
        return f"pg-{self.code}"

    @property
    def pg_login(self) -> str:
        return f"sbx_{self.code}"

    @property
    def pg_database(self) -> str:
        return f"sbx_{self.code}_sales"

    @property
    def security_admin(self) -> str:
        return f"sbx-{self.code}-security"

    # What a script needs besides the names (the SDK lab's instructions): ids that are not derived from the code.
    @property
    def tenant_id(self) -> str:
        from portal.api import tokens

        return tokens.tenant_id()

    @property
    def subscription_id(self) -> str:
        found = Subscription.objects.filter(display_name=self.subscription).values_list("subscription_id", flat=True)
        return str(found.first() or "<your sandbox's subscription id>")

    @property
    def source_account_id(self) -> str:
        found = StorageAccount.objects.filter(name=self.source_account).values_list("resource_id", flat=True)
        return found.first() or "<the resource id of the storage account>"

    @property
    def api_base_url(self) -> str:
        """Where `make run` serves the ARM API over HTTPS (STRONGROOM_API_PORT, 8443 by default)."""
        return f"https://127.0.0.1:{os.environ.get('STRONGROOM_API_PORT') or 8443}"


class SandboxWorld:
    """A sandbox's resources, looked up from the inventory by their names (None when gone)."""

    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox
        self.names = SandboxNames(sandbox.code)

    @cached_property
    def subscription(self) -> Subscription | None:
        return Subscription.objects.filter(display_name=self.names.subscription).first()

    def _group(self, name: str) -> ResourceGroup | None:
        return ResourceGroup.objects.filter(subscription=self.subscription, name__iexact=name).first()

    @cached_property
    def backup_group(self) -> ResourceGroup | None:
        return self._group(self.names.backup_group)

    @cached_property
    def restore_group(self) -> ResourceGroup | None:
        return self._group(self.names.restore_group)

    @cached_property
    def security_group(self) -> ResourceGroup | None:
        return self._group(self.names.security_group)

    @property
    def source_account(self) -> StorageAccount | None:
        return StorageAccount.objects.filter(name=self.names.source_account).first()

    @property
    def target_account(self) -> StorageAccount | None:
        return StorageAccount.objects.filter(name=self.names.target_account).first()

    @property
    def elastic_san(self) -> ElasticSan | None:
        return ElasticSan.objects.filter(resource_group=self.backup_group, name=self.names.elastic_san).first()

    @property
    def volume(self) -> Volume | None:
        return Volume.objects.filter(volume_group__elastic_san__resource_group=self.backup_group,
                                     volume_group__elastic_san__name=self.names.elastic_san,
                                     volume_group__name=self.names.volume_group, name=self.names.volume).first()

    @property
    def pg_server(self) -> PostgresServer | None:
        return PostgresServer.objects.filter(name=self.names.pg_server).first()

    @property
    def pg_database(self) -> PostgresDatabase | None:
        return PostgresDatabase.objects.filter(server__name=self.names.pg_server, name=self.names.pg_database).first()

    @cached_property
    def security_admin(self) -> Principal | None:
        return Principal.objects.filter(user__username=self.names.security_admin).first()

    @property
    def resource_ids(self) -> list[str]:
        """The sandbox's scopes: its subscription (everything in it lies below)."""
        return [self.subscription.resource_id] if self.subscription else []


# --- sample data -----------------------------------------------------------------------------------------

def sample_blobs(code: str) -> dict[str, list[tuple[str, bytes]]]:
    """A sandbox's blobs per container: small (about 1 MiB in all), varied, different in every sandbox."""
    rng = random.Random(f"strongroom-sandbox-{code}")
    return {
        "documents": [(f"reports/2024/q{q}/summary.md", sample_text(rng, 6_000 + q * 500)) for q in range(1, 5)]
        + [("contracts/acme-renewal.docx", rng.randbytes(90_000)), ("notes with spaces.txt", sample_text(rng, 3_000)),
           ("résumé café.txt", sample_text(rng, 2_000))],
        "images": [(f"photos/IMG_{i:04d}.raw", rng.randbytes(120_000)) for i in range(1, 5)],
        "logs": [(f"app/2024-06-{day:02d}.log", sample_text(rng, 24_000)) for day in range(1, 6)],
    }


# --- provisioning ----------------------------------------------------------------------------------------


def _new_code() -> str:
    for _ in range(20):
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        if code[0].isalpha() and not Sandbox.objects.filter(code=code).exists():
            return code
    raise RuntimeError("Could not find a free sandbox code.")


def _security_admin(names: SandboxNames) -> Principal:
    """The sandbox's built-in security admin: owns the sandbox's Resource Guard group and approves its
    requests in self-study (role-played by the trainee from the lab page; no one signs in as it)."""
    user, _ = get_user_model().objects.get_or_create(
        username=names.security_admin, defaults={"first_name": "Sam", "last_name": f"Security ({names.code})"})
    user.set_unusable_password()
    user.save(update_fields=["password"])
    return security_services.principal_for_user(user)


def assign(actor, assignee, role_name: str, scope: str, condition: dict | None = None) -> None:
    security_services.assign_role(actor, assignee=assignee, role=RoleDefinition.objects.get(name=role_name),
                                  scope=scope, description="Training sandbox", condition=condition)


def trainee_roles(world: SandboxWorld) -> list[tuple[str, str]]:
    """(role, scope) the trainee holds in their sandbox: the lab's backup admin on its two groups, a reader
    of the rest (the security group's Resource Guard belongs to the sandbox's security admin). Role Based
    Access Control Administrator carries `trainee_condition` (as the seeded lab's backup admin)."""
    grants = [(roles.READER, world.subscription.resource_id)]
    for group in (world.backup_group, world.restore_group):
        grants += [(roles.CONTRIBUTOR, group.resource_id), (roles.RBAC_ADMINISTRATOR, group.resource_id),
                   (roles.STORAGE_BLOB_DATA_CONTRIBUTOR, group.resource_id)]
    return grants


# What a trainee may assign in their sandbox: the roles a vault identity needs ("Assign missing roles") and
# Backup Contributor (for their own app's service principal, in the SDK lab), to service principals only.
TRAINEE_ASSIGNABLE_ROLES = (*roles.VAULT_IDENTITY_ROLES, roles.BACKUP_CONTRIBUTOR)


def trainee_condition(role_name: str) -> dict | None:
    """The delegation condition of a trainee's role: Role Based Access Control Administrator only lets them
    assign `TRAINEE_ASSIGNABLE_ROLES` to service principals (managed identities, their apps') only."""
    if role_name != roles.RBAC_ADMINISTRATOR:
        return None
    ids = tuple(roles.role_id(name) for name in TRAINEE_ASSIGNABLE_ROLES)
    return conditions.Condition(conditions.ALLOW_ROLES, ids, (conditions.SERVICE_PRINCIPAL,)).to_data()


def _create_pg_login(names: SandboxNames) -> tuple[str, postgres.ConnectionParams]:
    """A login of the sandbox's own on the lab cluster: LOGIN CREATEDB, no superuser (as Azure's admin)."""
    admin = cluster_admin()
    password = secrets.token_urlsafe(18)
    with postgres.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB NOSUPERUSER NOCREATEROLE PASSWORD {}").format(
            sql.Identifier(names.pg_login), sql.Literal(password)))
    return password, postgres.ConnectionParams(admin.host, admin.port, names.pg_login, password)


def cluster_admin() -> postgres.ConnectionParams:
    return postgres.ConnectionParams(
        getattr(settings, "STRONGROOM_LAB_POSTGRES_HOST", POSTGRES_HOST),
        int(getattr(settings, "STRONGROOM_LAB_POSTGRES_PORT", POSTGRES_PORT)),
        getattr(settings, "STRONGROOM_LAB_POSTGRES_USER", POSTGRES_USER),
    )


def drop_pg_login(name: str) -> None:
    """Drop the databases ``name`` owns on the lab cluster, what it still owns or was granted in the
    others, then the login (nothing orphaned). Nothing happens when the login is already gone."""
    admin = cluster_admin()
    with postgres.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name]).fetchone():
            return
        owned = [r[0] for r in conn.execute(
            "SELECT datname FROM pg_database WHERE datdba = (SELECT oid FROM pg_roles WHERE rolname = %s)", [name])]
        for database in owned:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
        # Objects or grants it has in other databases (pg_shdepend says where): DROP OWNED works per database.
        elsewhere = {r[0] for r in conn.execute(
            "SELECT DISTINCT d.datname FROM pg_shdepend s JOIN pg_database d ON d.oid = s.dbid "
            "WHERE s.refobjid = (SELECT oid FROM pg_roles WHERE rolname = %s)", [name])}
    for database in sorted(elsewhere - {admin.dbname}):
        with postgres.connect(admin.with_database(database), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
    with postgres.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def _seed_postgres(actor, world: SandboxWorld, region) -> None:
    names = world.names
    password, params = _create_pg_login(names)
    server = inventory.create_postgres_server(
        actor, resource_group=world.backup_group, name=names.pg_server, region=region, host=params.host,
        port=params.port, admin_user=names.pg_login, password=password, only_owned_databases=True)
    inventory.create_sample_database(actor, server, name=names.pg_database)
    # Only its own login may connect: another sandbox's backup can neither read nor list it.
    with postgres.connect(cluster_admin(), autocommit=True) as conn:
        conn.execute(sql.SQL("REVOKE CONNECT ON DATABASE {} FROM PUBLIC").format(sql.Identifier(names.pg_database)))
    inventory.refresh_postgres_server(actor, server)


def _seed_storage(actor, world: SandboxWorld, region, made: list[Path]) -> None:
    names = world.names
    source = inventory.create_storage_account(actor, resource_group=world.backup_group, name=names.source_account,
                                              region=region, hierarchical_namespace=True)
    made.append(source.data_path)
    target = inventory.create_storage_account(actor, resource_group=world.restore_group, name=names.target_account,
                                              region=region, hierarchical_namespace=True)
    made.append(target.data_path)
    for container_name, files in sample_blobs(names.code).items():
        container = inventory.create_container(actor, source, name=container_name)
        inventory.upload_blobs(actor, container, [inventory.Upload(n, io.BytesIO(d)) for n, d in files])


def _seed_elastic_san(actor, world: SandboxWorld, region, made: list[Path]) -> None:
    names = world.names
    san = inventory.create_elastic_san(actor, resource_group=world.backup_group, name=names.elastic_san, region=region)
    made.append(san.data_path)
    group = inventory.create_volume_group(actor, san, name=names.volume_group)
    volume = inventory.create_volume(actor, group, name=names.volume, size_gib=1)
    volume = inventory.write_sample_data_now(actor, volume)
    inventory.compute_checksum_now(actor, volume)


def provision(trainee: Principal, lab_slug: str) -> Sandbox:
    """Create and seed a sandbox for ``trainee`` (the caller has asked `evaluate` for the trainee).

    All or nothing: on any failure, whatever was made is taken down again and ValidationError says why."""
    if not settings.STRONGROOM_LAB_MODE:
        raise ValidationError("Sandboxes exist only in lab mode (STRONGROOM_MODE=lab).")
    actor = provisioner()
    region = Region.objects.get(name=LAB_REGION)
    probe = postgres.test_connection(cluster_admin())
    if not probe.ok:
        raise ValidationError(
            f"The lab's PostgreSQL cluster does not answer, so the sandbox's database cannot be made: {probe.message} "
            "Start PostgreSQL (see the README), then start the lab (or reset it) again. Nothing was created.")
    code = _new_code()
    names = SandboxNames(code)
    sandbox = Sandbox(code=code, owner=trainee, lab=lab_slug, created_at=clock.now(), pg_login=names.pg_login)
    made: list[Path] = []  # folders the rolled-back rows leave behind on a failure
    try:
        with transaction.atomic():
            subscription = portal_services.create_subscription(actor, display_name=names.subscription)
            sandbox.subscription_id = subscription.resource_id
            sandbox.save()
            for group in (names.backup_group, names.restore_group, names.security_group):
                portal_services.create_resource_group(actor, subscription=subscription, name=group, region=region)
            world = SandboxWorld(sandbox)
            security_admin = _security_admin(names)
            assign(actor, security_admin, roles.OWNER, world.security_group.resource_id)
            for role_name, scope in trainee_roles(world):
                assign(actor, trainee, role_name, scope, trainee_condition(role_name))
            _seed_storage(actor, world, region, made)
            _seed_elastic_san(actor, world, region, made)
            _seed_postgres(actor, world, region)
    except BaseException as exc:
        _undo_external(names, made)
        if isinstance(exc, ValidationError):
            raise ValidationError(f"The sandbox could not be seeded, and nothing of it was kept: "
                                  f"{' '.join(exc.messages)}") from exc
        if isinstance(exc, Exception):  # a full disk, a lost connection: said in words, not a server error
            logger.exception("Seeding the sandbox %s failed", code)
            raise ValidationError(
                f"The sandbox could not be seeded ({type(exc).__name__}: {exc}), and nothing of it was kept. "
                "Start the lab (or reset it) again; if it fails again, tell your instructor what this message says."
            ) from exc
        raise
    return sandbox


def undo_external(names: SandboxNames) -> None:
    """What a sandbox whose rows were rolled back left outside the database (by its names alone)."""
    root = data_root()
    folders = [root / "storage" / names.source_account, root / "storage" / names.target_account]
    folders += list((root / "elasticsan").glob(f"*-{names.elastic_san}"))
    _undo_external(names, folders)


def _undo_external(names: SandboxNames, made: list[Path]) -> None:
    """What a rolled-back transaction leaves outside the database: the PostgreSQL login and its databases,
    the storage accounts' and the Elastic SAN's folders."""
    try:
        drop_pg_login(names.pg_login)
    except Exception:  # noqa: BLE001 - the cluster may be the reason we are here
        logger.exception("Could not drop the PostgreSQL login %s", names.pg_login)
    root = data_root().resolve()
    for path in made:
        if path.resolve().is_relative_to(root):
            shutil.rmtree(path, ignore_errors=True)

