"""The security alerts a vault's own settings raise (a lowered protection fires one on the vault)."""

from __future__ import annotations

from security import services as security_services
from security.models import Alert


def security_alert(vault, name: str, severity: str, description: str, details: dict | None = None) -> Alert:
    return security_services.raise_alert(name=name, category=Alert.Category.SECURITY, severity=severity,
                                         resource_id=vault.resource_id, description=description, details=details)
