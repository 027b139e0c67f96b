"""The "what would happen if I…" preview of a guarded button (DESIGN §7, issue 10).

The same `security.guards.evaluate` a service asks before acting, asked while the page renders, so a
trainee sees *before* the click which guard would stop them and why::

    {% load guard_preview %}
    {% guard_preview request.principal "Microsoft.DataProtection/backupVaults/backupInstances/delete" instance change=delete_change label="Delete backup data" %}
    {% guard_preview request.principal op vault critical_operation=reduce_op setting="softDelete" compact=True %}
    {% guard_decision request.principal op instance as decision %}

``change`` (a dict) and any other keyword (``critical_operation=...``, ``setting=...``) make the
``change`` the guards judge. ``guard_preview`` renders nothing when the operation would be allowed;
otherwise a callout naming the guard, its reason, what would lift it and — for a Resource Guard —
**Request access**. ``compact=True`` renders a short badge whose title holds the reason (for command
bars). ``skip_rbac=True`` says nothing about an RBAC refusal (pages that already hide or disable the
button for that).
"""

from __future__ import annotations

from django import template
from django.template.loader import render_to_string

from security.guards import evaluate

register = template.Library()

_OPTIONS = ("label", "compact", "skip_rbac", "next_url", "element_id")


def _decide(principal, operation, target, kwargs):
    change = dict(kwargs.pop("change", None) or {})
    for key in list(kwargs):
        if key not in _OPTIONS:
            change[key] = kwargs.pop(key)
    if principal is None or target in (None, ""):
        return None
    return evaluate(principal, operation, target, change)


@register.simple_tag
def guard_decision(principal, operation, target, **kwargs):
    """The Decision itself, for templates that branch on it (``{% guard_decision ... as d %}``)."""
    return _decide(principal, operation, target, kwargs)


@register.simple_tag(takes_context=True)
def guard_preview(context, principal, operation, target, **kwargs):
    decision = _decide(principal, operation, target, kwargs)
    if decision is None or decision.allowed:
        return ""
    if kwargs.get("skip_rbac") and decision.guard == "RBAC":
        return ""
    request = context.get("request")
    extra = decision.refusal.extra if decision.refusal else {}
    next_url = kwargs.get("next_url") or (request.get_full_path() if request is not None else "/")
    return render_to_string("portal/_guard_preview.html", {
        "decision": decision,
        "extra": extra,
        "label": kwargs.get("label") or "",
        "compact": bool(kwargs.get("compact")),
        "element_id": kwargs.get("element_id") or "",
        "next_url": next_url,
        "request_access": decision.guard == "MUA" and bool(extra.get("resource_guard_pk")),
    }, request=request)


@register.filter
def get_item(mapping, key):
    """``{{ refusals|get_item:policy_pk }}``: a per-choice preview the view computed (None when absent)."""
    if not mapping:
        return None
    return mapping.get(str(key))
