"""Subscriptions and resource groups: their lists and pages, creating and deleting a resource group."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse

from portal import resources, services
from portal.forms import ResourceGroupForm
from portal.models import ResourceGroup
from portal.shortcuts import (
    can, confirmed_delete, filter_by_id, get_visible_or_404, page_number, submit, unknown_filters, visible,
)
from security import scopes
from security.operations import RESOURCE_GROUP_DELETE, RESOURCE_GROUP_READ, RESOURCE_GROUP_WRITE
from security.rbac import active_assignments

# --- subscriptions ----------------------------------------------------------------------------


@login_required
def subscription_list(request):
    principal = request.principal
    groups = list(services.resource_groups_for(principal))
    assignments = list(active_assignments(principal))
    rows = []
    for subscription in services.subscriptions_for(principal):
        roles = sorted(
            {a.role.name for a in assignments if scopes.covers(a.scope, subscription.resource_id)}
        )
        rows.append(
            {
                "subscription": subscription,
                "group_count": sum(1 for g in groups if g.subscription_id == subscription.pk),
                "roles": roles,
            }
        )
    return render(request, "portal/subscription_list.html", {"rows": rows})


@login_required
def subscription_detail(request, pk):
    subscription = services.subscriptions_for(request.principal).filter(pk=pk).first()
    if subscription is None:
        raise Http404("No such subscription, or you do not have access to it.")
    groups = services.resource_groups_for(request.principal).filter(subscription=subscription)
    return render(
        request,
        "portal/subscription_detail.html",
        {
            "subscription": subscription,
            "resource": subscription,
            "resource_groups": groups,
            "blade": "overview",
            "can_create_group": can(
                request.principal, RESOURCE_GROUP_WRITE, subscription.resource_id + "/resourceGroups/x"
            ),
        },
    )


# --- resource groups --------------------------------------------------------------------------


@login_required
def resource_group_list(request):
    groups = services.resource_groups_for(request.principal)
    subscription_filter = request.GET.get("subscription", "").strip()
    groups = filter_by_id(groups, "subscription_id", subscription_filter)  # an unknown id: an empty list
    page = Paginator(groups, 25).get_page(page_number(request.GET.get("page")))
    return render(
        request,
        "portal/resource_group_list.html",
        {
            "page": page,
            "subscriptions": services.subscriptions_for(request.principal),
            "subscription_filter": subscription_filter,
            "unknown_filters": unknown_filters({"subscription": subscription_filter}, {"subscription": "subscription"}),
        },
    )


DEFAULT_REGION = "eastus"  # preselected, as the portal preselects a sensible default


@login_required
def resource_group_create(request):
    subscriptions = services.subscriptions_for(request.principal)
    initial = {"region": DEFAULT_REGION}
    if request.GET.get("subscription"):
        initial["subscription"] = request.GET.get("subscription")
    form = ResourceGroupForm(request.POST or None, subscriptions=subscriptions, initial=initial)
    if request.method == "POST":
        def create():
            data = form.cleaned_data
            return services.create_resource_group(request.principal, subscription=data["subscription"],
                                                  name=data["name"], region=data["region"])

        created = submit(request, form, create, lambda group: f"Resource group '{group.name}' created.",
                         lambda group: reverse("portal:resource_group_detail", kwargs={"pk": group.pk}))
        if created:
            return created
    writable = [
        s for s in subscriptions if can(request.principal, RESOURCE_GROUP_WRITE, s.resource_id + "/resourceGroups/x")
    ]
    return render(
        request,
        "portal/resource_group_create.html",
        {"form": form, "writable_subscriptions": writable, "has_subscriptions": subscriptions.exists()},
    )


@login_required
def resource_group_detail(request, pk):
    group = get_visible_or_404(
        request.principal, ResourceGroup.objects.select_related("subscription", "region"), RESOURCE_GROUP_READ, pk=pk
    )
    contents = []
    for rtype in resources.all_types():
        if rtype.in_resource_group:
            rows = visible(request.principal, rtype.model.objects.filter(resource_group=group), rtype.read_action)
            contents.extend({"obj": obj, "type": rtype, "url": rtype.url_for(obj)} for obj in rows)
    return render(
        request,
        "portal/resource_group_detail.html",
        {
            "group": group,
            "resource": group,
            "contents": sorted(contents, key=lambda c: c["obj"].name.lower()),
            "blade": "overview",
            "can_delete": can(request.principal, RESOURCE_GROUP_DELETE, group.resource_id),
        },
    )


@login_required
def resource_group_delete(request, pk):
    group = get_visible_or_404(request.principal, ResourceGroup.objects.all(), RESOURCE_GROUP_READ, pk=pk)
    deleted, error = confirmed_delete(
        request, group, kind="resource group", delete=lambda: services.delete_resource_group(request.principal, group)
    )
    if deleted:
        messages.success(request, f"Resource group '{group.name}' deleted.")
        return redirect("portal:resource_group_list")
    return render(
        request,
        "portal/resource_group_delete.html",
        {
            "group": group,
            "resource": group,
            "error": error,
            "contents": services.resources_in_group(group),
            "can_delete": can(request.principal, RESOURCE_GROUP_DELETE, group.resource_id),
            "blade": "overview",
        },
    )

