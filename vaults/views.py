"""Vault pages: list, create wizard helpers, Overview, Properties, Identity, Delete.

Thin: reads go through `services.vaults_for` / `vaults.pages.vault_or_404` (a vault the principal may
not read is 404), every page of a vault has its frame from `vaults.pages.vault_page_context`, writes
call `vaults.services`; a GuardDenied that is not caught here becomes the explained 403 page
(GuardDeniedMiddleware).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models.functions import Lower
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from portal import services as portal_services
from portal.models import Region
from portal.shortcuts import (
    filter_by_id, form_errors_from, page_number, parse_id, search_text, submit, unknown_filters,
)
from security import scopes
from security.guards import GuardDenied, evaluate
from security.models import RoleAssignment
from security.operations import VAULT_WRITE
from vaults import forms, panels, services, storage
from vaults.services.storage_location import update_storage_location
from vaults.storage_forms import StorageLocationForm, location_spec
from vaults.models import ImmutabilityState
from vaults.pages import vault_or_404, vault_page_context

PAGE_SIZE = 25

SORTS = {
    "name": Lower("name"),
    "resource_group": Lower("resource_group__name"),
    "subscription": Lower("resource_group__subscription__display_name"),
    "region": "region__display_name",
    "redundancy": "storage_redundancy",
    "immutability": "immutability_state",
    "created": "created_at",
}

# The names `vaults.views_mua` calls the shared page frame by.
_vault_or_404 = vault_or_404
_vault_context = vault_page_context


def _require_write(request, vault, operation=VAULT_WRITE) -> None:
    """A reader opening an edit blade meets the same explained denial a write would get."""
    decision = evaluate(request.principal, operation, vault)
    if not decision.allowed and decision.guard == "RBAC":
        raise GuardDenied(decision)


# --- list --------------------------------------------------------------------------------------


@login_required
def vault_list(request):
    principal = request.principal
    vaults = services.vaults_for(principal)
    subscriptions = portal_services.subscriptions_for(principal)
    groups = portal_services.resource_groups_for(principal)
    filters = {k: request.GET.get(k, "").strip() for k in ("subscription", "resource_group", "region", "immutability", "q")}
    filters["q"] = search_text(filters["q"])
    # An id that names nothing (malformed, 2**70) filters to an empty list, the filter still shown.
    vaults = filter_by_id(vaults, "resource_group__subscription_id", filters["subscription"])
    groups = filter_by_id(groups, "subscription_id", filters["subscription"])
    vaults = filter_by_id(vaults, "resource_group_id", filters["resource_group"])
    if filters["region"]:  # a name no region has (NUL included, which PostgreSQL refuses) lists nothing
        vaults = vaults.filter(region_id=filters["region"]) if "\x00" not in filters["region"] else vaults.none()
    if filters["immutability"] in ImmutabilityState.values:  # the API's states; an unknown one is no filter
        vaults = vaults.filter(immutability_state=filters["immutability"])
    else:
        filters["immutability"] = ""
    if filters["q"]:
        vaults = vaults.filter(name__icontains=filters["q"])
    sort = request.GET.get("sort", "name")
    key = sort.lstrip("-")
    if key not in SORTS:
        sort, key = "name", "name"
    order = SORTS[key]
    if isinstance(order, str):
        order = Lower(order) if key in ("region",) else order
    vaults = vaults.order_by(order.desc() if sort.startswith("-") else order.asc(), "pk")
    page = Paginator(services.with_resource_guard_link(vaults), PAGE_SIZE).get_page(page_number(request.GET.get("page")))
    for vault in page.object_list:
        vault.assessment = services.security_level(vault)
    query = request.GET.copy()
    query.pop("page", None)
    sort_query = query.copy()
    sort_query.pop("sort", None)
    columns = []
    for column, label in [("name", "Name"), ("resource_group", "Resource group"), ("subscription", "Subscription"),
                          ("region", "Region"), ("redundancy", "Storage redundancy"), ("immutability", "Immutability")]:
        active = key == column
        descending = active and sort.startswith("-")
        next_sort = f"-{column}" if active and not descending else column
        q = sort_query.copy()
        q["sort"] = next_sort
        columns.append({"key": column, "label": label, "active": active, "descending": descending,
                        "url": "?" + q.urlencode()})
    context = {
        "page": page,
        "filters": filters,
        "sort": sort,
        "columns": columns,
        "page_query": query.urlencode(),
        "subscriptions": subscriptions,
        "resource_groups": groups,
        "regions": Region.objects.filter(pk__in=services.vaults_for(principal).values("region_id")),
        "immutability_states": ImmutabilityState.choices,
        "can_create": services.resource_groups_for_create(principal).exists(),
        "any_filter": any(filters.values()),
        "unknown_filters": unknown_filters(filters, {"subscription": "subscription", "resource_group": "resource group"}),
    }
    template = "vaults/vault_list.html#vault-table" if request.htmx and not request.htmx.boosted else "vaults/vault_list.html"
    return render(request, template, context)


# --- create helpers (htmx) ---------------------------------------------------------------------


def _param(request, suffix):
    for key, value in request.GET.items():
        if key == suffix or key.endswith("-" + suffix):
            return value.strip()
    return ""


@login_required
@require_GET
def check_name(request):
    """`checkNameAvailability` as the user types the name in the wizard (htmx fragment)."""
    principal = request.principal
    name = _param(request, "name")
    group_pk = _param(request, "resource_group")
    new_group = _param(request, "new_resource_group_name")
    subscription_pk = _param(request, "subscription")
    result, message = None, ""
    if not name:
        message = ""
    else:
        group = services.resource_groups_for_create(principal).filter(pk=pk).first() if (pk := parse_id(group_pk)) else None
        subscription = (portal_services.subscriptions_for(principal).filter(pk=pk).first()
                        if (pk := parse_id(subscription_pk)) else None)
        try:
            if group is None and not (new_group and subscription):
                problem = services.name_rule_error(name)
                result = services.NameAvailability(not problem, "Invalid" if problem else "", problem)
                if not problem:
                    message = "Select a resource group to check that the name is free there."
            else:
                result = services.check_name_availability(
                    principal, name=name, resource_group=group, subscription=subscription,
                    new_resource_group_name=new_group if group is None else "",
                )
        except GuardDenied as exc:
            message = "You cannot create Backup vaults in this resource group. " + exc.decision.reason
    return render(request, "vaults/_name_availability.html", {"name": name, "result": result, "message": message})


@login_required
@require_GET
def resource_group_options(request):
    """The resource groups of the chosen subscription where the user may create a vault."""
    subscription_pk = _param(request, "subscription")
    groups = services.resource_groups_for_create(request.principal)
    groups = groups.filter(subscription_id=pk) if (pk := parse_id(subscription_pk)) else groups.none()
    return render(request, "vaults/_resource_group_options.html", {"groups": groups})


# --- overview ----------------------------------------------------------------------------------


@login_required
def vault_detail(request, pk):
    vault = vault_or_404(request, pk)
    return render(request, "vaults/vault_overview.html",
                  vault_page_context(request, vault, "overview", tiles=panels.overview_tiles(vault)))


# --- properties --------------------------------------------------------------------------------


@login_required
def vault_properties(request, pk):
    vault = vault_or_404(request, pk)
    loc = storage.s3_location(vault)
    return render(request, "vaults/vault_properties.html", vault_page_context(
        request, vault, "properties", storage_location_label=loc.describe() if loc else "Local"))


@login_required
def vault_storage_location(request, pk):
    """The Backup storage location blade (issue 22): Local or an S3-compatible bucket."""
    def make_form(data, vault):
        return StorageLocationForm(data, location=storage.s3_location(vault))

    def extra(vault):
        loc = storage.s3_location(vault)
        return {"location_label": loc.describe() if loc else "Local",
                "key_stored": bool(loc and loc.credentials_encrypted)}

    return _settings_page(
        request, pk, make_form=make_form, template="vaults/vault_storage_location.html", extra=extra,
        apply=lambda principal, vault, data, form: update_storage_location(principal, vault, location_spec(data)),
        success=lambda v: "Backup storage location: "
        + (storage.s3_location(v).describe() if storage.s3_location(v) else "Local") + ".",
    )


def _settings_page(request, pk, *, make_form, template, apply, success, extra=None):
    """GET shows the blade's form (``make_form(data, vault)``); POST calls ``apply(principal, vault,
    cleaned_data, form)`` (a service). ``extra(vault)`` adds to the context (e.g. the guard previews'
    ``change`` dicts)."""
    vault = vault_or_404(request, pk)
    _require_write(request, vault)
    form = make_form(_posted(request), vault)
    status = 200
    if request.method == "POST":
        saved = submit(request, form, lambda: apply(request.principal, vault, form.cleaned_data, form),
                       lambda _: success(vault), "vaults:vault_properties", pk=vault.pk)
        if saved:
            return saved
        status = 400
    context = vault_page_context(request, vault, "properties", form=form, **(extra(vault) if extra else {}))
    return render(request, template, context, status=status)


def _map_state_errors(exc: ValidationError, field_map: dict) -> ValidationError:
    if hasattr(exc, "error_dict"):
        return ValidationError({field_map.get(k, k): v for k, v in exc.message_dict.items()})
    return exc


@login_required
def vault_soft_delete(request, pk):
    def apply(principal, vault, data, form):
        services.update_soft_delete(principal, vault, state=data["state"], retention_days=data.get("retention_days"),
                                    acknowledge_irreversible=bool(data.get("acknowledge_irreversible")))

    return _settings_page(
        request, pk, make_form=lambda data, vault: forms.SoftDeleteForm(data, vault=vault),
        template="vaults/vault_soft_delete.html", apply=apply,
        success=lambda v: f"Soft delete is now {v.get_soft_delete_state_display()}"
        + (f" with {v.soft_delete_retention_days} days of retention." if v.soft_delete_enabled else "."),
        extra=lambda v: {"reduce_change": services.reduction_change(v), "write_operation": VAULT_WRITE},
    )


@login_required
def vault_immutability(request, pk):
    def apply(principal, vault, data, form):
        try:
            services.update_immutability(principal, vault, state=form.target_state(),
                                         confirm_name=data.get("confirm_name", ""))
        except ValidationError as exc:
            raise _map_state_errors(exc, {"state": "enabled"}) from None

    return _settings_page(
        request, pk, make_form=lambda data, vault: forms.ImmutabilityForm(data, vault=vault),
        template="vaults/vault_immutability.html", apply=apply,
        success=lambda v: f"Immutable vault: {v.get_immutability_state_display()}.",
        extra=lambda v: {"disable_change": services.immutability_change(v, state="Disabled"),
                         "write_operation": VAULT_WRITE},
    )


def _choice_blade(form_class, field: str, model_field: str, update, success):
    """A blade with one choice (``field`` of ``form_class``, stored in ``model_field``) that
    ``update(principal, vault, value)`` applies."""

    @login_required
    def view(request, pk):
        return _settings_page(
            request, pk, make_form=lambda data, vault: form_class(data, initial={field: getattr(vault, model_field)}),
            template="vaults/vault_setting.html", success=success,
            apply=lambda principal, vault, data, form: update(principal, vault, data[field]),
        )

    return view


vault_cross_region_restore = _choice_blade(
    forms.CrossRegionRestoreForm, "state", "cross_region_restore_state",
    lambda principal, vault, value: services.update_cross_region_restore(principal, vault, state=value),
    lambda v: f"Cross Region Restore: {v.get_cross_region_restore_state_display()}.",
)
vault_cross_subscription_restore = _choice_blade(
    forms.CrossSubscriptionRestoreForm, "state", "cross_subscription_restore_state",
    lambda principal, vault, value: services.update_cross_subscription_restore(principal, vault, state=value),
    lambda v: f"Cross Subscription Restore: {v.get_cross_subscription_restore_state_display()}.",
)
vault_storage_redundancy = _choice_blade(
    forms.StorageRedundancyForm, "storage_redundancy", "storage_redundancy",
    lambda principal, vault, value: services.update_storage_redundancy(principal, vault, redundancy=value),
    lambda v: f"Backup storage redundancy: {v.get_storage_redundancy_display()}.",
)


# --- identity ----------------------------------------------------------------------------------


@login_required
def vault_identity(request, pk):
    vault = vault_or_404(request, pk)
    initial = {"status": "on" if vault.identity_enabled else "off"}
    form = forms.IdentityForm(_posted(request), initial=initial)
    status = 200
    if request.method == "POST":
        _require_write(request, vault)
        saved = submit(
            request, form,
            lambda: services.set_identity_enabled(request.principal, vault, enabled=form.cleaned_data["status"] == "on"),
            lambda _: f"System-assigned identity: {'On' if vault.identity_enabled else 'Off'}.",
            "vaults:vault_identity", pk=vault.pk,
        )
        if saved:
            return saved
        status = 400
    assignments = []
    if vault.identity_id:
        assignments = list(
            RoleAssignment.objects.active_at(_now()).filter(principal_id=vault.identity_id)
            .select_related("role").order_by("scope", "role__name")
        )
    rows = [{"assignment": a, "level": scopes.level_of(a.scope), "scope_label": _scope_label(a.scope)} for a in assignments]
    return render(request, "vaults/vault_identity.html",
                  vault_page_context(request, vault, "identity", form=form, assignments=rows), status=status)


def _now():
    from security import clock

    return clock.now()


def _scope_label(scope: str) -> str:
    from portal import resources

    obj = resources.resolve(scope) if scope != scopes.ROOT else None
    if obj is None:
        return scope
    return f"{resources.label_of(scope)}: {obj}"


# --- delete ------------------------------------------------------------------------------------


@login_required
def vault_delete(request, pk):
    vault = vault_or_404(request, pk)
    preview = services.delete_preview(request.principal, vault)
    if not preview.allowed and preview.guard == "RBAC":
        raise GuardDenied(preview)
    form = forms.ConfirmNameForm(_posted(request), vault=vault)
    status = 200
    refusal = None if preview.allowed else preview
    if request.method == "POST" and form.is_valid():
        name = vault.name
        try:
            services.delete_vault(request.principal, vault)
        except GuardDenied as exc:
            if exc.decision.guard == "RBAC":
                raise
            refusal, status = exc.decision, 409
        except ValidationError as exc:
            form_errors_from(form, exc)
            status = 409
        else:
            messages.success(request, f"Backup vault '{name}' was deleted.")
            return redirect("vaults:vault_list")
    elif request.method == "POST":
        status = 400
    if refusal is not None and request.method == "POST" and status == 200:
        status = 409
    return render(request, "vaults/vault_delete.html",
                  vault_page_context(request, vault, "overview", form=form, refusal=refusal), status=status)


def _posted(request):
    """The POST data on a POST (even when empty: an unticked box posts nothing), else None."""
    return request.POST if request.method == "POST" else None
