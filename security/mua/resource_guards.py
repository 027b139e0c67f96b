"""Resource Guard services: create, change (protected operations, description, tags, approvers), delete.

A security admin owns a Resource Guard (Backup MUA Admin on it) and is its approver.
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

from security import scopes
from security.audit import guarded
from security.models import Principal, ResourceGuard
from security.mua.rules import (
    DEFAULT_EXCLUSIONS,
    GUARD_HAS_VAULTS_MESSAGE,
    GUARD_NAME_MAX,
    GUARD_NAME_RE,
    GUARD_NAME_RULE,
    critical_operation,
)
from security.operations import GUARD_DELETE, GUARD_WRITE, RESOURCE_GUARD_TYPE
from security.services import remove_assignments_of_deleted_scope

DESCRIPTION_MAX = 1000


def _guard_id(resource_group_id: str, name: str) -> str:
    return f"{scopes.normalize(resource_group_id)}/providers/{RESOURCE_GUARD_TYPE}/{name}"


def _clean_exclusions(exclusions) -> list[str]:
    clean = []
    for action in exclusions or []:
        c = critical_operation(action)
        if c is None:
            raise ValidationError(
                {"vault_critical_operation_exclusions": f"'{action}' is not an operation a Resource Guard protects."}
            )
        if c.mandatory:
            raise ValidationError(
                {
                    "vault_critical_operation_exclusions": (
                        f"'{c.label}' is mandatory: a Resource Guard always protects it and it cannot be "
                        "disabled."
                    )
                }
            )
        if c.action not in clean:
            clean.append(c.action)
    return clean


def _clean_approvers(approvers) -> list[Principal]:
    approvers = list(approvers or [])
    for p in approvers:
        if not isinstance(p, Principal) or p.kind != Principal.Kind.USER:
            raise ValidationError({"approvers": "Approvers must be people (user accounts), not identities."})
    return approvers


def _creation_errors(target: str, resource_group_id: str, name: str, region: str, description: str) -> dict:
    errors = {}
    if not name or len(name) > GUARD_NAME_MAX or not GUARD_NAME_RE.match(name):
        errors["name"] = GUARD_NAME_RULE
    elif ResourceGuard.objects.filter(resource_id__iexact=target).exists():
        errors["name"] = (
            f"A Resource Guard named '{name}' already exists in the resource group "
            f"'{target.split('/')[4]}'. Choose another name."
        )
    if not region or not re.fullmatch(r"[a-z0-9]+", region):
        errors["region"] = "Select a region: the guard must be in the same region as the vaults it protects."
    if scopes.level_of(resource_group_id) != "Resource group":
        errors["resource_group"] = "Select a resource group."
    if len(description) > DESCRIPTION_MAX:
        errors["description"] = "Keep the description under 1,000 characters."
    return errors


def create_resource_guard(
    principal,
    *,
    resource_group_id: str,
    name: str,
    region: str,
    description: str = "",
    exclusions=None,
    approvers=(),
    tags: dict | None = None,
) -> ResourceGuard:
    """Create a Resource Guard (``resourceGuards/write`` at its new id). ``exclusions`` defaults to
    the optional operations that are off on a new guard (Restore, Change policy, Modify encryption
    settings); the mandatory ones can never be excluded."""
    name = (name or "").strip()
    description = (description or "").strip()
    exclusions = DEFAULT_EXCLUSIONS if exclusions is None else exclusions
    target = _guard_id(resource_group_id, name or "-")
    details = {"name": name, "region": region}
    with guarded(principal, GUARD_WRITE, target, details=details) as op:
        errors = _creation_errors(target, resource_group_id, name, region, description)
        if errors:
            raise ValidationError(errors)
        clean_exclusions = _clean_exclusions(exclusions)
        clean_approvers = _clean_approvers(approvers)
        guard = ResourceGuard.objects.create(
            name=name,
            resource_group_id=scopes.normalize(resource_group_id),
            region=region,
            description=description,
            tags=tags or {},
            vault_critical_operation_exclusions=clean_exclusions,
            created_by=principal if isinstance(principal, Principal) else None,
        )
        guard.approvers.set(clean_approvers)
        op.result_scope = guard.resource_id
        op.details.update(
            {
                "exclusions": clean_exclusions,
                "approvers": [p.display_name for p in clean_approvers],
                "allowAutoApprovals": not clean_approvers,
            }
        )
    return guard


def update_resource_guard(principal, guard: ResourceGuard, *, description=None, exclusions=None, tags=None):
    """Change a guard's description, protected operations (its exclusion list) or tags."""
    change = {}
    if exclusions is not None:
        change["exclusions"] = {"from": list(guard.vault_critical_operation_exclusions), "to": list(exclusions)}
    if description is not None:
        change["description"] = description
    with guarded(principal, GUARD_WRITE, guard, change=change, details=dict(change)):
        row = ResourceGuard.objects.select_for_update().get(pk=guard.pk)
        if exclusions is not None:
            row.vault_critical_operation_exclusions = _clean_exclusions(exclusions)
        if description is not None:
            description = description.strip()
            if len(description) > DESCRIPTION_MAX:
                raise ValidationError({"description": "Keep the description under 1,000 characters."})
            row.description = description
        if tags is not None:
            row.tags = dict(tags)
        row.save()
    guard.refresh_from_db()
    return guard


def set_approvers(principal, guard: ResourceGuard, approvers) -> ResourceGuard:
    """Who approves access requests on this guard. None at all: requests are approved automatically."""
    approvers = list(approvers or [])
    names = [getattr(p, "display_name", str(p)) for p in approvers]
    before = [p.display_name for p in guard.approvers.all()]
    with guarded(principal, GUARD_WRITE, guard, change={"approvers": names},
                 details={"approvers": names, "previous": before, "allowAutoApprovals": not approvers}):
        ResourceGuard.objects.select_for_update().get(pk=guard.pk)
        guard.approvers.set(_clean_approvers(approvers))
    return guard


def delete_resource_guard(principal, guard: ResourceGuard) -> None:
    """Delete a guard, with the role assignments made on it. Refused while vaults are linked."""
    with guarded(principal, GUARD_DELETE, guard, details={"name": guard.name}):
        row = ResourceGuard.objects.select_for_update().get(pk=guard.pk)
        linked = list(row.proxies.values_list("protected_resource_id", flat=True))
        if linked:
            names = ", ".join(sorted(r.rsplit("/", 1)[-1] for r in linked))
            raise ValidationError(
                f"{GUARD_HAS_VAULTS_MESSAGE} Linked vaults: {names}. Remove MUA protection from each "
                "vault first (Properties > Multi-user authorization)."
            )
        remove_assignments_of_deleted_scope(principal, row.resource_id, cause="The Resource Guard was deleted.")
        row.delete()
