"""Creating a Backup vault (reference §5.1): its row, its system-assigned identity and its store, as one Operation."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse

from portal import services as portal_services
from portal.models import Region, ResourceGroup, Subscription
from security import services as security_services
from security.audit import guarded
from security.guards import evaluate
from security.operations import VAULT_WRITE
from vaults import storage
from vaults.models import (
    SOFT_DELETE_DEFAULT_DAYS,
    BackupVault,
    CrossRegionRestoreState,
    CrossSubscriptionRestoreState,
    ImmutabilityState,
    SoftDeleteState,
    StorageRedundancy,
)
from vaults.services.deployment import deployment
from vaults.services.names import name_taken, resource_group_id, taken_message
from vaults.services.storage_location import LocationSpec, save_new_location
from vaults.services.soft_delete import ALWAYS_ON_ACK_REQUIRED, always_on_unacknowledged
from vaults.services.validation import validate_new_vault, validate_tags

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _NewVault:
    """What `create_vault` was asked for, and the ``change`` and ``details`` its guarded write names."""

    name: str
    region: Region
    settings: dict  # the six settings, keyed as `validate_new_vault` and the model name them
    identity_enabled: bool
    tags: dict | None
    change: dict
    details: dict
    location: LocationSpec | None = None

    @classmethod
    def of(cls, name, region, settings, identity_enabled, tags) -> _NewVault:
        change = {"setting": "create", "to": {**settings, "identity": "SystemAssigned" if identity_enabled else "None"}}
        details = {"name": name, "region": getattr(region, "name", None), **settings}
        return cls(name, region, settings, identity_enabled, tags, change, details)

    def resource_id_in(self, group_id: str) -> str:
        return f"{group_id}/providers/{BackupVault.RESOURCE_TYPE}/{self.name}"

    def validate(self) -> dict:
        """Every rule of the vault's own fields; returns the clean tags."""
        validate_new_vault(name=self.name, region=self.region, **self.settings)
        return validate_tags(self.tags)


def create_vault(
    principal,
    *,
    name: str,
    region: Region,
    resource_group: ResourceGroup | None = None,
    subscription: Subscription | None = None,
    new_resource_group_name: str = "",
    storage_redundancy: str = StorageRedundancy.GEO_REDUNDANT,
    soft_delete_state: str = SoftDeleteState.ON,
    soft_delete_retention_days: int = SOFT_DELETE_DEFAULT_DAYS,
    immutability_state: str = ImmutabilityState.DISABLED,
    cross_region_restore_state: str = CrossRegionRestoreState.DISABLED,
    cross_subscription_restore_state: str = CrossSubscriptionRestoreState.ENABLED,
    identity_enabled: bool = True,
    tags: dict | None = None,
    acknowledge_irreversible: bool = False,
    storage_location=None,
) -> BackupVault:
    """Create a Backup vault with its system-assigned identity and its store, as one Operation.

    Give ``resource_group``, or ``subscription`` and ``new_resource_group_name`` to create the
    group first (created only once the vault itself has passed validation and authorization).
    ``storage_location``: a `LocationSpec` (or its dict) for the backup storage location; Local when None.
    Nothing is half-created: the vault row, its identity and its store folder exist together or
    not at all (the store is initialised last inside the transaction and removed if it fails).
    """
    new_resource_group_name = (new_resource_group_name or "").strip()
    new = _NewVault.of((name or "").strip(), region, dict(
        storage_redundancy=storage_redundancy,
        soft_delete_state=soft_delete_state,
        soft_delete_retention_days=soft_delete_retention_days,
        immutability_state=immutability_state,
        cross_region_restore_state=cross_region_restore_state,
        cross_subscription_restore_state=cross_subscription_restore_state,
    ), identity_enabled, tags)
    location = LocationSpec.of(storage_location)
    if location.is_s3:
        new.change["to"]["storageLocation"] = new.details["storageLocation"] = location.summary()
    new = _NewVault(new.name, new.region, new.settings, new.identity_enabled, new.tags, new.change, new.details, location)
    if resource_group is None and not (subscription is not None and new_resource_group_name):
        raise ValidationError({"resource_group": "Select a resource group, or create a new one."})
    if always_on_unacknowledged(None, soft_delete_state, acknowledge_irreversible):
        raise ValidationError({"acknowledge_irreversible": ALWAYS_ON_ACK_REQUIRED})
    target_id = new.resource_id_in(resource_group_id(resource_group, subscription, new_resource_group_name))
    with deployment(principal, f"Create Backup vault '{new.name}'", resource_id=target_id) as operation:
        if resource_group is None:
            resource_group = _create_resource_group(principal, new, subscription, new_resource_group_name, target_id)
        vault = _create_in(principal, new, resource_group)
    portal_services.finish_operation(
        operation,
        succeeded=True,
        message=f"Backup vault '{vault.name}' was created in resource group '{resource_group.name}'.",
        link=reverse("vaults:vault_detail", args=[vault.pk]),
    )
    return vault


def _create_resource_group(principal, new: _NewVault, subscription, group_name: str, target_id: str):
    """The vault's new resource group. Everything about the vault is checked before the group exists,
    so a refused or invalid vault does not leave an empty resource group behind."""
    new.validate()
    if not evaluate(principal, VAULT_WRITE, target_id, new.change).allowed:
        with guarded(principal, VAULT_WRITE, target_id, change=new.change, details=new.details):
            pass  # logs the refusal and raises GuardDenied
    try:
        return portal_services.create_resource_group(principal, subscription=subscription, name=group_name,
                                                     region=new.region)
    except ValidationError as exc:  # its "name" is the group's, not the vault's
        messages = exc.message_dict.get("name", exc.messages) if hasattr(exc, "error_dict") else exc.messages
        raise ValidationError({"new_resource_group_name": messages}) from None


def _create_in(principal, new: _NewVault, resource_group) -> BackupVault:
    """The guarded write: the row, its identity, then its store (removed again if anything fails)."""
    target_id = new.resource_id_in(resource_group.resource_id)
    store_owner = None
    try:
        with guarded(principal, VAULT_WRITE, target_id, change=new.change, details=new.details) as op:
            vault = _save_row(principal, new, resource_group)
            save_new_location(vault, new.location)
            if new.identity_enabled:
                vault.identity = security_services.create_managed_identity(vault.resource_id, vault.name)
            # The store is made last, so every check above has passed; if the transaction still
            # fails after this point the except-branch below removes the folder.
            store_owner = vault
            vault.store_id = storage.create_store(vault)
            vault.save(update_fields=["identity", "store_id"])
            op.result_scope = vault.resource_id
            op.details["storeId"] = vault.store_id
            if vault.identity_id:
                op.details["principalId"] = str(vault.identity_id)
    except BaseException:
        if store_owner is not None:
            _remove_store_of_failed(store_owner, target_id)
        raise
    return vault


def _save_row(principal, new: _NewVault, resource_group) -> BackupVault:
    clean_tags = new.validate()
    if name_taken(resource_group, new.name):
        raise ValidationError({"name": taken_message(new.name, resource_group.name)})
    soft_delete_on = new.settings["soft_delete_state"] != SoftDeleteState.OFF
    vault = BackupVault(
        name=new.name,
        resource_group=resource_group,
        region=new.region,
        tags=clean_tags,
        soft_delete_retention_days=(
            int(new.settings["soft_delete_retention_days"]) if soft_delete_on else SOFT_DELETE_DEFAULT_DAYS
        ),
        created_by=principal if getattr(principal, "pk", None) else None,
        **{k: v for k, v in new.settings.items() if k != "soft_delete_retention_days"},
    )
    try:
        with transaction.atomic():
            vault.save()
    except IntegrityError:  # a concurrent create won the unique (group, lower(name)) race
        raise ValidationError({"name": taken_message(new.name, resource_group.name)}) from None
    return vault


def _remove_store_of_failed(vault, target_id: str) -> None:
    try:
        storage.destroy_store(vault)
    except Exception:  # keep the original error; the folder is logged for clean-up
        logger.exception("Could not remove the store of the failed vault %s", target_id)
