"""Backup instance pages and the Configure protection helpers.

* Backup instances (all, and the vault's blade): filters by datasource type, protection status and
  vault, paginated; the table refreshes itself while an instance is still being configured.
* A backup instance: Essentials, policy, datasource, Change policy. Places marked with ids are left
  for the backups area (Backup now, recovery points, jobs); they fill in once those urls exist.
* Configure protection: the start page (Resource managed by, Datasource type, Solution), and the
  Datasources tab's htmx actions: Revalidate and Assign missing roles (row cells swapped in place).
"""

from __future__ import annotations

import re

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from portal import resources
from portal.shortcuts import (
    can, filter_by_id, get_visible_or_404, page_number, parse_id, search_text, submit, unknown_filters,
)
from protection import datasource_types, readiness, regions, selectors
from protection.instances import services as svc
from protection.instances.forms import ChangePolicyForm, ConfigureStartForm
from protection.models import ProtectionState
from protection.pages import render_list, require, start_page, vault_context, vault_or_404
from security import operations as ops
from security.guards import GuardDenied

PAGE_SIZE = 25

STATUS_CLASS = {
    ProtectionState.CONFIGURED: "status-ok",
    ProtectionState.CONFIGURING: "status-running",
    ProtectionState.UPDATING: "status-running",
    ProtectionState.CONFIGURING_FAILED: "status-failed",
    ProtectionState.PROTECTION_ERROR: "status-failed",
    ProtectionState.BACKUPS_SUSPENDED: "status-warn",
    ProtectionState.STOPPED: "status-warn",
    ProtectionState.SOFT_DELETING: "status-info",
    ProtectionState.SOFT_DELETED: "status-info",
}


def instance_or_404(request, pk, *, related=()):
    """The backup instance ``pk`` if the principal may read it (404 otherwise)."""
    instances = svc.instances_for(request.principal)
    if related:
        instances = instances.select_related(*related)
    return get_visible_or_404(request.principal, instances, ops.INSTANCE_READ, pk=pk)


# --- lists -----------------------------------------------------------------------------------------


def _list_context(request, instances, *, vault=None):
    from vaults.services import vaults_for

    filters = {k: request.GET.get(k, "") for k in ("type", "status", "vault", "q", "region")}
    filters["region"] = regions.parse(filters["region"])
    if vault is not None:
        filters["vault"] = ""
    kind = datasource_types.by_short(filters["type"])
    if kind:
        instances = instances.filter(datasource_type=kind.api_name)
    if filters["status"] in ProtectionState.values:
        instances = instances.filter(protection_state=filters["status"])
    instances = filter_by_id(instances, "vault_id", filters["vault"])  # an unknown vault: an empty list
    filters["q"] = search_text(filters["q"])
    if filters["q"]:
        instances = instances.filter(name__icontains=filters["q"])
    secondary = filters["region"] == regions.SECONDARY
    if secondary:  # Instance Region = Secondary Region: the instances Cross Region Restore makes visible there
        instances = regions.secondary_instances(instances)
    page = selectors.instance_page(regions.with_lag(instances), page_number(request.GET.get("page")), PAGE_SIZE,
                                   one_vault=vault is not None or bool(filters["vault"]))
    for instance in page.object_list:
        instance.status_class = STATUS_CLASS.get(instance.protection_state, "status-info")
        instance.replication_lag = regions.lag_text(instance)
        if secondary:
            instance.secondary_restore_problem = regions.secondary_restore_problem(instance)
    query = request.GET.copy()
    query.pop("page", None)
    principal = request.principal
    return {
        "page": page, "filters": filters, "page_query": query.urlencode(), "any_filter": any(filters.values()),
        "unknown_filters": unknown_filters(filters, {"vault": "vault"}),
        "types": datasource_types.TYPES.values(), "states": ProtectionState.choices,
        "instance_regions": regions.REGION_CHOICES, "secondary": secondary,
        "vaults": vaults_for(principal) if vault is None else None,
        "configuring": any(i.protection_state == ProtectionState.CONFIGURING for i in page.object_list),
        "table_url": request.path,
        "configure_url": reverse("protection:configure_protection") + (f"?vault={vault.pk}" if vault is not None else ""),
    }


@login_required
def instance_list(request):
    context = _list_context(request, svc.instances_for(request.principal))
    return render_list(request, "protection/instances/list.html", "instance-table", context)


@login_required
def vault_instances(request, pk):
    """The vault's "Backup instances" blade (+ Backup)."""
    vault = vault_or_404(request, pk)
    context = vault_context(request, vault, "instances",
                            **_list_context(request, svc.instances_for(request.principal).filter(vault=vault), vault=vault))
    return render_list(request, "protection/instances/vault_instances.html", "instance-table", context)


@login_required
def vault_instances_tile(request, pk):
    vault = vault_or_404(request, pk)
    context = {"vault": vault, "tile": selectors.instances_tile(vault), "list_url": reverse("protection:instance_list")}
    return render(request, "protection/tiles/instances.html", context)


# --- one instance ----------------------------------------------------------------------------------


def _datasource_link(resource_id):
    obj = resources.resolve(resource_id)
    return {"name": str(obj) if obj else resource_id.rsplit("/", 1)[-1], "url": resources.url_of(resource_id) if obj else "",
            "label": resources.label_of(resource_id), "exists": obj is not None}


@login_required
def instance_detail(request, pk):
    instance = instance_or_404(request, pk)
    principal = request.principal
    policy = instance.policy
    context = {
        "instance": instance, "resource": instance, "blade": "overview", "vault": instance.vault,
        "status_class": STATUS_CLASS.get(instance.protection_state, "status-info"),
        "datasource": _datasource_link(instance.datasource_resource_id),
        "snapshot_group": _datasource_link(instance.snapshot_resource_group_id) if instance.snapshot_resource_group_id else None,
        "policy_summary": policy.parsed.summary(),
        "can_change_policy": can(principal, ops.INSTANCE_WRITE, instance.resource_id),
        "policy_readable": can(principal, ops.POLICY_READ, policy.resource_id),
        "last_configure_job": instance.jobs.filter(operation="ConfigureProtection").order_by("-real_start_time").first(),
        "replication_lag": regions.lag_text(instance),
    }
    return render(request, "protection/instances/detail.html", context)


@login_required
def instance_change_policy(request, pk):
    instance = instance_or_404(request, pk)
    require(request, ops.INSTANCE_WRITE, instance)
    form = ChangePolicyForm(request.POST if request.method == "POST" else None, principal=request.principal, instance=instance)
    status = 200
    if request.method == "POST":
        saved = submit(request, form, lambda: svc.change_policy(request.principal, instance, form.cleaned_data["policy"]),
                       lambda _: f"Backup instance '{instance.name}' now uses the policy '{instance.policy.name}'. "
                                 f"{instance.redated.summary() if getattr(instance, 'redated', None) else ''}".rstrip(),
                       "protection:instance_detail", pk=instance.pk)
        if saved:
            return saved
        status = 400
    # The preview: what the guards would say for each policy (MUA on "Change policy", immutability on a
    # shorter retention), asked as the service will ask it.
    from security.guards import evaluate

    refusals = {}
    for policy in form.policies:
        if policy.pk == instance.policy_id:
            continue
        decision = evaluate(request.principal, ops.INSTANCE_WRITE, instance, svc.change_policy_change(instance, policy))
        if not decision.allowed and decision.guard != "RBAC":
            refusals[str(policy.pk)] = decision
    return render(request, "protection/instances/change_policy.html",
                  {"instance": instance, "resource": instance, "form": form, "blade": "overview",
                   "vault": instance.vault, "refusals": refusals,
                   "mua_change": {"critical_operation": ops.INSTANCE_WRITE, "setting": "policy"}}, status=status)


# --- configure protection ---------------------------------------------------------------------------


@login_required
def configure_start(request):
    """Home → "+ Configure protection": Resource managed by, Datasource type, Solution → Continue."""
    return start_page(request, ConfigureStartForm, "protection/configure/start.html", "protection:configure_protection")


SELECTED = re.compile(r"^datasources-(\w+)_selected$")


def _datasources_request(request):
    """The vault, the datasource form (bound to what the tab holds now) and its rows, from an htmx
    POST that includes the wizard's form."""
    from protection.instances.forms import DatasourcesForm

    vault = vault_or_404(request, parse_id(request.POST.get("vault")) or 0)
    if not svc.may_validate(request.principal, vault):
        from security.guards import evaluate

        raise GuardDenied(evaluate(request.principal, ops.VALIDATE_FOR_BACKUP, vault))
    kind = datasource_types.by_short(request.POST.get("type", ""))
    if kind is None:
        raise Http404("Unknown datasource type.")
    form = DatasourcesForm(request.POST, prefix="datasources", principal=request.principal, vault=vault,
                           datasource_type=kind.api_name)
    return vault, kind, form


def _readiness_response(request, vault, form, *, note="", error="", created=()):
    from security import scopes

    rows = form.table()
    created = [{"role": a.role.name, "level": scopes.level_of(a.scope).lower(), "name": a.scope.rsplit("/", 1)[-1],
                "scope": a.scope} for a in created]
    context = {"rows": rows, "vault": vault, "note": note, "error": error, "created": created,
               "any_assignable": any(r["readiness"] and r["readiness"].can_assign for r in rows),
               "any_missing": any(r["readiness"] and not r["readiness"].ok for r in rows)}
    return render(request, "protection/configure/_readiness_update.html", context)


@login_required
@require_POST
def configure_revalidate(request):
    """Revalidate: re-check backup readiness of every row (cells swapped out of band)."""
    from security import clock

    vault, kind, form = _datasources_request(request)
    return _readiness_response(request, vault, form, note=f"Revalidated at {clock.now():%H:%M:%S} UTC.")


@login_required
@require_POST
def configure_assign_roles(request):
    """Assign missing roles for the selected rows at the chosen scope, then revalidate."""
    vault, kind, form = _datasources_request(request)
    level = request.POST.get("assign_scope", "")
    keys = {m.group(1) for k in request.POST if (m := SELECTED.match(k))}
    rows = [r for r in form.rows if r.key in keys and r.offered]
    if not rows:
        return _readiness_response(request, vault, form, error="Select the datasources to assign roles for (tick their rows).")
    if level not in readiness.SCOPE_LEVELS:
        return _readiness_response(request, vault, form, error="Choose the scope: Resource, Resource group or Subscription.")
    rg = form.snapshot_resource_group_id
    try:
        created = svc.assign_missing_roles(request.principal, vault=vault, level=level,
                                           datasources=[r.datasource(rg) for r in rows])
    except GuardDenied as exc:
        return _readiness_response(request, vault, form, error=f"No role was assigned. {exc.decision.reason}")
    except ValidationError as exc:
        return _readiness_response(request, vault, form, error=" ".join(exc.messages))
    note = (f"Assigned {len(created)} role{'s' if len(created) != 1 else ''} to the vault's identity at the "
            f"{level.lower()} scope, then revalidated." if created else "Nothing was missing; revalidated.")
    return _readiness_response(request, vault, form, note=note, created=created)
