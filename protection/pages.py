"""What the protection pages share: the vault a vault blade shows and its page frame, the explained
denial before a form, and the base of the protection wizards."""

from __future__ import annotations

from django.contrib.auth.mixins import LoginRequiredMixin

from portal.shortcuts import can, get_visible_or_404
from portal.wizards import TabbedWizardView
from security import operations as ops
from security.guards import GuardDenied, evaluate
from vaults import panels
from vaults.services import security_level, vaults_for


def vault_or_404(request, pk):
    """The vault ``pk`` if the principal may read it (404 otherwise)."""
    return get_visible_or_404(request.principal, vaults_for(request.principal), ops.VAULT_READ, pk=pk)


def vault_context(request, vault, blade, **extra):
    """What the vault's page frame needs (its blades come from `vaults.panels`)."""
    principal = request.principal
    return {"vault": vault, "resource": vault, "blade": blade, "extra_blades": panels.blades(vault),
            "can_write": can(principal, ops.VAULT_WRITE, vault.resource_id),
            "can_delete": can(principal, ops.VAULT_DELETE, vault.resource_id),
            "assessment": security_level(vault), **extra}


def deny_if_rbac_refuses(decision) -> None:
    """Someone who may read but not act meets the explained denial before seeing a form; a refusal by
    another guard (a Resource Guard, an immutable vault) is previewed on the form instead."""
    if not decision.allowed and decision.guard == "RBAC":
        raise GuardDenied(decision)


def require(request, operation, target) -> None:
    """`deny_if_rbac_refuses` for what ``request.principal`` would be told about ``operation``."""
    deny_if_rbac_refuses(evaluate(request.principal, operation, target))


class ProtectionWizard(LoginRequiredMixin, TabbedWizardView):
    """A protection wizard: its own storage prefix, and the preset its entry link chose (a vault, a
    datasource type, an instance...), kept for its tabs."""

    prefix_name = ""

    def get_prefix(self, request, *args, **kwargs):
        return self.prefix_name

    @property
    def preset(self) -> dict:
        return self.storage.extra_data.get("preset", {})

    def remember_preset(self, preset: dict) -> None:
        extra = dict(self.storage.extra_data)
        extra["preset"] = preset
        self.storage.extra_data = extra
