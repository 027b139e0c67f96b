"""Operational stores: where Elastic SAN recovery points (snapshots) keep their bytes.

In Azure an Elastic SAN recovery point is an incremental snapshot in the instance's *snapshot
resource group*, outside the vault (so vault immutability and MUA do not reach it). Strongroom keeps
one engine store per snapshot resource group, under ``STRONGROOM_DATA_ROOT/operational/<rg>``, with
its data key wrapped by the platform key like a vault store. Snapshots of every volume protected into
that resource group share it (so they deduplicate against each other).

The store is created on first use. Two workers may both find it missing at once: creation happens
under an exclusive file lock, and the loser opens what the winner made (two configs with different
secrets would make the first writer's packs unreadable).
"""

from __future__ import annotations

import fcntl
import os
import re
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

from security.crypto import platform_key


def _folder_name(resource_group) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", resource_group.name.lower()).strip(".-") or "rg"
    return f"{resource_group.pk}-{slug}"


def store_path(resource_group) -> Path:
    return Path(settings.STRONGROOM_DATA_ROOT) / "operational" / _folder_name(resource_group)


def cache_path(resource_group) -> Path:
    return Path(settings.STRONGROOM_DATA_ROOT) / "operational-cache" / _folder_name(resource_group)


@contextmanager
def _init_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(str(path.parent / f".{path.name}.init-lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def open_operational_store(resource_group, *, create: bool = True):
    """The open engine `Store` of ``resource_group``'s operational tier (close it, or use ``with``)."""
    from vaults.store import LocalBackend, Store

    path, cache = store_path(resource_group), cache_path(resource_group)
    if not (path / "config").is_file():
        if not create:
            from vaults.store import NotFound

            raise NotFound(f"no operational store for resource group {resource_group.name}")
        with _init_lock(path):
            if not (path / "config").is_file():
                store = Store.init(LocalBackend(str(path), create=True), platform_key(), cache_dir=str(cache))
                return store
    return Store.open(LocalBackend(str(path)), platform_key(), cache_dir=str(cache))


def operational_store_exists(resource_group) -> bool:
    return (store_path(resource_group) / "config").is_file()
