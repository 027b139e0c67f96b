"""What upper apps add to the vault page without `vaults` importing them (DESIGN §1).

`protection` registers, in its AppConfig.ready()::

    from vaults.panels import register_blade, register_overview_tile

    register_overview_tile("jobs", "Jobs", "protection:vault_jobs_tile", order=10)
    register_overview_tile("instances", "Backup instances", "protection:vault_instances_tile", order=20)
    register_blade("instances", "Backup instances", "protection:vault_instances", order=10)

Each ``url_name`` is reversed with the vault's pk. The Overview loads every tile with htmx
(``hx-get`` on load) into ``#vault-overview-tiles``; the tile view returns its own fragment (and may
keep polling). Blades appear in the vault's left menu after Overview / Properties / Identity.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import NoReverseMatch, reverse


@dataclass(frozen=True)
class VaultPanel:
    key: str
    title: str
    url_name: str
    order: int = 100

    def url_for(self, vault) -> str:
        try:
            return reverse(self.url_name, args=[vault.pk])
        except NoReverseMatch:
            return ""


_tiles: dict[str, VaultPanel] = {}
_blades: dict[str, VaultPanel] = {}


def register_overview_tile(key: str, title: str, url_name: str, *, order: int = 100) -> None:
    _tiles[key] = VaultPanel(key, title, url_name, order)


def unregister_overview_tile(key: str) -> None:
    _tiles.pop(key, None)


def register_blade(key: str, title: str, url_name: str, *, order: int = 100) -> None:
    _blades[key] = VaultPanel(key, title, url_name, order)


def unregister_blade(key: str) -> None:
    _blades.pop(key, None)


def overview_tiles(vault) -> list[dict]:
    return [
        {"key": t.key, "title": t.title, "url": url}
        for t in sorted(_tiles.values(), key=lambda t: (t.order, t.key))
        if (url := t.url_for(vault))
    ]


def blades(vault) -> list[dict]:
    return [
        {"key": b.key, "title": b.title, "url": url}
        for b in sorted(_blades.values(), key=lambda b: (b.order, b.key))
        if (url := b.url_for(vault))
    ]
