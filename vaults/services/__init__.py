"""Every state change of a Backup vault, and the rules behind them (reference §1.2, §3.1–3.4, §5.1–5.2).

Each write takes the acting principal first and runs inside `security.audit.guarded`, which asks
`security.guards.evaluate` (RBAC, then whatever guards other apps registered), runs the block in one
transaction and writes the activity log. Guards see:

* ``operation``: the Azure action string. Every settings change is ``VAULT_WRITE`` (Azure authorizes
  PATCHes as ``backupVaults/write``); a change that lowers protection also names its critical
  operation in ``change["critical_operation"]`` (``...write#reduceSoftDeleteSecurity``,
  ``...write#reduceImmutabilityState``), which is what a Resource Guard protects.
* ``target``: the `BackupVault` (or, at creation, the new vault's resource id string).
* ``change``: ``{"setting": "softDelete", "from": {...}, "to": {...}, "critical_operation": ...}``.

So immutability, soft-delete and MUA guards plug in with `register_guard` alone (see `vaults.guards`).

The modules: `reads` (what a principal sees), `names` (the naming rule, checkNameAvailability),
`create`, `delete`, `soft_delete`, `immutability`, `settings` (restore options, redundancy, tags,
identity), `security_level` (decision 6), and their shared `validation`, `rows` and `deployment`.
Below, the names other apps and the pages use.
"""

from security.operations import VAULT_DELETE, VAULT_READ, VAULT_WRITE
from vaults.services.create import create_vault
from vaults.services.delete import delete_preview, delete_vault
from vaults.services.immutability import immutability_change, register_immutability_listener, update_immutability
from vaults.services.names import NAME_RULE_MESSAGE, NameAvailability, check_name_availability, name_rule_error
from vaults.services.reads import resource_groups_for_create, vaults_for
from vaults.services.security_level import (
    is_resource_guard_linked,
    register_mua_link_check,
    security_level,
    unregister_mua_link_check,
    with_resource_guard_link,
)
from vaults.services.settings import (
    mark_protected_item_added,
    mark_protection_attempted,
    set_identity_enabled,
    update_cross_region_restore,
    update_cross_subscription_restore,
    update_storage_redundancy,
    update_tags,
)
from vaults.services.soft_delete import (
    SOFT_DELETE_RETENTION_SHORTENED_ALERT,
    reduction_change,
    soft_delete_change,
    update_soft_delete,
)
from vaults.services.validation import validate_tags

__all__ = [
    "NAME_RULE_MESSAGE", "SOFT_DELETE_RETENTION_SHORTENED_ALERT", "VAULT_DELETE", "VAULT_READ", "VAULT_WRITE",
    "NameAvailability", "check_name_availability", "create_vault", "delete_preview", "delete_vault",
    "immutability_change", "is_resource_guard_linked", "mark_protected_item_added", "mark_protection_attempted",
    "name_rule_error", "reduction_change",
    "register_immutability_listener", "register_mua_link_check", "resource_groups_for_create", "security_level",
    "set_identity_enabled", "soft_delete_change", "unregister_mua_link_check", "update_cross_region_restore",
    "update_cross_subscription_restore", "update_immutability", "update_soft_delete", "update_storage_redundancy",
    "update_tags", "validate_tags", "vaults_for", "with_resource_guard_link",
]
