"""Resource Guard pages, Approvals, My access requests, Request access and the vault's MUA blade.

GIVEN the lab's guard (security admin: Backup MUA Admin and approver; backup admin: Reader) and an
unlinked vault WHEN each persona opens or posts each page THEN outsiders get 404, readers 403 on
writes, and the writes that are allowed change what the services say.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from security import mua
from security.models import AccessRequest, ActivityLogEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def guard(lab):
    from portal.mua.lab import seed_mua

    return seed_mua(lab)


@pytest.fixture
def vault(lab):
    from vaults.mua import seed_mua_vault

    return seed_mua_vault(lab)


def _pages(guard):
    return [
        reverse("mua:guard_detail", args=[guard.pk]),
        reverse("mua:guard_operations", args=[guard.pk]),
        reverse("mua:guard_approvers", args=[guard.pk]),
        reverse("mua:request_access", args=[guard.pk]),
    ]


def test_outsiders_and_lab_readers_do_not_see_the_guard(signed_in_client, outsider, reader, guard):
    for principal in (outsider, reader):
        client = signed_in_client(principal)
        for url in [*_pages(guard), reverse("mua:guard_delete", args=[guard.pk])]:
            assert client.get(url).status_code == 404, url
        listing = client.get(reverse("mua:guard_list"))
        assert listing.status_code == 200 and b"rg-guard-contoso" not in listing.content


def test_a_guard_reader_sees_it_and_is_refused_every_write(signed_in_client, backup_admin, guard):
    """The backup admin holds Reader on the guard: pages open, writes are 403, nothing changes."""
    client = signed_in_client(backup_admin)
    for url in _pages(guard):
        assert client.get(url).status_code == 200, url
    assert b"rg-guard-contoso" in client.get(reverse("mua:guard_list")).content
    ops = client.post(reverse("mua:guard_operations", args=[guard.pk]), {f"op-{mua.DELETE_INSTANCE}": "disable"})
    assert ops.status_code == 403
    assert client.post(reverse("mua:guard_approvers", args=[guard.pk]), {"form": "approvers"}).status_code == 403
    assert client.get(reverse("mua:guard_delete", args=[guard.pk])).status_code == 403
    guard.refresh_from_db()
    assert mua.DELETE_INSTANCE not in guard.vault_critical_operation_exclusions
    assert [a.display_name for a in guard.approvers.all()] == ["Sam Security"]


def test_the_owner_edits_operations_but_never_the_mandatory_ones(signed_in_client, security_admin, guard):
    client = signed_in_client(security_admin)
    page = client.get(reverse("mua:guard_operations", args=[guard.pk]))
    assert page.content.count(b'value="disable"') == len([c for c in mua.CRITICAL_OPERATIONS if not c.mandatory])
    response = client.post(reverse("mua:guard_operations", args=[guard.pk]), {
        f"op-{mua.DELETE_INSTANCE}": "disable",
        f"op-{mua.REDUCE_SOFT_DELETE}": "disable",  # forged: a mandatory row has no such control
    })
    assert response.status_code == 400
    assert b"mandatory" in response.content
    response = client.post(reverse("mua:guard_operations", args=[guard.pk]), {f"op-{mua.DELETE_INSTANCE}": "disable"})
    assert response.status_code == 302
    guard.refresh_from_db()
    assert guard.vault_critical_operation_exclusions == [mua.DELETE_INSTANCE]


def test_request_approve_through_the_pages(signed_in_client, client, backup_admin, security_admin, guard, vault):
    requester = signed_in_client(backup_admin)
    url = reverse("mua:request_access", args=[guard.pk])
    empty = requester.post(url, {"justification": "", "hours": "1"})
    assert empty.status_code == 400 and b"Enter a justification" in empty.content
    assert requester.post(url, {"justification": "drill", "hours": "2", "operation": mua.PROXY_DELETE,
                                "target": vault.resource_id}).status_code == 302
    access = AccessRequest.objects.get()
    assert access.operation == mua.PROXY_DELETE and access.target_resource_id == vault.resource_id
    assert b"Pending approval" in requester.get(reverse("mua:my_requests")).content

    # The requester cannot decide their own request, even by posting to Approvals.
    refused = requester.post(reverse("mua:approvals"), {"request_id": access.pk, "comment": "me", "decision": "approve"})
    assert refused.status_code == 403
    client.logout()
    approver = signed_in_client(security_admin)
    queue = approver.get(reverse("mua:approvals"))
    assert b"Ben Admin" in queue.content and b"drill" in queue.content
    no_comment = approver.post(reverse("mua:approvals"), {"request_id": access.pk, "comment": "", "decision": "approve"})
    assert no_comment.status_code == 400
    done = approver.post(reverse("mua:approvals"), {"request_id": access.pk, "comment": "ok", "decision": "approve"})
    assert done.status_code == 302
    access.refresh_from_db()
    assert access.state == AccessRequest.State.APPROVED and access.decided_by == security_admin


def test_the_vault_blade_links_and_the_denial_offers_request_access(
    signed_in_client, backup_admin, backup_operator, outsider, guard, vault
):
    url = reverse("vaults:vault_mua", args=[vault.pk])
    assert signed_in_client(outsider).get(url).status_code == 404
    operator = signed_in_client(backup_operator)
    assert operator.get(url).status_code == 200
    assert operator.post(url, {"guard": guard.pk}).status_code == 403  # no proxies/write on the vault
    assert not mua.is_linked(vault.resource_id)

    admin = signed_in_client(backup_admin)
    page = admin.get(url)
    assert b"rg-guard-contoso (rg-security)" in page.content
    wrong = admin.post(url, {"resource_guard_id": guard.resource_id + "x"})
    assert wrong.status_code == 403  # an ID under a scope they cannot read: not told whether it exists
    assert admin.post(url, {"guard": guard.pk}).status_code == 302
    assert mua.is_linked(vault.resource_id)
    assert b"would be refused for you" in admin.get(url).content

    denied = admin.post(url, {})  # "Protect with Resource Guard" cleared
    assert denied.status_code == 403
    assert b'id="request-access"' in denied.content
    assert reverse("mua:request_access", args=[guard.pk]).encode() in denied.content
    assert mua.is_linked(vault.resource_id)
    assert ActivityLogEntry.objects.filter(operation=mua.PROXY_DELETE, status="Failed").exists()


def test_a_linked_guard_cannot_be_deleted_from_its_page(signed_in_client, backup_admin, security_admin, guard, vault):
    mua.link_resource_guard(backup_admin, vault, guard_id=guard.resource_id, region=vault.region_id)
    client = signed_in_client(security_admin)
    page = client.get(reverse("mua:guard_delete", args=[guard.pk]))
    assert b"Cannot delete the Resource Guard while vaults are linked to it." in page.content
    response = client.post(reverse("mua:guard_delete", args=[guard.pk]), {"confirm_name": guard.name})
    assert response.status_code == 409
    assert mua.guard_by_id(guard.resource_id) is not None


def test_iam_and_search_find_the_guard(signed_in_client, security_admin, guard):
    client = signed_in_client(security_admin)
    iam = client.get(reverse("portal:iam"), {"scope": guard.resource_id})
    assert iam.status_code == 200 and b"Backup MUA Admin" in iam.content
    found = client.get(reverse("portal:search"), {"q": "guard-contoso"})
    assert b"Resource Guard" in found.content
