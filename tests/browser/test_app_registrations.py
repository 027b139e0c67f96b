"""App registrations in Chromium, as an Owner would go through them: open App registrations from the left
navigation, register an app, add a client secret and read its value (shown this once: reloading or coming back
shows only its hint), give the service principal Backup Contributor on a resource group in Access control (IAM)
and check its access, then delete the secret and the app. Between the two, the value read off the page gets a
real token from the token endpoint (client credentials); once the secret is deleted the same request gets
Entra's error. Set APP_SHOTS=/some/dir to keep the pages at 1440 and 1024 px."""

from __future__ import annotations

import uuid

import pytest
import requests
from playwright.sync_api import expect

from tests.browser.conftest import screenshots, sign_in

pytestmark = pytest.mark.browser

_shot = screenshots("APP_SHOTS")
WIDTHS = (1440, 1024)
ARM_SCOPE = "https://management.azure.com/.default"


def shot(page, name):
    """Both widths; at neither may the page scroll sideways."""
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        _shot(page, f"{width}-{name}")
        assert page.evaluate("document.scrollingElement.scrollWidth") <= width, f"{name} scrolls sideways at {width}"
    page.set_viewport_size({"width": 1400, "height": 900})


def ask_for_token(live_server, tenant, client_id, value):
    return requests.post(f"{live_server.url}/{tenant}/oauth2/v2.0/token", timeout=10, data={
        "grant_type": "client_credentials", "client_id": client_id, "client_secret": value, "scope": ARM_SCOPE})


def test_register_an_app_add_a_secret_seen_once_assign_a_role_and_delete(page, live_server, seeded_lab):
    from portal.api import API_VERSION
    from security.models import AppRegistration, ClientSecret, RoleAssignment

    lab = seeded_lab
    name = f"backup-automation-{uuid.uuid4().hex[:6]}"
    group = lab.lab_group
    sign_in(page, live_server, "trainer")  # Owner at the root

    # The list, from the left navigation; then the register form.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="App registrations").click()
    expect(page.get_by_role("heading", name="App registrations", exact=True)).to_be_visible()
    page.get_by_role("link", name="+ New registration").click()
    expect(page.get_by_role("heading", name="Register an application")).to_be_visible()
    page.get_by_label("Name").fill(name)
    shot(page, "register-form")
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_role("heading", name=name)).to_be_visible()
    expect(page.locator(".message-success")).to_contain_text(f"Registered '{name}'")
    app = AppRegistration.objects.get(display_name=name)
    client_id = page.locator("#client-id").inner_text().strip()
    tenant = page.locator("#tenant-id").inner_text().strip()
    assert client_id == str(app.client_id)

    # A client secret: its value is on the page this once, with a button that copies it.
    expect(page.locator("#add-secret")).to_have_attribute("open", "")  # no secret yet: the next step is open
    page.get_by_label("Description").fill("nightly backups")
    page.get_by_label("Expires").select_option("90")
    page.get_by_role("button", name="Add", exact=True).click()
    new_secret = page.locator("#new-secret")
    expect(new_secret).to_contain_text("shown only this once")
    value = new_secret.get_by_role("textbox", name="Value").input_value()
    secret = ClientSecret.objects.get(application=app)
    assert len(value) == 40 and value.startswith(secret.hint)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    new_secret.get_by_role("button", name="Copy value").click()
    expect(new_secret).to_contain_text("Copied to the clipboard.")
    assert page.evaluate("navigator.clipboard.readText()") == value
    expect(page.locator("#client-secrets")).to_contain_text("nightly backups")
    shot(page, "detail-new-secret")

    # A reload posts the form again: nothing is added and the value is not shown again.
    page.reload()
    expect(page.locator("#secret-resubmitted")).to_contain_text("No new secret was added")
    expect(page.locator("#new-secret")).to_have_count(0)
    assert value not in page.content() and ClientSecret.objects.filter(application=app).count() == 1
    shot(page, "detail-reloaded")
    page.get_by_role("toolbar").get_by_role("link", name="Refresh").click()
    expect(page.locator("#secret-resubmitted")).to_have_count(0)  # the refreshed page, not the reloaded one
    expect(page.locator("#client-secrets")).to_contain_text(f"{secret.hint}********")
    expect(page.locator("#new-secret")).to_have_count(0)
    assert value not in page.content()

    page.get_by_role("navigation", name="Main").get_by_role("link", name="App registrations").click()
    row = page.locator("#app-registrations tbody tr", has_text=name)
    expect(row).to_contain_text(client_id)
    expect(row).to_contain_text("1 active")
    shot(page, "list")
    row.get_by_role("link", name=name).click()
    expect(page.locator("#client-id")).to_have_text(client_id)  # the registration's page, not the list
    expect(page.locator("#new-secret")).to_have_count(0)
    assert value not in page.content()

    # The value read off the page gets a real token, for the service principal.
    answer = ask_for_token(live_server, tenant, client_id, value)
    assert answer.status_code == 200, answer.text
    token = answer.json()["access_token"]
    vaults = f"{live_server.url}{group.resource_id}/providers/Microsoft.DataProtection/backupVaults"
    refused = requests.get(vaults, params={"api-version": API_VERSION}, timeout=10,
                           headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "AuthorizationFailed", refused.text

    # Access control (IAM) on the resource group: Backup Contributor for the service principal.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Resource groups").click()
    page.get_by_role("link", name=group.name).click()
    page.get_by_role("navigation", name="Resource menu").get_by_role("link", name="Access control (IAM)").click()
    page.get_by_role("navigation", name="Access control views").get_by_role("link", name="Add role assignment").click()
    page.get_by_role("radio", name="Backup Contributor", exact=True).check()
    page.get_by_label("Member").select_option(label=f"{name} (Service principal)")
    shot(page, "iam-add-service-principal")
    page.get_by_role("button", name="Assign").click()
    expect(page.locator(".message-success")).to_have_text(f"Added Backup Contributor for {name}.")
    row = page.locator("#role-assignments tbody tr", has_text=name)
    expect(row).to_contain_text("Service principal")
    expect(row).to_contain_text("Backup Contributor")
    assert RoleAssignment.objects.filter(principal=app.principal, scope__iexact=group.resource_id,
                                         role__name="Backup Contributor").count() == 1

    page.get_by_role("navigation", name="Access control views").get_by_role("link", name="Check access").click()
    page.get_by_label("Member").select_option(label=f"{name} (Service principal)")
    page.get_by_role("button", name="Check access").click()
    result = page.locator("#check-result")
    expect(result).to_contain_text(f"{name} at {group.name}")
    expect(result.locator("table")).to_contain_text("Backup Contributor")
    expect(result.locator("li", has_text="Delete this resource group")).to_contain_text("Not allowed")
    shot(page, "iam-check-access")

    # The same token now reads the group's vaults: RBAC applies to it as to a person.
    listed = requests.get(vaults, params={"api-version": API_VERSION}, timeout=10,
                          headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 200 and "value" in listed.json(), listed.text

    # Delete the secret: the token request with its value now gets Entra's error.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="App registrations").click()
    page.locator("#app-registrations").get_by_role("link", name=name).click()
    expect(page.locator("#app-roles")).to_contain_text(f"Backup Contributor at {group.resource_id}")
    shot(page, "detail-with-role")
    page.get_by_role("button", name="Delete client secret nightly backups").click()
    expect(page.locator(".message-success")).to_contain_text("Deleted the client secret nightly backups")
    expect(page.get_by_text("No client secrets")).to_be_visible()
    refused = ask_for_token(live_server, tenant, client_id, value)
    assert refused.status_code == 401, refused.text
    body = refused.json()
    assert body["error"] == "invalid_client" and body["error_description"].startswith("AADSTS7000215"), body
    assert 7000215 in body["error_codes"]

    # Delete the app, typing its name.
    page.get_by_role("toolbar").get_by_role("link", name="Delete").click()
    expect(page.get_by_role("heading", name="Delete an app registration")).to_be_visible()
    expect(page.locator(".callout-danger")).to_contain_text("Backup Contributor")
    page.get_by_label("Type the application name to confirm").fill(name)
    shot(page, "delete")
    page.get_by_role("button", name="Delete").click()
    expect(page.locator(".message-success")).to_contain_text(f"Deleted the app registration '{name}'")
    expect(page.locator("#app-registrations tbody tr", has_text=name)).to_have_count(0)
    assert not AppRegistration.objects.filter(pk=app.pk).exists()
    assert not RoleAssignment.objects.filter(principal_id=app.principal_id).exists()
