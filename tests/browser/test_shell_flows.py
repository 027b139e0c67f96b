"""The shell's user flows, clicked through in Chromium as a person would.

GIVEN the seeded demo lab WHEN a trainer signs in, role-plays, manages access and meets a denial
THEN the pages show it and the database and activity log agree.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import play, play_as, sign_in

pytestmark = pytest.mark.browser


def test_sign_in_rejects_a_wrong_password_then_lands_on_home(page, live_server, seeded_lab):
    """GIVEN the sign-in page WHEN the password is wrong THEN an error shows; WHEN right THEN home."""
    page.goto(f"{live_server.url}/")
    expect(page).to_have_url(re.compile(r"/signin/\?next=/$"))
    expect(page.get_by_role("heading", name="Lab sign-ins")).to_be_visible()

    page.get_by_label("Username").fill("trainer")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Please enter a correct username and password")
    expect(page.get_by_label("Username")).to_have_value("trainer")

    sign_in(page, live_server, "trainer")
    expect(page.get_by_role("heading", name="Business continuity overview")).to_be_visible()
    expect(page.locator(".signed-in")).to_contain_text("Terry Trainer")
    expect(page.locator("#my-access")).to_contain_text("Owner")


def test_persona_switch_from_the_top_bar_changes_who_acts(page, live_server, seeded_lab):
    """GIVEN a signed-in trainer WHEN they pick the Backup operator THEN the badge shows and pages act
    as Olga Operator; WHEN they pick themselves again THEN the badge is gone."""
    sign_in(page, live_server, "trainer")
    expect(page.locator(".persona-badge")).to_have_count(0)

    play(page, "Backup operator")
    expect(page.locator(".persona-badge")).to_have_text("Role-playing: Backup operator")
    expect(page.locator(".signed-in")).to_contain_text("Olga Operator")
    access = page.locator("#my-access")
    expect(access).to_contain_text("Backup Operator")
    expect(access).not_to_contain_text("Owner")
    # The operator sees only the lab resource group, not the Security subscription's.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Resource groups").click()
    expect(page.get_by_role("link", name="rg-backup-lab")).to_be_visible()
    expect(page.get_by_role("link", name="rg-security")).to_have_count(0)

    play(page, None)
    expect(page.locator(".persona-badge")).to_have_count(0)
    expect(page.locator(".signed-in")).to_have_text("Terry Trainer")
    expect(page.get_by_role("link", name="rg-security")).to_be_visible()


def test_iam_add_check_and_remove_a_role_assignment(page, live_server, seeded_lab):
    """GIVEN the trainer on the lab resource group's IAM WHEN they add Reader for the outsider THEN it
    is listed and Check access shows it; WHEN they remove it THEN it is gone, here and in the DB."""
    from security.models import RoleAssignment

    outsider = seeded_lab.personas["outsider"].principal
    group = seeded_lab.lab_group
    sign_in(page, live_server, "trainer")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Resource groups").click()
    page.get_by_role("link", name="rg-backup-lab").click()
    page.get_by_role("navigation", name="Resource menu").get_by_role("link", name="Access control (IAM)").click()
    expect(page.get_by_role("heading", name="Role assignments")).to_be_visible()

    page.get_by_role("navigation", name="Access control views").get_by_role("link", name="Add role assignment").click()
    page.get_by_role("radio", name="Reader", exact=True).check()
    page.get_by_label("Member").select_option(label="Oscar Outsider (outsider)")
    page.get_by_role("button", name="Assign").click()
    expect(page.locator(".message-success")).to_have_text("Added Reader for Oscar Outsider.")
    row = page.locator("#role-assignments tbody tr", has_text="Oscar Outsider")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Reader")
    expect(row).to_contain_text("This resource group")
    assert RoleAssignment.objects.filter(principal=outsider, scope__iexact=group.resource_id, role__name="Reader").count() == 1

    page.get_by_role("navigation", name="Access control views").get_by_role("link", name="Check access").click()
    page.get_by_label("Member").select_option(label="Oscar Outsider (outsider)")
    page.get_by_role("button", name="Check access").click()
    result = page.locator("#check-result")
    expect(result).to_contain_text("Oscar Outsider at rg-backup-lab")
    expect(result.locator("table")).to_contain_text("Reader")
    expect(result.locator("li", has_text="Read this resource group")).to_contain_text("Allowed")
    expect(result.locator("li", has_text="Delete this resource group")).to_contain_text("Not allowed")

    page.get_by_role("navigation", name="Access control views").get_by_role("link", name="Role assignments").click()
    row = page.locator("#role-assignments tbody tr", has_text="Oscar Outsider")
    row.get_by_text("Remove", exact=False).first.click()
    row.get_by_role("button", name="Yes, remove").click()
    expect(page.locator(".message-success")).to_have_text("Removed Reader for Oscar Outsider.")
    expect(page.locator("#role-assignments tbody tr", has_text="Oscar Outsider")).to_have_count(0)
    assert not RoleAssignment.objects.filter(principal=outsider, scope__iexact=group.resource_id).exists()


def test_iam_add_role_assignment_with_a_condition(page, live_server, seeded_lab):
    """GIVEN the trainer on the restore group's Add role assignment WHEN they pick Role Based Access Control
    Administrator THEN the Conditions section appears (hidden for Reader); WHEN they allow only Storage Account
    Backup Contributor for service principals THEN the assignment carries that condition, and its row's
    Condition column shows it in words and as Azure's expression."""
    from security.models import RoleAssignment

    outsider = seeded_lab.personas["outsider"].principal
    group = seeded_lab.target_group
    sign_in(page, live_server, "trainer")
    page.goto(f"{live_server.url}/iam/?scope={group.resource_id}&tab=add")
    conditions = page.locator("#conditions")
    page.get_by_role("radio", name="Reader", exact=True).check()
    expect(conditions).to_be_hidden()
    page.get_by_role("radio", name="Role Based Access Control Administrator", exact=True).check()
    expect(conditions).to_be_visible()
    recommended = conditions.get_by_role(
        "radio", name="Allow user to assign all roles except privileged administrator roles Owner, UAA, RBAC (Recommended)")
    expect(recommended).to_be_checked()
    expect(conditions.locator(".constrained-options")).to_be_hidden()
    conditions.get_by_role(
        "radio", name="Allow user to only assign selected roles to selected principals (fewer privileges)").check()
    expect(conditions.locator(".constrained-options")).to_be_visible()
    conditions.get_by_role("checkbox", name="Storage Account Backup Contributor", exact=True).check()
    conditions.get_by_role("checkbox", name="Service principals (managed identities)").check()
    page.get_by_label("Member").select_option(label="Oscar Outsider (outsider)")
    page.get_by_role("button", name="Assign").click()
    expect(page.locator(".message-success")).to_have_text("Added Role Based Access Control Administrator for Oscar Outsider.")

    assignment = RoleAssignment.objects.get(principal=outsider, scope__iexact=group.resource_id)
    assert assignment.condition["principalTypes"] == ["ServicePrincipal"] and assignment.condition_version == "2.0"
    row = page.locator(f'#role-assignments tr[data-assignment="{assignment.pk}"]')
    row.locator(".condition-view summary").click()
    expect(row.locator(".condition-panel")).to_contain_text(
        "Add or remove only role assignments of Storage Account Backup Contributor, for service principals")
    expect(row.locator("pre.condition-text")).to_contain_text(
        "@Request[Microsoft.Authorization/roleAssignments:PrincipalType] ForAnyOfAnyValues:StringEqualsIgnoreCase "
        "{'ServicePrincipal'}")


def test_a_denial_is_explained_and_lands_in_the_activity_log(page, live_server, seeded_lab):
    """GIVEN the trainer playing the Backup operator WHEN they try to create a resource group THEN the
    denial page names principal, action and scope, nothing is created, and the activity log shows
    the Failed entry with the trainer-as-persona caller."""
    from portal.models import ResourceGroup

    play_as(page, live_server, "Backup operator")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Resource groups").click()
    page.get_by_role("toolbar").get_by_role("link", name="+ Create").click()
    expect(page.locator(".callout-warning")).to_contain_text("resourceGroups/write")
    page.get_by_label("Resource group").fill("rg-operator-try")
    page.get_by_role("button", name="Create").click()

    denied = page.locator("article.denied")
    expect(denied.get_by_role("heading", name="You don't have permission to do this")).to_be_visible()
    facts = denied.locator(".denied-facts")
    expect(facts).to_contain_text("Role-based access control (RBAC)")
    expect(facts).to_contain_text("Olga Operator")
    expect(facts).to_contain_text("Microsoft.Resources/subscriptions/resourceGroups/write")
    expect(facts).to_contain_text(f"{seeded_lab.lab_subscription.resource_id}/resourceGroups/rg-operator-try")
    expect(facts).to_contain_text("AuthorizationFailed")
    expect(denied.get_by_role("alert")).to_contain_text("The client 'Olga Operator' with object id")
    assert not ResourceGroup.objects.filter(name="rg-operator-try").exists()

    denied.get_by_role("link", name="Open the activity log").click()
    entry = page.locator("details.log-row").first
    expect(entry).to_contain_text("Create or update resource group")
    expect(entry).to_contain_text("Failed")
    expect(entry).to_contain_text("Terry Trainer as Backup operator")
    expect(entry).to_contain_text("acting principal: Olga Operator")
    entry.locator("summary").click()
    expect(entry.locator(".log-details")).to_contain_text("Correlation ID")
    expect(entry.locator(".log-details")).to_contain_text('"code": "AuthorizationFailed"')
