"""The vault side of multi-user authorization: hooks `vaults` registers at start-up.

The Resource Guard, its links (proxies) and the MUA guard live in `security.mua`; here the vault's
security level learns whether a guard protects the vault (decision 6: Excellent needs MUA).
"""

from __future__ import annotations

from security import mua


def vault_is_mua_protected(vault) -> bool:
    return mua.is_linked(vault.resource_id)


def register_mua_hooks() -> None:
    """Called from `VaultsConfig.ready()`."""
    from vaults.services import register_mua_link_check

    register_mua_link_check(vault_is_mua_protected)
