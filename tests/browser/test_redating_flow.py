"""Browser: editing a policy's retention shorter re-dates the points its instance already has; those it
expired show "being soft deleted" in the instance's recovery points, with no Restore (issue 21)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import screenshots, sign_in
from tests.protection._redating_fixtures import bare_instance, points

pytestmark = pytest.mark.django_db(transaction=True)
shot = screenshots("STRONGROOM_REDATING_SCREENSHOTS")


def test_a_shorter_retention_shows_points_being_soft_deleted(page, live_server, seeded_lab, lab_vault):
    from protection import datasource_types
    from protection.policies import services as policy_services

    policy = policy_services.create_policy(
        seeded_lab.trainer, vault=lab_vault, name="rd-browser", datasource_type=datasource_types.ADLS,
        spec=policy_services.default_spec(datasource_types.ADLS))  # Default 30 days
    instance = bare_instance(lab_vault, policy, name="bi-rd-browser")
    kept, expired = points(instance, [(2, "Default", 30), (12, "Default", 30)])

    sign_in(page, live_server, "trainer")
    page.goto(f"{live_server.url}/backup/policies/{policy.pk}/edit/")
    expect(page.locator("#applies-to")).to_contain_text("bi-rd-browser")
    page.locator("#id_default_count").fill("7")
    page.get_by_role("button", name="Update").click()
    expect(page.locator(".messages, [role=status], body").first).to_contain_text(
        "Existing recovery points re-dated: 2 now expire earlier, 1 is being soft deleted.")

    page.goto(f"{live_server.url}/backup/instances/{instance.pk}/")
    gone = page.locator(f'tr[data-recovery-point="{expired.pk}"]')
    expect(gone.locator("[data-soft-deleted]")).to_have_text("being soft deleted")
    expect(gone).to_contain_text("Not restorable")
    expect(gone.get_by_role("link", name="Restore")).to_have_count(0)
    still = page.locator(f'tr[data-recovery-point="{kept.pk}"]')
    expect(still).to_contain_text("Completed")
    expect(still.get_by_role("link", name="Restore")).to_have_count(1)
    shot(page, "instance-points-being-soft-deleted")
