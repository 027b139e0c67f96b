"""ARM-style scope strings: `/`, `/subscriptions/{id}`, `.../resourceGroups/{rg}`, `.../providers/...`.

Comparison is case-insensitive, as in Azure. An assignment at a scope covers the scope itself and
everything below it, and nothing that merely shares a prefix (`rg1` does not cover `rg10`).
"""

ROOT = "/"


def normalize(scope: str) -> str:
    scope = (scope or "").strip()
    if scope in ("", "/"):
        return ROOT
    return "/" + scope.strip("/")


def covers(outer: str, inner: str) -> bool:
    """True when an assignment at ``outer`` applies to ``inner``."""
    outer_n, inner_n = normalize(outer).lower(), normalize(inner).lower()
    if outer_n == ROOT:
        return True
    return inner_n == outer_n or inner_n.startswith(outer_n + "/")


def ancestors(scope: str) -> list[str]:
    """The scope and each scope above it that can hold an assignment, innermost first.

    `/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/sa/...`
    yields the resource itself, its parents, the resource group, the subscription and `/`.
    """
    scope = normalize(scope)
    if scope == ROOT:
        return [ROOT]
    parts = scope.strip("/").split("/")
    result = []
    # Scopes are name/value pairs, except "providers/{namespace}" which is not a scope alone.
    index = len(parts)
    while index > 0:
        candidate = "/" + "/".join(parts[:index])
        if parts[index - 1 : index] != ["providers"] and not (
            index >= 2 and parts[index - 2].lower() == "providers"
        ):
            result.append(candidate)
        index -= 1
    result.append(ROOT)
    # Drop entries that end on a type segment (odd length after a provider) to keep real scopes.
    return [s for s in result if _is_resource_scope(s)]


def _is_resource_scope(scope: str) -> bool:
    if scope == ROOT:
        return True
    parts = scope.strip("/").split("/")
    if "providers" not in [p.lower() for p in parts]:
        return len(parts) % 2 == 0
    provider_at = [p.lower() for p in parts].index("providers")
    rest = parts[provider_at + 2 :]  # after providers/{namespace}
    return len(rest) % 2 == 0 and len(rest) > 0


def subscription_of(scope: str) -> str | None:
    parts = normalize(scope).strip("/").split("/")
    if len(parts) >= 2 and parts[0].lower() == "subscriptions":
        return f"/subscriptions/{parts[1]}"
    return None


def resource_group_of(scope: str) -> str | None:
    parts = normalize(scope).strip("/").split("/")
    if len(parts) >= 4 and parts[0].lower() == "subscriptions" and parts[2].lower() == "resourcegroups":
        return "/" + "/".join(parts[:4])
    return None


def level_of(scope: str) -> str:
    """A human word for a scope: Root, Subscription, Resource group or Resource."""
    scope = normalize(scope)
    if scope == ROOT:
        return "Root"
    parts = scope.strip("/").split("/")
    if len(parts) == 2:
        return "Subscription"
    if len(parts) == 4 and parts[2].lower() == "resourcegroups":
        return "Resource group"
    return "Resource"
