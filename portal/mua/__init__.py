"""The portal's part of multi-user authorization (namespace ``mua``): the Resource Guard pages,
Approvals and My access requests (`views`, `forms`, `urls`), the lab's Resource Guard (`lab`), and here
the wiring: Resource Guards in the resource registry (IAM, search, breadcrumbs find them) and
notifications for access requests in the top bar's panel.

`PortalConfig.ready()` calls `register()`. The guards, links and requests themselves live in
`security.mua`.
"""

from __future__ import annotations

from django.urls import reverse

PAGES = {"my-requests": "mua:my_requests", "approvals": "mua:approvals"}


def notify(principal, *, title: str, message: str, resource_id: str, page: str, state: str = "") -> None:
    """Deliver a notification about an access request to ``principal``, showing the request's state
    (a pending request reads "Pending approval", never "Succeeded")."""
    from portal import services
    from portal.models import Operation

    link = reverse(PAGES.get(page, "mua:my_requests"))
    status = state if state in (Operation.Status.PENDING, Operation.Status.APPROVED, Operation.Status.REJECTED,
                                Operation.Status.EXPIRED) else Operation.Status.SUCCEEDED
    operation = services.start_operation(principal, title, resource_id=resource_id, link=link)
    services.finish_operation(operation, succeeded=True, message=message, status=status)


def register() -> None:
    from portal import resources
    from security import mua
    from security.models import ResourceGuard
    from security.operations import GUARD_READ

    resources.register(
        resources.ResourceType(
            ResourceGuard.RESOURCE_TYPE,
            "Resource Guard",
            ResourceGuard,
            "mua:guard_detail",
            GUARD_READ,
            icon="resource-guard",
            # Its resource group is a resource id, not a ResourceGroup row: it is not listed among a
            # group's contents (the registry filters those by a foreign key).
            in_resource_group=False,
        )
    )
    mua.register_notifier(notify)
