"""Vault > Properties > Multi-user authorization: link a Resource Guard, or remove MUA protection.

Linking (``backupResourceGuardProxies/write``) needs Reader on the guard and the guard in the vault's
region; removing it (``backupResourceGuardProxies/delete``) is a mandatory protected operation, so a
backup admin without access on the guard meets the explained refusal with **Request access**.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render

from portal import resources
from portal.shortcuts import can, submit
from security import mua
from security.guards import GuardDenied, evaluate
from security.operations import GUARD_READ, PROXY_DELETE, PROXY_WRITE, RESOURCE_GUARD_TYPE
from vaults import views as vault_views


class GuardChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return f"{obj.name} ({obj.resource_group_name})"


class LinkGuardForm(forms.Form):
    guard = GuardChoiceField(queryset=None, required=False, empty_label=None, widget=forms.RadioSelect,
                             label="Select Resource Guard")
    resource_guard_id = forms.CharField(
        required=False, max_length=512, label="Or paste the Resource Guard's ARM ID",
        help_text=f"/subscriptions/…/resourceGroups/…/providers/{RESOURCE_GUARD_TYPE}/<name>",
        widget=forms.TextInput(attrs={"size": 80, "spellcheck": "false", "autocomplete": "off"}),
    )

    def __init__(self, *args, guards=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["guard"].queryset = guards

    def clean(self):
        data = super().clean()
        pasted = (data.get("resource_guard_id") or "").strip()
        if pasted:
            data["chosen_id"] = pasted
        elif data.get("guard") is not None:
            data["chosen_id"] = data["guard"].resource_id
        else:
            raise ValidationError("Select a Resource Guard, or paste its ARM ID.")
        return data


@login_required
def vault_mua(request, pk):
    vault = vault_views._vault_or_404(request, pk)
    principal = request.principal
    proxy = mua.proxy_for(vault.resource_id)
    readable = mua.guards_visible_to(principal).filter(region=vault.region_id)
    form = LinkGuardForm(request.POST if request.method == "POST" and proxy is None else None, guards=readable)
    status = 200
    if request.method == "POST":
        if proxy is not None:
            if request.POST.get("protect") != "on":
                # Unlinking: a protected operation. A refusal reaches the explained 403 page.
                mua.unlink_resource_guard(principal, vault)
                messages.success(request, f"MUA protection was removed from '{vault.name}'.")
            return redirect("vaults:vault_properties", pk=vault.pk)
        decision = evaluate(principal, PROXY_WRITE, vault)
        if not decision.allowed:
            raise GuardDenied(decision)
        saved = submit(request, form,
                       lambda: mua.link_resource_guard(principal, vault, guard_id=form.cleaned_data["chosen_id"],
                                                       region=vault.region_id),
                       lambda link: f"'{vault.name}' is now protected by the Resource Guard '{link.guard.name}'.",
                       "vaults:vault_properties", pk=vault.pk)
        if saved:
            return saved
        status = 400
    guard_url = ""
    guard_readable = False
    if proxy is not None:
        guard_readable = can(principal, GUARD_READ, proxy.guard.resource_id)
        guard_url = resources.url_of(proxy.guard.resource_id) if guard_readable else ""
    context = vault_views._vault_context(
        request, vault, "properties", form=form, proxy=proxy, guard_url=guard_url, guard_readable=guard_readable,
        can_link=can(principal, PROXY_WRITE, vault.resource_id),
        my_grant=mua.active_grant(principal, proxy.guard) if proxy else None,
        unlink_preview=evaluate(principal, PROXY_DELETE, vault) if proxy else None,
        protected_ops=[r for r in mua.protected_operations(proxy.guard) if r["protected"]] if proxy else [],
    )
    return render(request, "vaults/vault_mua.html", context, status=status)
