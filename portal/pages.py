"""The portal's service pages, as global search offers them ("Services", above "Resources").

The product documents start with "Type Backup vaults in the search box. Under Services, select Backup
vaults." (reference §5.1), so search must find the pages, not only resources. Each page has the label
the navigation shows and the other names a trainee may type for it (the Azure portal's names:
Backup center, Business Continuity Center, Resiliency, Backup policies, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import NoReverseMatch, reverse


@dataclass(frozen=True)
class ServicePage:
    label: str
    url_name: str
    description: str
    aliases: tuple[str, ...] = ()
    trainer_only: bool = False  # only for a Lab Instructor (lab mode)
    labs_only: bool = False  # only for a Lab Trainee or a Lab Instructor (lab mode)

    def url(self) -> str | None:
        try:
            return reverse(self.url_name)
        except NoReverseMatch:  # an app that is not installed
            return None

    def names(self) -> tuple[str, ...]:
        return (self.label, *self.aliases)


SERVICE_PAGES: tuple[ServicePage, ...] = (
    ServicePage("Business Continuity Center", "portal:home", "Overview of backups, jobs and alerts",
                ("Backup center", "Resiliency", "Home")),
    ServicePage("Backup vaults", "vaults:vault_list", "Create and manage Backup vaults", ("Vaults",)),
    ServicePage("Backup instances", "protection:instance_list", "Protected items and their protection status",
                ("Protected items", "Protection inventory", "Configure protection")),
    ServicePage("Protection policies", "protection:policy_list", "Backup policies: schedules and retention rules",
                ("Backup policies", "Policies")),
    ServicePage("Backup jobs", "protection:job_list", "Backup, restore and management jobs", ("Jobs",)),
    ServicePage("Resource Guards", "mua:guard_list", "Multi-user authorization (MUA) for critical operations",
                ("Resource Guard", "Multi-user authorization", "MUA")),
    ServicePage("Approvals", "mua:approvals", "Access requests waiting for your approval", ("Approve requests",)),
    ServicePage("My access requests", "mua:my_requests", "Request time-bound access on a Resource Guard",
                ("Access requests", "My roles")),
    ServicePage("Subscriptions", "portal:subscription_list", "Subscriptions you can read"),
    ServicePage("Resource groups", "portal:resource_group_list", "Resource groups you can read"),
    ServicePage("Storage accounts", "portal:storage_account_list", "Storage accounts and their containers",
                ("Azure Data Lake Storage", "ADLS", "Containers")),
    ServicePage("Elastic SANs", "portal:elastic_san_list", "Elastic SAN instances, volume groups and volumes",
                ("Elastic SAN", "Volumes")),
    ServicePage("Disks", "portal:disk_list", "Azure managed disks: sparse images, sample data, snapshots",
                ("Managed disks", "Azure Disk", "Microsoft.Compute/disks")),
    ServicePage("PostgreSQL servers", "portal:postgres_server_list", "Azure Database for PostgreSQL flexible servers",
                ("Azure Database for PostgreSQL flexible servers", "PostgreSQL", "Databases")),
    ServicePage("Virtual networks", "portal:vnet_list", "Virtual networks, their subnets and DNS resolvers",
                ("VNet", "Subnets", "Networking")),
    ServicePage("Private endpoints", "portal:private_endpoint_list",
                "Private endpoints: private IPs in a subnet for a Backup vault, and their connection status",
                ("Private link", "Private Link Center", "privatelink")),
    ServicePage("Private DNS zones", "portal:dns_zone_list", "Private DNS zones, their A records and virtual network links",
                ("DNS", "Private DNS", "privatelink")),
    ServicePage("Activity log", "portal:activity_log", "Every write, who made it and what happened"),
    ServicePage("Alerts", "portal:alert_list", "Security and job alerts", ("Monitor",)),
    ServicePage("Lab clock", "portal:lab_clock", "Move the lab's time forward", trainer_only=True),
    ServicePage("Training labs", "labs:lab_list", "Guided labs, each in a sandbox of your own, with your work checked",
                ("Labs", "Training"), labs_only=True),
)


def _norm(text: str) -> str:
    return " ".join((text or "").lower().split())


def find_service_pages(query: str, *, trainer: bool = False, labs: bool = False, limit: int = 8) -> list[dict]:
    """Service pages whose label or another name contains ``query`` (or every word of it), best first:
    a name that starts with the query before one that only contains it."""
    q = _norm(query)
    if not q:
        return []
    words = q.split()
    hits = []
    for order, page in enumerate(SERVICE_PAGES):
        if page.trainer_only and not trainer or page.labs_only and not labs:
            continue
        names = [_norm(n) for n in page.names()]
        if any(n.startswith(q) for n in names):
            rank = 0
        elif any(q in n for n in names):
            rank = 1
        elif any(all(w in n for w in words) for n in names):
            rank = 2
        else:
            continue
        url = page.url()
        if url is None:
            continue
        matched = next((n for n, norm in zip(page.names(), names) if q in norm), page.label)
        hits.append((rank, order, {"label": page.label, "url": url, "description": page.description,
                                   "also": matched if matched != page.label else ""}))
    hits.sort(key=lambda h: (h[0], h[1]))
    return [h[2] for h in hits[:limit]]


# --- panels on the Home page, added by apps above the portal (e.g. the training labs) --------------------

_HOME_PANELS: list[tuple[str, str]] = []


def register_home_panel(template: str, context_function: str) -> None:
    """Show ``template`` on the Home page, with the context ``context_function(request)`` gives (a dotted
    path, so the portal never imports the app above it); an empty context leaves the panel out."""
    if (template, context_function) not in _HOME_PANELS:
        _HOME_PANELS.append((template, context_function))


def home_panels(request) -> list[str]:
    from django.template.loader import render_to_string
    from django.utils.module_loading import import_string
    from django.utils.safestring import mark_safe

    rendered = []
    for template, context_function in _HOME_PANELS:
        context = import_string(context_function)(request)
        if context:
            rendered.append(mark_safe(render_to_string(template, context, request=request)))
    return rendered
