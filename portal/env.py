"""Typed readers for settings that come from environment variables.

Each reader rejects values it does not understand instead of guessing, so a typo in a
deployment fails loudly at start-up rather than silently running with a default.
"""

import base64
import binascii
import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}.")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {raw!r}.") from None


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_list(name: str, default: list[str] | None = None, sep: str = ",") -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default or [])
    return [part.strip() for part in raw.split(sep) if part.strip()]


def env_choice(name: str, choices: tuple[str, ...], default: str) -> str:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    word = raw.strip().lower()
    if word not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, not {raw!r}.")
    return word


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` (0700); an existing folder readable by others is narrowed to its owner."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)


def ensure_private_file(path: Path) -> None:
    """Create ``path`` empty (0600) if it is missing; narrow an existing one to its owner."""
    ensure_private_dir(path.parent)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)


def check_master_key(value: str, *, generated: bool = False) -> str | None:
    """What is wrong with a master key, or None: it must be 32 random bytes, written as 64 hex digits or in
    base64. A key Strongroom generated itself before keys were hex (48 bytes, base64url) is still taken."""
    raw = None
    text = value.strip()
    if len(text) == 64:
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raw = None
    if raw is None:
        try:
            raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_" if ("-" in text or "_" in text) else None,
                                   validate=True)
        except (binascii.Error, ValueError):
            raw = None
    if raw is None or not (len(raw) == 32 or (generated and len(raw) >= 32)):
        return ("must be 32 random bytes, written as 64 hex digits or in base64, e.g. the output of "
                "`python -c 'import secrets; print(secrets.token_hex(32))'`")
    if len(set(raw)) < 16:  # 32 random bytes have about 30 distinct values; this is a pattern, not a key
        return "does not look random (too few distinct bytes); generate it with `python -c 'import secrets; print(secrets.token_hex(32))'`"
    return None


def env_secret(name: str, *, generate: bool, generated_file: Path, validate=None, generator=None) -> str:
    """Read a secret from NAME or NAME_FILE.

    In lab mode (``generate``) with nothing configured, a random secret is generated once into
    ``generated_file`` (mode 0600) so a fresh checkout runs. In production the secret is mandatory and a
    missing, empty or placeholder value is refused; ``validate(value)`` may refuse it too, with a reason.
    """
    value = os.environ.get(name)
    file_name = os.environ.get(f"{name}_FILE")
    if value is None and file_name:
        try:
            value = Path(file_name).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE names {file_name!r}, which cannot be read: {exc.strerror}.") from None
    if value:
        if value.lower() in {"change-me", "changeme", "secret", "---"}:
            raise ImproperlyConfigured(f"{name} is a placeholder; set a long random value.")
        problem = validate(value) if validate else None
        if problem:
            raise ImproperlyConfigured(f"{name} {problem}.")
        return value
    if not generate:
        raise ImproperlyConfigured(
            f"{name} is required in production mode. Set {name} (or {name}_FILE pointing at a "
            f"file that holds it) to a long random value, e.g. the output of "
            f"`python -c 'import secrets; print(secrets.token_hex(32))'`."
        )
    ensure_private_dir(generated_file.parent)
    if not generated_file.exists():
        fd = os.open(generated_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(generator() if generator else secrets.token_urlsafe(48))
    value = generated_file.read_text().strip()
    problem = validate(value, generated=True) if validate else None
    if problem:
        raise ImproperlyConfigured(f"The generated {name} in {generated_file} {problem}; delete the file to make a new one "
                                   f"only if nothing was encrypted with it yet.")
    return value
