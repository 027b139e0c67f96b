"""The frame every vault page shares: the vault (or 404) and what its header and left menu need.

`vaults`' own blades and the ones upper apps add through `vaults.panels` build their context here::

    from vaults.pages import vault_or_404, vault_page_context

    vault = vault_or_404(request, pk)
    return render(request, "...", vault_page_context(request, vault, "jobs", rows=rows))
"""

from __future__ import annotations

from portal.shortcuts import can, get_visible_or_404
from security.operations import VAULT_DELETE, VAULT_READ, VAULT_WRITE
from vaults import panels, services
from vaults.models import BackupVault


def vault_or_404(request, pk) -> BackupVault:
    """The vault, when the principal may read it; a vault they may not read is a 404."""
    return get_visible_or_404(request.principal, services.vaults_for(request.principal), VAULT_READ, pk=pk)


def _secondary_storage_note(vault) -> str:
    """A geo-redundant vault's secondary copy on storage that is not apart from the primary's (lab mode's
    default): what the Overview and Properties say ('' when the secondary root is configured apart)."""
    from vaults.storage import secondary_root, secondary_root_problem

    if not vault.is_geo_redundant or vault.secondary_region is None:
        return ""
    kind, _text = secondary_root_problem()
    if not kind:
        return ""
    return (f"The copy in the secondary region is kept in {secondary_root()} on this machine, beside the primary's "
            "store. A real deployment needs separate storage: set STRONGROOM_SECONDARY_ROOT to another disk or host.")


def vault_frame(request, vault, blade: str, **extra) -> dict:
    """What the vault's page frame needs: its blades (from `vaults.panels`), the commands the principal
    may use, and the security level; ``extra`` adds the blade's own. The blades upper apps serve
    (`protection.pages.vault_context`) build on it."""
    principal = request.principal
    return {
        "vault": vault,
        "resource": vault,
        "blade": blade,
        "extra_blades": panels.blades(vault),
        "can_write": can(principal, VAULT_WRITE, vault.resource_id),
        "can_delete": can(principal, VAULT_DELETE, vault.resource_id),
        "assessment": services.security_level(vault),
        **extra,
    }


def vault_page_context(request, vault, blade: str, **extra) -> dict:
    """`vault_frame` for `vaults`' own blades, with the note on where a geo-redundant vault's secondary
    copy is kept (Overview and Properties show it)."""
    return vault_frame(request, vault, blade, **{"secondary_storage_note": _secondary_storage_note(vault), **extra})
