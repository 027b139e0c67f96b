"""Restore validation (reference §1.9 ``validateRestore``, §5.6 rules): every refusal before a byte.

`resolve(point, target, principal=None)` finds the target rows, checks every rule of the datasource
type and raises one field-keyed `ValidationError` listing every problem; each message starts with
its error code, and each `ValidationError` carries the code as ``.code``. With a ``principal`` it also
checks that the person may read the target they chose (the vault identity does the writing).

The codes from the reference: ``UserErrorTargetContainersExistOnAccount``,
``UserErrorOriginalLocationRestoreNotSupported``, ``UserErrorUnsupportedStorageAccountType``,
``UserErrorIncorrectContainersSelectedForOperation``, ``UserErrorMissingRequiredPermissions``.
Strongroom's own (the reference names no code for these rules): ``UserErrorRestoreTargetInDifferentRegion``,
``UserErrorCrossSubscriptionRestoreNotEnabled``, ``UserErrorContainerRenameRequired``,
``UserErrorInvalidRestorePrefix``, ``UserErrorTargetVolumeAlreadyExists``,
``UserErrorTargetDatabaseAlreadyExists``, ``UserErrorTargetDiskAlreadyExists``, ``UserErrorTargetFilesExist``, ``UserErrorRestoreRequestThrottled``,
``UserErrorRestoreTargetNotFound``, ``UserErrorInvalidRestoreTargetName``.
"""

from __future__ import annotations

import os
import unicodedata
from collections import defaultdict

from django.core.exceptions import ValidationError

from protection import datasource_types
from protection.restores import layout, targets

TARGET_CONTAINERS_EXIST = "UserErrorTargetContainersExistOnAccount"
TARGET_CONTAINERS_EXIST_TEXT = "The containers that are part of restore request shouldn't exist on target storage account."
ORIGINAL_LOCATION = "UserErrorOriginalLocationRestoreNotSupported"
ORIGINAL_LOCATION_TEXT = "Original location restores aren't supported for vaulted blob backup."
UNSUPPORTED_ACCOUNT = "UserErrorUnsupportedStorageAccountType"
INCORRECT_CONTAINERS = "UserErrorIncorrectContainersSelectedForOperation"
DIFFERENT_REGION = "UserErrorRestoreTargetInDifferentRegion"
CSR_DISABLED = "UserErrorCrossSubscriptionRestoreNotEnabled"
RENAME_REQUIRED = "UserErrorContainerRenameRequired"
INVALID_PREFIX = "UserErrorInvalidRestorePrefix"
VOLUME_EXISTS = "UserErrorTargetVolumeAlreadyExists"
DISK_EXISTS = "UserErrorTargetDiskAlreadyExists"
SNAPSHOT_MISSING = "UserErrorSnapshotNotFound"
DATABASE_EXISTS = "UserErrorTargetDatabaseAlreadyExists"
FILES_EXIST = "UserErrorTargetFilesExist"
THROTTLED = "UserErrorRestoreRequestThrottled"
TARGET_NOT_FOUND = "UserErrorRestoreTargetNotFound"
INVALID_NAME = "UserErrorInvalidRestoreTargetName"
MISSING_PERMISSIONS = "UserErrorMissingRequiredPermissions"
MISSING_PERMISSIONS_TEXT = "Appropriate permissions to perform the operation are missing."


class Problems:
    """Collects field-keyed problems; `raise_if_any` raises them as one ValidationError."""

    def __init__(self):
        self.by_field: dict[str, list[ValidationError]] = defaultdict(list)

    def add(self, field: str, code: str, message: str) -> None:
        self.by_field[field].append(ValidationError(f"{code}: {message}", code=code))

    def __bool__(self) -> bool:
        return bool(self.by_field)

    def raise_if_any(self) -> None:
        if self.by_field:
            raise ValidationError(dict(self.by_field))


def codes_of(exc: ValidationError) -> set[str]:
    """Every error code in a ValidationError (for tests and the Validate pane)."""
    found = set()
    if hasattr(exc, "error_dict"):
        for errors in exc.error_dict.values():
            found.update(e.code for e in errors if e.code)
    else:
        found.update(e.code for e in exc.error_list if e.code)
    return found


def _readable(principal, action: str, resource_id: str) -> bool:
    if principal is None:
        return True
    from security.rbac import authorize

    return authorize(principal, action, resource_id).allowed


def _target(rows, resource_id: str, principal, action: str, problems: Problems, field: str, choose: str):
    """The row of ``rows`` at ``resource_id`` that ``principal`` may read (``action``); otherwise the
    problem ``choose`` on ``field`` (TARGET_NOT_FOUND) is raised with those found so far."""
    row = rows.filter(resource_id__iexact=resource_id).first()
    if row is None or not _readable(principal, action, row.resource_id):
        problems.add(field, TARGET_NOT_FOUND, choose)
        problems.raise_if_any()
    return row


def _valid_name(validate, name: str, problems: Problems, field: str) -> bool:
    """``validate(name, field=field)``; its messages become an INVALID_NAME problem on ``field``."""
    try:
        validate(name, field=field)
    except ValidationError as exc:
        problems.add(field, INVALID_NAME, " ".join(exc.messages))
        return False
    return True


def _cross_subscription(point, subscription_id, problems: Problems, field: str) -> None:
    from vaults.models import CrossSubscriptionRestoreState

    vault = point.instance.vault
    vault_sub = vault.resource_group.subscription_id
    if subscription_id != vault_sub and vault.cross_subscription_restore_state != CrossSubscriptionRestoreState.ENABLED:
        problems.add(field, CSR_DISABLED,
                     f"The target is in another subscription than the vault '{vault.name}', and cross subscription "
                     f"restore is {vault.get_cross_subscription_restore_state_display().lower()} on the vault. Choose a "
                     "target in the vault's subscription, or enable Cross Subscription Restore in the vault's Properties.")


def resolve(point, target, *, principal=None, job=None) -> dict:
    """The target rows (``{"account": ..., ...}``) after every rule passed; else ValidationError.

    ``job``: the Restore job checking again on the worker (it does not count against the daily limit)."""
    instance = point.instance
    kinds = targets.kinds_for(instance.datasource_type)
    if target.kind not in kinds:
        raise ValidationError({"restore_type": f"{target.kind} is not a restore for {instance.datasource.label}."})
    if isinstance(target, targets.AdlsTarget):
        return _resolve_adls(point, target, principal)
    if isinstance(target, targets.VolumeTarget):
        return _resolve_volume(point, target, principal, job)
    if isinstance(target, targets.DiskTarget):
        return _resolve_disk(point, target, principal, job)
    if isinstance(target, targets.PgDatabaseTarget):
        return _resolve_pg_database(point, target, principal)
    return _resolve_pg_files(point, target, principal)


# --- Azure Data Lake Storage -------------------------------------------------------------------------


def normalize_prefix(prefix: str) -> str:
    """A prefix as blob names are compared (NFC); raises ValueError naming what is wrong."""
    from portal.inventory import blobs

    prefix = (prefix or "").strip()
    if not prefix:
        raise ValueError("An empty prefix: remove it, or type the start of the blob names to restore.")
    body = prefix[:-1] if prefix.endswith("/") else prefix
    try:
        blobs.validate_blob_name(body, field=None, what="Prefix")
    except ValidationError as exc:
        raise ValueError(" ".join(exc.messages)) from None
    return unicodedata.normalize("NFC", prefix)


def _resolve_adls(point, target: targets.AdlsTarget, principal) -> dict:
    from portal.inventory import naming
    from portal.inventory.models import StorageAccount
    from portal.inventory.services import STORAGE_ACCOUNT_READ

    problems = Problems()
    in_point = [p.item for p in layout.containers(point)]
    chosen = target.effective(in_point)
    if not target.all_containers:
        if not chosen:
            problems.add("containers", INCORRECT_CONTAINERS, "Select at least one container to restore.")
        if len(chosen) > targets.MAX_CONTAINERS:
            problems.add("containers", INCORRECT_CONTAINERS,
                         f"Select at most {targets.MAX_CONTAINERS} containers; {len(chosen)} are selected.")
        names = [c.name for c in chosen]
        if len(set(names)) != len(names):
            problems.add("containers", INCORRECT_CONTAINERS, "A container is selected twice.")
        absent = [n for n in names if n not in in_point]
        if absent:
            problems.add("containers", INCORRECT_CONTAINERS,
                         f"These containers are not in the recovery point: {', '.join(absent)}.")
    for choice in chosen:
        if len(choice.prefixes) > targets.MAX_PREFIXES:
            problems.add("prefixes", INVALID_PREFIX, f"Container '{choice.name}' has {len(choice.prefixes)} prefixes; "
                         f"at most {targets.MAX_PREFIXES} are allowed per container.")
        for prefix in choice.prefixes:
            try:
                normalize_prefix(prefix)
            except ValueError as exc:
                problems.add("prefixes", INVALID_PREFIX, f"Container '{choice.name}': {exc}")
        if choice.rename_to:
            try:
                naming.validate_container_name(choice.rename_to, field="rename")
            except ValidationError as exc:
                problems.add("rename", INVALID_NAME, f"'{choice.rename_to}' (new name of '{choice.name}'): "
                             + " ".join(exc.messages))
        if choice.target_name == "$web":
            problems.add("rename", RENAME_REQUIRED, "The container '$web' must be restored under a new name: "
                         "enter one in 'Restore as'.")
    targets_named = [c.target_name for c in chosen]
    if len(set(targets_named)) != len(targets_named):
        problems.add("rename", INVALID_NAME, "Two containers would be restored under the same name.")

    account = _target(StorageAccount.objects.select_related("resource_group__subscription", "region"),
                      target.account_id, principal, STORAGE_ACCOUNT_READ, problems, "target_storage_account",
                      "Choose the target storage account.")
    source_id = point.instance.datasource_resource_id
    if account.resource_id.lower() == source_id.lower():
        problems.add("target_storage_account", ORIGINAL_LOCATION, ORIGINAL_LOCATION_TEXT +
                     " Choose a different storage account than the source.")
    if not account.hierarchical_namespace:
        problems.add("target_storage_account", UNSUPPORTED_ACCOUNT,
                     f"'{account.name}' does not have hierarchical namespace enabled; restore into a storage account "
                     "with hierarchical namespace (Azure Data Lake Storage).")
    vault = point.instance.vault
    if account.region_id != point.instance.datasource_location or account.region_id != vault.region_id:
        problems.add("target_storage_account", DIFFERENT_REGION,
                     f"'{account.name}' is in {account.region_id}; the target must be in the same region as the source "
                     f"and the vault ({vault.region_id}).")
    _cross_subscription(point, account.resource_group.subscription_id, problems, "target_storage_account")
    existing = set(account.containers.values_list("name", flat=True))
    clash = [n for n in targets_named if n in existing or _folder_exists(account, n)]
    if clash:
        problems.add("target_storage_account", TARGET_CONTAINERS_EXIST,
                     f"{TARGET_CONTAINERS_EXIST_TEXT} '{account.name}' already has: {', '.join(clash)}. Choose another "
                     "account, or restore under a new name.")
    problems.raise_if_any()
    return {"account": account, "containers": chosen}


def _folder_exists(account, name: str) -> bool:
    try:
        return os.path.lexists(account.data_path / name)
    except OSError:
        return True


# --- Elastic SAN ----------------------------------------------------------------------------------------


def _resolve_volume(point, target: targets.VolumeTarget, principal, job=None) -> dict:
    from portal.inventory import naming
    from portal.inventory.models import Volume, VolumeGroup
    from portal.inventory.services import VOLUME_GROUP_READ

    problems = Problems()
    group = _target(VolumeGroup.objects.select_related("elastic_san__resource_group__subscription", "elastic_san__region"),
                    target.volume_group_id, principal, VOLUME_GROUP_READ, problems, "target_volume_group",
                    "Choose the target Elastic SAN volume group.")
    _valid_name(naming.validate_volume_name, target.volume_name, problems, "volume_name")
    if Volume.objects.filter(volume_group=group, name__iexact=target.volume_name).exists() or (
            target.volume_name and os.path.lexists(group.data_path / f"{target.volume_name}.img")):
        problems.add("volume_name", VOLUME_EXISTS,
                     f"A volume named '{target.volume_name}' already exists in volume group '{group.name}'. A restore "
                     "never overwrites a volume: choose a new name.")
    vault = point.instance.vault
    if group.elastic_san.region_id != vault.region_id:
        problems.add("target_volume_group", DIFFERENT_REGION,
                     f"'{group.elastic_san.name}' is in {group.elastic_san.region_id}; restore into an Elastic SAN in the "
                     f"vault's region ({vault.region_id}).")
    _cross_subscription(point, group.elastic_san.resource_group.subscription_id, problems, "target_volume_group")
    part = layout.volume_part(point)
    size_gib = -(-part.bytes // (1024 ** 3)) if part.bytes else 1
    san = group.elastic_san
    used = sum(v.size_gib for v in Volume.objects.filter(volume_group__elastic_san=san))
    if used + size_gib > san.total_size_tib * 1024:
        problems.add("target_volume_group", "UserErrorElasticSanCapacityExceeded",
                     f"'{san.name}' has {san.total_size_tib * 1024 - used} GiB left; the restored volume needs {size_gib} GiB.")
    limit = point.instance.datasource.restores_per_day
    if limit is not None and restores_today(point.instance, exclude=job) >= limit:
        problems.add("volume_name", THROTTLED,
                     f"{point.instance.datasource.label} allows {limit} restores per backup instance per day, and "
                     f"'{point.instance.name}' has had {limit} today. Try again after midnight (UTC).")
    problems.raise_if_any()
    return {"volume_group": group, "size_bytes": part.bytes, "size_gib": size_gib}


# --- Azure Disk -----------------------------------------------------------------------------------------


def _resolve_disk(point, target: targets.DiskTarget, principal, job=None) -> dict:
    """A new disk in a resource group the principal can see, in the vault's region (``restoreLocation``),
    under a name no disk of that group has (``UserErrorTargetDiskAlreadyExists``): never an overwrite."""
    from portal.inventory.disks import services as disks
    from portal.inventory.models import Snapshot
    from portal.models import ResourceGroup
    from security.operations import RESOURCE_GROUP_READ

    problems = Problems()
    group = _target(ResourceGroup.objects.select_related("subscription"), target.resource_group_id, principal,
                    RESOURCE_GROUP_READ, problems, "target_resource_group", "Choose the target resource group.")
    if _valid_name(disks.validate_disk_name, target.disk_name, problems, "disk_name"):
        try:
            disks.check_name_free(group, target.disk_name, field="disk_name")
        except ValidationError as exc:
            problems.add("disk_name", DISK_EXISTS, " ".join(exc.messages) + " A restore never overwrites a disk.")
    _cross_subscription(point, group.subscription_id, problems, "target_resource_group")
    if point.snapshot_resource_id and not Snapshot.objects.filter(resource_id__iexact=point.snapshot_resource_id).exists():
        problems.add("recovery_point", SNAPSHOT_MISSING,
                     f"The recovery point's snapshot {point.snapshot_resource_id.rsplit('/', 1)[-1]} was deleted or moved "
                     "from its snapshot resource group (operational-tier snapshots are outside soft delete and "
                     "immutability). Choose another recovery point.")
    part = layout.volume_part(point)
    problems.raise_if_any()
    return {"resource_group": group, "size_bytes": part.bytes, "size_gib": max(1, -(-part.bytes // (1024 ** 3)))}


def restores_today(instance, exclude=None) -> int:
    """Restores of the instance today (UTC), except those cancelled before they began (and ``exclude``)."""
    from protection.backups.services import start_of_day
    from protection.models import Job, JobOperation, JobStatus
    from security import clock

    jobs = (Job.objects.filter(instance=instance, operation=JobOperation.RESTORE, start_time__gte=start_of_day(clock.now()))
            .exclude(status=JobStatus.CANCELLED, claimed_at__isnull=True))
    if exclude is not None:
        jobs = jobs.exclude(pk=exclude.pk)
    return jobs.count()


# --- PostgreSQL -----------------------------------------------------------------------------------------


def _server(target_id, principal, problems: Problems):
    from portal.inventory.models import PostgresServer
    from portal.inventory.services import POSTGRES_READ

    return _target(PostgresServer.objects.select_related("resource_group__subscription", "region"), target_id,
                   principal, POSTGRES_READ, problems, "target_server", "Choose the target PostgreSQL server.")


def _resolve_pg_database(point, target: targets.PgDatabaseTarget, principal) -> dict:
    from portal.inventory import naming, postgres

    problems = Problems()
    dumps = {p.database: p for p in layout.databases(point)}
    if target.database not in dumps:
        problems.add("database", INCORRECT_CONTAINERS if not dumps else TARGET_NOT_FOUND,
                     f"The recovery point has no database '{target.database}'. Choose one of: "
                     f"{', '.join(sorted(dumps)) or 'none'}.")
    server = _server(target.server_id, principal, problems)
    name = target.database_name
    try:
        naming.validate_postgres_database_name(name, field="database_name")
        reason = postgres.exclusion_reason(name)
        if reason:
            problems.add("database_name", INVALID_NAME, f"'{name}' is reserved ({reason}); choose another name.")
    except ValidationError as exc:
        problems.add("database_name", INVALID_NAME, " ".join(exc.messages))
    vault = point.instance.vault
    if server.region_id != vault.region_id:
        problems.add("target_server", DIFFERENT_REGION,
                     f"'{server.name}' is in {server.region_id}; restore into a server in the vault's region ({vault.region_id}).")
    _cross_subscription(point, server.resource_group.subscription_id, problems, "target_server")
    if not problems.by_field.get("database_name"):
        exists = server.databases.filter(name=name).exists()
        if not exists:
            try:
                exists = postgres.database_exists(server.connection_params(), name)
            except postgres.psycopg.Error as exc:
                problems.add("target_server", "UserErrorPostgresConnectionFailed",
                             postgres.describe_error(exc, server.connection_params()))
        if exists:
            problems.add("database_name", DATABASE_EXISTS,
                         f"A database named '{name}' already exists on '{server.name}'. A restore never overwrites a "
                         "database: choose a new name.")
    problems.raise_if_any()
    return {"server": server, "part": dumps[target.database]}


def file_names(point, target: targets.PgFilesTarget) -> list[tuple[str, layout.Part]]:
    """(blob name, part) of each file a restore-as-files writes."""
    chosen = [p for p in layout.databases(point) if not target.database or p.database == target.database]
    glob = layout.globals_part(point)
    if glob is not None:
        chosen = [glob] + chosen
    prefix = target.file_prefix or ""
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return [(f"{prefix}{p.item}", p) for p in chosen]


def default_file_prefix(point) -> str:
    return f"{point.instance.name}/{point.recovery_point_time:%Y%m%d-%H%M%S}/"


def _resolve_pg_files(point, target: targets.PgFilesTarget, principal) -> dict:
    from portal.inventory import blobs
    from portal.inventory.models import Container
    from portal.inventory.services import CONTAINER_READ

    problems = Problems()
    dumps = {p.database for p in layout.databases(point)}
    if target.database and target.database not in dumps:
        problems.add("database", TARGET_NOT_FOUND, f"The recovery point has no database '{target.database}'.")
    container = _target(Container.objects.select_related("account__resource_group__subscription", "account__region"),
                        target.container_id, principal, CONTAINER_READ, problems, "target_container",
                        "Choose the target storage container.")
    if target.file_prefix:
        try:
            normalize_prefix(target.file_prefix)
        except ValueError as exc:
            problems.add("file_prefix", INVALID_PREFIX, str(exc))
    _cross_subscription(point, container.account.resource_group.subscription_id, problems, "target_container")
    names = []
    if not problems.by_field.get("file_prefix"):
        names = file_names(point, target)
        existing = []
        for name, _part in names:
            try:
                blobs.validate_blob_name(name, field=None)
            except ValidationError as exc:
                problems.add("file_prefix", INVALID_PREFIX, " ".join(exc.messages))
                break
            try:
                blobs.open_blob(container, name).close()
                existing.append(name)
            except (blobs.BlobNotFound, OSError):
                pass
            except Exception:  # a folder in the way, a link: it is not free either
                existing.append(name)
        if existing:
            problems.add("file_prefix", FILES_EXIST,
                         f"These files already exist in '{container.name}': {', '.join(existing)}. A restore never "
                         "overwrites files: choose another file prefix.")
    problems.raise_if_any()
    return {"container": container, "files": names}


def datasource_label(instance) -> str:
    return datasource_types.get(instance.datasource_type).label
