"""Typed readers for settings that come from environment variables.

Each reader rejects values it does not understand instead of guessing, so a typo in a
deployment fails loudly at start-up rather than silently running with a default.
"""

import os
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


def env_secret(name: str, *, debug: bool, generated_file: Path) -> str:
    """Read a secret from NAME or NAME_FILE.

    With DEBUG on and nothing configured, a random secret is generated once into
    ``generated_file`` (mode 0600) so a fresh checkout runs. With DEBUG off the secret is
    mandatory and a missing, empty or placeholder value is refused.
    """
    value = os.environ.get(name)
    file_name = os.environ.get(f"{name}_FILE")
    if value is None and file_name:
        value = Path(file_name).read_text().strip()
    if value:
        if value.lower() in {"change-me", "changeme", "secret", "---"}:
            raise ImproperlyConfigured(f"{name} is a placeholder; set a long random value.")
        return value
    if not debug:
        raise ImproperlyConfigured(
            f"{name} is required when DEBUG is off. Set {name} (or {name}_FILE pointing at a "
            f"file that holds it) to a long random value, e.g. the output of "
            f"`python -c 'import secrets; print(secrets.token_urlsafe(48))'`."
        )
    generated_file.parent.mkdir(parents=True, exist_ok=True)
    if not generated_file.exists():
        import secrets

        fd = os.open(generated_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return generated_file.read_text().strip()
