"""Deleting a Backup vault (reference §5.2), with its identity, its role assignments, its MUA link and its store."""

from __future__ import annotations

import logging

from django.core.exceptions import ValidationError
from django.db import transaction

from portal import services as portal_services
from security import mua
from security import services as security_services
from security.audit import guarded
from security.guards import evaluate
from security.operations import VAULT_DELETE
from vaults import storage
from vaults.guards import VAULT_NOT_EMPTY_MESSAGE, vault_has_contents
from vaults.models import BackupVault
from vaults.services.deployment import deployment
from vaults.services.rows import locked

logger = logging.getLogger(__name__)


def delete_vault(principal, vault) -> None:
    """Delete an empty vault with its identity (and that identity's role assignments), the role
    assignments made on the vault, and its store.

    `evaluate` runs the "Vault deletion rules" guard first (Azure's exact message while backup
    instances or policies exist). The store folder is removed only after the transaction commits,
    so a rolled-back delete never loses data.
    """
    resource_id, name = vault.resource_id, vault.name
    with deployment(principal, f"Delete Backup vault '{name}'", resource_id=resource_id) as operation:
        with guarded(principal, VAULT_DELETE, vault, details={"name": name}):
            row = locked(vault)
            # Asked again under the row lock: contents created since the guard ran still block it.
            if vault_has_contents(row):
                raise ValidationError(VAULT_NOT_EMPTY_MESSAGE)
            security_services.remove_assignments_of_deleted_scope(
                principal, resource_id, cause="The Backup vault was deleted.")
            if row.identity_id:
                security_services.delete_managed_identity(row.identity)
            mua.remove_links_of(resource_id)  # the vault's MUA link goes with it (frees the guard)
            doomed = BackupVault(pk=row.pk, uuid=row.uuid)
            # its storage location row goes with the vault: keep it in memory so the S3 objects are removed too
            doomed._state.fields_cache["storage_location"] = storage.s3_location(row)
            row.delete()
            transaction.on_commit(lambda: _destroy_store_after_commit(doomed, resource_id))
    portal_services.finish_operation(operation, succeeded=True, message=f"Backup vault '{name}' was deleted.")


def _destroy_store_after_commit(vault, resource_id) -> None:
    try:
        storage.destroy_store(vault)
    except Exception:  # the vault is gone; a leftover folder is logged for the operator
        logger.exception("Could not remove the store folder of the deleted vault %s", resource_id)


def delete_preview(principal, vault):
    """What `delete_vault` would decide, without acting (the delete page shows it up front)."""
    return evaluate(principal, VAULT_DELETE, vault)
