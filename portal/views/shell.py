"""The shell's front door: signing in, the home page and search."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.http import require_GET

from portal import resources, services
from portal.models import LabPersona, ResourceGroup, Subscription
from portal.pages import find_service_pages, home_panels
from portal.shortcuts import can, search_text, visible
from portal.templatetags.portal_ui import describe_scopes
from portal.views.activity import activity_for, alert_visibility, attach_scope_info
from security import scopes
from security.models import Alert
from security.operations import RESOURCE_GROUP_WRITE
from security.rbac import active_assignments


class SignInView(auth_views.LoginView):
    """Django's sign-in, plus the demo sign-ins when the portal runs as a lab."""

    template_name = "portal/signin.html"
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        if settings.STRONGROOM_LAB_MODE:
            demo = [{"username": "trainer", "name": "Terry Trainer", "title": "Trainer",
                     "description": "Owner of everything; can play the personas and move the lab clock."}]
            for persona in LabPersona.objects.select_related("principal__user"):
                user = persona.principal.user
                if user is not None:
                    demo.append({"username": user.get_username(), "name": persona.principal.display_name,
                                 "title": persona.title, "description": persona.description})
            context["demo_accounts"] = demo
            # Never the passwords themselves: whoever reaches this page is not yet anyone.
            context["demo_password_classroom"] = bool(settings.STRONGROOM_DEMO_PASSWORD)
            context["demo_passwords_file"] = settings.STRONGROOM_DEMO_PASSWORDS_FILE
        return context


@login_required
def home(request):
    principal = request.principal
    subscriptions = list(services.subscriptions_for(principal))
    groups = services.resource_groups_for(principal)
    assignments = list(active_assignments(principal).order_by("scope", "role__name"))
    scope_info = describe_scopes(a.scope for a in assignments)
    for assignment in assignments:
        assignment.scope_info = scope_info[scopes.normalize(assignment.scope).lower()]
    recent = list(activity_for(principal)[:6])
    attach_scope_info(recent)
    return render(
        request,
        "portal/home.html",
        {
            "subscriptions": subscriptions,
            "resource_groups": groups[:8],
            "resource_group_count": groups.count(),
            "my_assignments": assignments,
            "recent_activity": recent,
            "new_alerts": Alert.objects.filter(alert_visibility(principal), state=Alert.State.NEW).count(),
            "home_panels": home_panels(request),
            "can_create_group": any(
                can(principal, RESOURCE_GROUP_WRITE, s.resource_id + "/resourceGroups/x") for s in subscriptions
            ),
        },
    )


@login_required
@require_GET
def search(request):
    query = search_text(request.GET.get("q", ""))
    results = []
    if query:
        for rtype in resources.all_types():
            rows = visible(request.principal, rtype.model.objects.all(), rtype.read_action)
            field = "display_name" if rtype.model is Subscription else "name"
            for obj in rows.filter(**{f"{field}__icontains": query})[:10]:
                results.append(
                    {
                        "label": rtype.label,
                        "name": str(obj),
                        "url": rtype.url_for(obj),
                        "id": obj.resource_id,
                        "where": _where(obj),
                    }
                )
    who = request.real_principal
    service_pages = find_service_pages(query, trainer=services.can_play_personas(who),
                                       labs=services.can_open_labs(who)) if query else []
    template = "portal/search.html#results" if request.htmx else "portal/search.html"
    return render(request, template, {"query": query, "results": results, "service_pages": service_pages})


def _where(obj) -> str:
    """Where a search hit lives, in words: its subscription, or its resource group."""
    if isinstance(obj, Subscription):
        return ""
    if isinstance(obj, ResourceGroup):
        return obj.subscription.display_name
    group = getattr(obj, "resource_group", None)
    return f"{group.name} · {group.subscription.display_name}" if group else ""

