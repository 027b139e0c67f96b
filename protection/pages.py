"""What the protection pages share: the vault a vault blade shows and its page frame, the explained
denial before a form, and the base of the protection wizards."""

from __future__ import annotations

from django.contrib.auth.mixins import LoginRequiredMixin
from django.shortcuts import redirect, render
from django.urls import reverse

from portal.shortcuts import parse_id
from portal.wizards import TabbedWizardView
from protection import datasource_types
from security.guards import GuardDenied, evaluate
from vaults.pages import vault_frame, vault_or_404  # noqa: F401 (vault_or_404: the blades here import it from this module)


# A vault blade served here has the vault (or 404) and the page frame of `vaults`' own blades.
vault_context = vault_frame


def render_list(request, template: str, table: str, context: dict):
    """A list page, or only its table (the partial ``table`` of ``template``) when htmx asks for
    it: a filter, a page change or a refresh (a boosted navigation gets the whole page)."""
    if request.htmx and not request.htmx.boosted:
        template = f"{template}#{table}"
    return render(request, template, context)


def start_page(request, form_class, template: str, wizard_url_name: str):
    """A Home start page (Datasource type, Solution → Continue): the wizard, with the type preset."""
    form = form_class(request.POST or None)
    if request.method == "POST" and form.is_valid():
        kind = datasource_types.get(form.cleaned_data["datasource_type"])
        return redirect(f"{reverse(wizard_url_name)}?type={kind.short}")
    return render(request, template, {"form": form}, status=400 if request.method == "POST" else 200)


def deny_if_rbac_refuses(decision) -> None:
    """Someone who may read but not act meets the explained denial before seeing a form; a refusal by
    another guard (a Resource Guard, an immutable vault) is previewed on the form instead."""
    if not decision.allowed and decision.guard == "RBAC":
        raise GuardDenied(decision)


def require(request, operation, target) -> None:
    """`deny_if_rbac_refuses` for what ``request.principal`` would be told about ``operation``."""
    deny_if_rbac_refuses(evaluate(request.principal, operation, target))


class ProtectionWizard(LoginRequiredMixin, TabbedWizardView):
    """A protection wizard: its own storage prefix, and the preset its entry link chose (a vault, a
    datasource type, an instance...), kept for its tabs."""

    prefix_name = ""
    subtitle = "Azure Backup"

    def get_prefix(self, request, *args, **kwargs):
        return self.prefix_name

    @staticmethod
    def vault_and_type(request) -> dict:
        """The preset of a link with ``?vault=<pk>`` and ``?type=<short>`` (either may be missing)."""
        preset = {}
        if vault := parse_id(request.GET.get("vault")):
            preset["vault"] = str(vault)
        if kind := datasource_types.by_short(request.GET.get("type", "")):
            preset["datasource_type"] = kind.api_name
        return preset

    @property
    def preset(self) -> dict:
        return self.storage.extra_data.get("preset", {})

    def remember_preset(self, preset: dict) -> None:
        extra = dict(self.storage.extra_data)
        extra["preset"] = preset
        self.storage.extra_data = extra
