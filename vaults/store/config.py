"""The store's ``config`` object: its id, parameters and the secret wrapped by the platform key.

The config's fields (all but ``wrapped``) are the associated data of the wrapped secret, so a
tampered config does not open.
"""

from __future__ import annotations

import json
import os

from . import crypto
from .backend import Backend, utcnow
from .errors import IntegrityError, NotFound, StoreError

FORMAT_VERSION = 1
CONFIG = "config"


def now_iso() -> str:
    return utcnow().isoformat()


def default_cache_dir(store_id: str) -> str:
    base = os.environ.get("STRONGROOM_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "strongroom")
    return os.path.join(base, store_id)


def _config_aad(cfg: dict) -> bytes:
    body = {k: v for k, v in cfg.items() if k != "wrapped"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def refuse_existing(backend: Backend) -> None:
    """A new store goes only where there is none."""
    if backend.exists(CONFIG):
        raise StoreError(f"a store already exists at {backend.location}")


def write_config(backend: Backend, cfg: dict, platform_key: bytes, secret: bytes) -> dict:
    """Wrap ``secret`` under ``platform_key`` into ``cfg`` and store it; returns ``cfg``."""
    cfg["wrapped"] = crypto.wrap_key(platform_key, secret, _config_aad(cfg)).hex()
    backend.put(CONFIG, json.dumps(cfg, sort_keys=True, indent=1).encode())
    return cfg


def read_config(backend: Backend, platform_key: bytes) -> tuple:
    """The store's config and its unwrapped secret. Raises :class:`NotFound`, or ``KeyError_``
    for a wrong key or a tampered config."""
    try:
        cfg = json.loads(backend.get(CONFIG))
    except NotFound:
        raise NotFound(f"no store at {backend.location}") from None
    except ValueError:
        raise IntegrityError("store config is damaged") from None
    if not isinstance(cfg, dict) or cfg.get("v") != FORMAT_VERSION:
        raise IntegrityError("store config is damaged or of an unknown version")
    try:
        wrapped = bytes.fromhex(cfg["wrapped"])
    except (KeyError, ValueError, TypeError):
        raise IntegrityError("store config is damaged") from None
    return cfg, crypto.unwrap_key(platform_key, wrapped, _config_aad(cfg))


def unwrap_secret(cfg: dict, platform_key: bytes) -> bytes:
    """The secret ``cfg`` wraps (``KeyError_`` for a wrong key)."""
    return crypto.unwrap_key(platform_key, bytes.fromhex(cfg["wrapped"]), _config_aad(cfg))
