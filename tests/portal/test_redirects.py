"""`next` parameters lead only to this site: Test connection, the persona switch and Request access
(portal.shortcuts.safe_next, Django's url_has_allowed_host_and_scheme)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.inventory import services as inv

pytestmark = pytest.mark.django_db

OFFSITE = [
    "https://evil.example/",
    "http://evil.example/signin/",
    "//evil.example/",
    "/\\evil.example/",
    "\\\\evil.example",
    " //evil.example",
    "https:evil.example",
    "javascript:alert(1)",
    "http://testserver.evil.example/",
    "resource-groups",  # not a path: redirect() would look it up as a view name
    "http://testserver/subscriptions/",  # this site, but only paths are taken
]
ONSITE = ["/resource-groups/", "/backup/jobs/?status=Failed"]


@pytest.fixture
def server(lab):
    # Nothing listens on port 1: the test fails at once, and the page still redirects.
    return inv.create_postgres_server(lab.trainer, resource_group=lab.lab_group, name="pg-redirect", region=lab.region,
                                      host="127.0.0.1", port=1, admin_user="postgres")


@pytest.mark.parametrize("target", OFFSITE)
def test_test_connection_never_redirects_off_site(client, lab, server, target):
    client.force_login(lab.trainer.user)
    response = client.post(reverse("portal:postgres_server_refresh", args=[server.pk]), {"next": target})
    assert response.status_code == 302
    assert response["Location"] == reverse("portal:postgres_server_detail", args=[server.pk])


@pytest.mark.parametrize("target", ONSITE)
def test_test_connection_returns_to_the_page_it_came_from(client, lab, server, target):
    client.force_login(lab.trainer.user)
    response = client.post(reverse("portal:postgres_server_refresh", args=[server.pk]), {"next": target})
    assert response.status_code == 302 and response["Location"] == target


@pytest.mark.parametrize("target", OFFSITE)
def test_persona_switch_never_redirects_off_site(client, lab, target):
    client.force_login(lab.trainer.user)
    response = client.post(reverse("portal:switch_persona"), {"persona": lab.personas["reader"].pk, "next": target})
    assert response.status_code == 302 and response["Location"] == reverse("portal:home")


@pytest.mark.parametrize("target", ONSITE)
def test_persona_switch_returns_to_the_page_it_came_from(client, lab, target):
    client.force_login(lab.trainer.user)
    response = client.post(reverse("portal:switch_persona"), {"persona": "", "next": target})
    assert response.status_code == 302 and response["Location"] == target


def test_request_access_cancel_link_stays_on_site(client, lab):
    from security import mua

    guard = mua.create_resource_guard(lab.trainer, resource_group_id=lab.lab_group.resource_id, name="rg-guard-next",
                                      region=lab.region.name)
    client.force_login(lab.trainer.user)
    for target in OFFSITE:
        page = client.get(reverse("mua:request_access", args=[guard.pk]), {"next": target})
        html = page.content.decode()
        assert page.status_code == 200
        # (the top bar's persona form carries this page's own path, query and all, which stays on site)
        assert '<input type="hidden" name="next" value="">' in html, target
        assert 'href="' + target not in html and "javascript:" not in html, target
    page = client.get(reverse("mua:request_access", args=[guard.pk]), {"next": "/backup/jobs/"})
    assert 'name="next" value="/backup/jobs/"' in page.content.decode()
