"""Guards that `vaults` registers with `security.guards` (DESIGN §7), and the hooks they ask.

**Vault deletion rules.** A Backup vault cannot be deleted while it holds backup instances (in any
state, soft-deleted included) or backup policies. `vaults` does not know those models (they live in
`protection`, above it), so the guard asks *contents checks* that upper apps register at start-up::

    from vaults.guards import register_contents_check

    def vault_has_contents(vault) -> bool:
        return BackupInstance.objects.filter(vault=vault).exists() or ...

    register_contents_check(vault_has_contents)   # in protection's AppConfig.ready()

When any check answers yes, `evaluate(principal, VAULT_DELETE, vault)` refuses with Azure's exact
message (`VAULT_NOT_EMPTY_MESSAGE`). Guards for immutability, soft delete or MUA (issue 10) plug in
the same way, through `security.guards.register_guard`, reading the vault passed as ``target`` and
the ``change`` dict each vault service describes (see `vaults.services`).
"""

from __future__ import annotations

from typing import Callable

from security.guards import Refusal, register_guard

VAULT_DELETE = "Microsoft.DataProtection/backupVaults/delete"

DELETION_RULES_GUARD = "Vault deletion rules"
DELETION_RULES_ORDER = 50  # after RBAC (0) and the MUA / immutability / soft-delete guards

VAULT_NOT_EMPTY_CODE = "UserErrorVaultNotEmpty"
VAULT_NOT_EMPTY_MESSAGE = (
    "Cannot delete the Backup vault as there are existing backup instances or backup policies in the "
    "vault. Delete all backup instances and backup policies that are present in the vault and then try "
    "deleting the vault."
)
VAULT_NOT_EMPTY_REMEDY = (
    "Stop protection and delete the data of every backup instance (soft-deleted instances count too: "
    "wait for their purge or undelete and delete them), delete every backup policy, then delete the vault."
)

ContentsCheck = Callable[[object], bool]
_contents_checks: list[ContentsCheck] = []


def register_contents_check(check: ContentsCheck) -> None:
    """Register ``check(vault) -> bool``: True when the vault holds backup instances or policies."""
    if check not in _contents_checks:
        _contents_checks.append(check)


def unregister_contents_check(check: ContentsCheck) -> None:
    if check in _contents_checks:
        _contents_checks.remove(check)


def vault_has_contents(vault) -> bool:
    return any(check(vault) for check in list(_contents_checks))


def _vault_of(target):
    from vaults.models import BackupVault

    if isinstance(target, BackupVault):
        return target
    if isinstance(target, str):
        return BackupVault.objects.filter(resource_id__iexact=target.rstrip("/")).first()
    return None


def vault_deletion_guard(principal, operation, target, change) -> Refusal | None:
    if operation.lower() != VAULT_DELETE.lower():
        return None
    vault = _vault_of(target)
    if vault is None or not vault_has_contents(vault):
        return None
    return Refusal(
        guard=DELETION_RULES_GUARD,
        code=VAULT_NOT_EMPTY_CODE,
        reason=VAULT_NOT_EMPTY_MESSAGE,
        remedy=VAULT_NOT_EMPTY_REMEDY,
    )


def register_vault_guards() -> None:
    """Called from `VaultsConfig.ready()`."""
    register_guard(DELETION_RULES_GUARD, vault_deletion_guard, order=DELETION_RULES_ORDER)
