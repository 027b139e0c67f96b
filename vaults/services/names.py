"""A Backup vault's name: the naming rule and `checkNameAvailability` (reference §1.1)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.core.exceptions import ValidationError

from security.guards import GuardDenied, evaluate
from security.operations import CHECK_NAME_AVAILABILITY
from vaults.models import BackupVault

# Reference §1.1: ^[A-Za-z][-A-Za-z0-9]*[A-Za-z0-9]$, 2-50 characters.
VAULT_NAME_RE = re.compile(r"^[A-Za-z][-A-Za-z0-9]*[A-Za-z0-9]$")
VAULT_NAME_MAX = 50
NAME_RULE_MESSAGE = (
    "A Backup vault name must be 2 to 50 characters long, start with a letter, end with a letter or "
    "a digit, and contain only letters, digits and hyphens."
)


@dataclass(frozen=True)
class NameAvailability:
    available: bool
    reason: str = ""  # "Invalid" | "AlreadyExists" (the API's CheckNameAvailabilityResult)
    message: str = ""


def name_rule_error(name: str) -> str:
    """The rule's message when ``name`` breaks it, else ''."""
    if not name or len(name) < 2 or len(name) > VAULT_NAME_MAX or not VAULT_NAME_RE.match(name):
        return NAME_RULE_MESSAGE
    return ""


def name_taken(resource_group, name: str) -> bool:
    return BackupVault.objects.filter(resource_group=resource_group, name__iexact=name).exists()


def taken_message(name: str, group_name: str) -> str:
    return f"A Backup vault named '{name}' already exists in the resource group '{group_name}'. Choose another name."


def resource_group_id(resource_group=None, subscription=None, new_resource_group_name: str = "") -> str:
    """The id of the vault's resource group: an existing one, or the one still to be created."""
    if resource_group is not None:
        return resource_group.resource_id
    return f"{subscription.resource_id}/resourceGroups/{new_resource_group_name.strip()}"


def check_name_availability(principal, *, name: str, resource_group=None, subscription=None,
                            new_resource_group_name="") -> NameAvailability:
    """`checkNameAvailability`: is ``name`` valid and free in the resource group (case-insensitive)?

    Authorized by ``locations/checkNameAvailability/action`` at the resource group (for a resource
    group still to be created, at its future id). Read-only: nothing is logged.
    """
    name = (name or "").strip()
    if resource_group is None and not (subscription is not None and new_resource_group_name):
        raise ValidationError({"resource_group": "Select a resource group first."})
    scope = resource_group_id(resource_group, subscription, new_resource_group_name)
    decision = evaluate(principal, CHECK_NAME_AVAILABILITY, scope)
    if not decision.allowed:
        raise GuardDenied(decision)
    problem = name_rule_error(name)
    if problem:
        return NameAvailability(False, "Invalid", problem)
    if resource_group is not None and name_taken(resource_group, name):
        return NameAvailability(False, "AlreadyExists", taken_message(name, resource_group.name))
    return NameAvailability(True)
