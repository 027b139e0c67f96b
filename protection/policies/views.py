"""Backup policy pages: Protection policies, the vault's Backup policies blade, a policy (summary,
JSON view, instances using it), Edit (schedule + retention) and Delete. Thin: reads start from
`services.policies_for` (what the principal may not read is 404); writes call the services."""

from __future__ import annotations

import json

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count
from django.shortcuts import render
from django.urls import reverse

from portal.shortcuts import (
    can, delete_or_explain, filter_by_id, get_visible_or_404, page_number, search_text, submit, unknown_filters, visible,
)
from protection import datasource_types
from protection.pages import render_list, require, vault_context, vault_or_404
from protection.policies import services as svc
from protection.policies.forms import PolicyScheduleForm, writable_vaults
from security import operations as ops

PAGE_SIZE = 25


def _policy_or_404(request, pk):
    return get_visible_or_404(request.principal, svc.policies_for(request.principal), ops.POLICY_READ, pk=pk)


def _filtered(request, policies):
    filters = {k: request.GET.get(k, "") for k in ("type", "vault", "q")}
    kind = datasource_types.by_short(filters["type"])
    if kind:
        policies = policies.filter(datasource_type=kind.api_name)
    policies = filter_by_id(policies, "vault_id", filters["vault"])  # an unknown vault: an empty list
    filters["q"] = search_text(filters["q"])
    if filters["q"]:
        policies = policies.filter(name__icontains=filters["q"])
    return policies.annotate(instance_count=Count("backup_instances")).order_by("vault__name", "name"), filters


def _table_context(request, policies, filters):
    page = Paginator(policies, PAGE_SIZE).get_page(page_number(request.GET.get("page")))
    for policy in page.object_list:
        policy.summary_lines = policy.parsed.summary()
    query = request.GET.copy()
    query.pop("page", None)
    return {"page": page, "filters": filters, "page_query": query.urlencode(),
            "types": datasource_types.TYPES.values(), "any_filter": any(filters.values()),
            "unknown_filters": unknown_filters(filters, {"vault": "vault"})}


@login_required
def policy_list(request):
    """Protection policies: every backup policy the user may read, across vaults."""
    from vaults.services import vaults_for

    policies, filters = _filtered(request, svc.policies_for(request.principal))
    context = _table_context(request, policies, filters)
    context.update(vaults=vaults_for(request.principal), can_create=writable_vaults(request.principal).exists(),
                   create_url=reverse("protection:policy_create"))
    return render_list(request, "protection/policies/list.html", "policy-table", context)


@login_required
def vault_policies(request, pk):
    """The vault's "Backup policies" blade (+ Add)."""
    vault = vault_or_404(request, pk)
    policies, filters = _filtered(request, svc.policies_for(request.principal).filter(vault=vault))
    context = vault_context(request, vault, "policies", **_table_context(request, policies, filters))
    context["can_create"] = can(request.principal, ops.POLICY_WRITE, f"{vault.resource_id}/backupPolicies/x")
    context["create_url"] = f"{reverse('protection:policy_create')}?vault={vault.pk}"
    return render_list(request, "protection/policies/vault_policies.html", "policy-table", context)


@login_required
def policy_detail(request, pk):
    policy = _policy_or_404(request, pk)
    principal = request.principal
    using = list(svc.instances_using(policy).select_related("vault"))
    readable = set(visible(principal, svc.instances_using(policy), ops.INSTANCE_READ).values_list("pk", flat=True))
    rules = policy.parsed
    context = {
        "policy": policy, "resource": policy, "blade": "overview", "summary": rules.summary(),
        "retention_rules": rules.retention_rules, "json": json.dumps(policy.as_api(), indent=2),
        "instances": [{"instance": i, "readable": i.pk in readable} for i in using],
        "can_edit": can(principal, ops.POLICY_WRITE, policy.resource_id),
        "can_delete": can(principal, ops.POLICY_DELETE, policy.resource_id),
        "type_rules": svc.TYPE_RULES[policy.datasource_type],
    }
    if svc.TYPE_RULES[policy.datasource_type].max_recovery_points:
        context["worst_case"] = svc.max_recovery_points(policy.policy_rules)
    return render(request, "protection/policies/detail.html", context)


def _updated_message(policy) -> str:
    count = svc.instances_using(policy).count()
    redated = getattr(policy, "redated", None)
    return (f"Backup policy '{policy.name}' was updated. It applies to "
            f"{count} backup instance{'s' if count != 1 else ''}. {redated.summary() if redated else ''}").rstrip()


@login_required
def policy_edit(request, pk):
    """Edit schedule and retention; applies to every instance using the policy."""
    policy = _policy_or_404(request, pk)
    require(request, ops.POLICY_WRITE, policy)
    form = PolicyScheduleForm(request.POST if request.method == "POST" else None,
                              datasource_type=policy.datasource_type, spec=svc.spec_of(policy))
    status = 200
    if request.method == "POST":
        saved = submit(request, form, lambda: svc.update_policy(request.principal, policy, spec=form.spec()),
                       lambda _: _updated_message(policy), "protection:policy_detail", pk=policy.pk)
        if saved:
            return saved
        status = 400
    using = list(svc.instances_using(policy).values_list("name", flat=True))
    return render(request, "protection/policies/edit.html",
                  {"policy": policy, "resource": policy, "form": form, "using": using, "blade": "overview"}, status=status)


@login_required
def policy_delete(request, pk):
    policy = _policy_or_404(request, pk)
    require(request, ops.POLICY_DELETE, policy)
    error, status = "", 200
    using = list(svc.instances_using(policy).values_list("name", flat=True))
    if request.method == "POST":
        done, error = delete_or_explain(request, lambda: svc.delete_policy(request.principal, policy),
                                        f"Backup policy '{policy.name}' was deleted.", "protection:vault_policies",
                                        pk=policy.vault_id)
        if done is not None:
            return done
        status = 409
    return render(request, "protection/policies/delete.html",
                  {"policy": policy, "resource": policy, "using": using, "error": error, "blade": "overview"}, status=status)
