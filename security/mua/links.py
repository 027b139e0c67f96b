"""Linking a Resource Guard to a vault (a `ResourceGuardProxy`), and removing MUA protection.

A backup admin with Reader on the guard links it (the MUA guard checks the Reader); from then on the
guard's protected operations on that vault need the guard's approval. Linking only adds protection, so
it is not itself protected; unlinking is a mandatory protected operation.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError

from security import clock, scopes
from security.audit import guarded
from security.guards import target_scope
from security.models import Alert, Principal, ResourceGuard, ResourceGuardProxy
from security.mua.lookups import proxy_for
from security.operations import PROXY_DELETE, PROXY_WRITE, RESOURCE_GUARD_TYPE
from security.services import raise_alert


def _linkable_guard(guard_id: str, region: str, vault_id: str) -> ResourceGuard:
    """The guard to link, locked; a ValidationError on ``resource_guard_id`` says why it cannot be."""
    if not guard_id or guard_id == scopes.ROOT:
        raise ValidationError({"resource_guard_id": "Select a Resource Guard, or paste its ARM ID."})
    guard = ResourceGuard.objects.select_for_update().filter(resource_id__iexact=guard_id).first()
    if guard is None:
        raise ValidationError(
            {
                "resource_guard_id": (
                    f"No Resource Guard exists with the ID '{guard_id}'. Paste the guard's full ARM ID "
                    f"(/subscriptions/…/providers/{RESOURCE_GUARD_TYPE}/<name>)."
                )
            }
        )
    if guard.region != region:
        raise ValidationError(
            {
                "resource_guard_id": (
                    f"The Resource Guard '{guard.name}' is in region '{guard.region}' but the vault is in "
                    f"'{region}': a Resource Guard must be in the same region as the vaults it protects."
                )
            }
        )
    existing = ResourceGuardProxy.objects.select_related("guard").filter(protected_resource_id__iexact=vault_id).first()
    if existing is not None:
        raise ValidationError(
            {
                "resource_guard_id": (
                    f"This vault is already protected by the Resource Guard '{existing.guard.name}'. "
                    "Remove MUA protection first (a protected operation), then link another guard."
                )
            }
        )
    return guard


def link_resource_guard(principal, protected, *, guard_id: str, region: str) -> ResourceGuardProxy:
    """Protect a vault with a Resource Guard (``backupResourceGuardProxies/write`` on the vault).

    ``protected`` is the vault (anything with ``resource_id``), ``region`` its region name. Needs
    Reader on the guard (the MUA guard checks it); the guard must be in the vault's region.
    Linking is not itself protected: it only adds protection.
    """
    guard_id = scopes.normalize((guard_id or "").strip())
    vault_id = target_scope(protected)
    change = {"resource_guard_id": guard_id, "region": region}
    with guarded(principal, PROXY_WRITE, protected, change=change, details={"resourceGuardId": guard_id}) as op:
        guard = _linkable_guard(guard_id, region, vault_id)
        proxy = ResourceGuardProxy.objects.create(
            protected_resource_id=vault_id,
            guard=guard,
            linked_by=principal if isinstance(principal, Principal) else None,
            linked_at=clock.now(),
        )
        op.result_scope = proxy.resource_id
        op.details.update({"resourceGuard": guard.name, "vault": proxy.protected_resource_name})
    return proxy


def unlink_resource_guard(principal, protected) -> None:
    """Remove MUA protection: ``backupResourceGuardProxies/delete``, a mandatory protected operation.

    Raises the "MUA Disabled" security alert (decision 7).
    """
    vault_id = target_scope(protected)
    current = proxy_for(vault_id)
    details = {"resourceGuard": current.guard.name if current else ""}
    with guarded(principal, PROXY_DELETE, protected, details=details) as op:
        proxy = ResourceGuardProxy.objects.select_for_update().filter(protected_resource_id__iexact=vault_id).first()
        if proxy is None:
            raise ValidationError("This vault is not protected by a Resource Guard: there is nothing to remove.")
        guard_name, vault_name = proxy.guard.name, proxy.protected_resource_name
        op.result_scope = proxy.resource_id
        proxy.delete()
        raise_alert(
            name="MUA Disabled",
            category=Alert.Category.SECURITY,
            severity=Alert.Severity.SEV1,
            resource_id=vault_id,
            description=(
                f"Multi-user authorization was disabled for the Backup vault '{vault_name}' by {principal}: "
                f"the Resource Guard '{guard_name}' no longer protects its critical operations."
            ),
            details={"resourceGuard": guard_name},
        )


def remove_links_of(resource_id: str) -> list[str]:
    """Forget the MUA link of a resource being deleted. Call inside the deleting service's guarded block."""
    rows = ResourceGuardProxy.objects.select_related("guard").filter(protected_resource_id__iexact=resource_id)
    names = [p.guard.name for p in rows]
    rows.delete()
    return names
