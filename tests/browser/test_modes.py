"""Lab mode in Chromium, under the Content-Security-Policy: the "Lab" badge, the page behaviour that moved
from inline handlers to static/strongroom.js, and proof that a CSP violation is caught at all."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import screenshots, sign_in

pytestmark = pytest.mark.browser
shot = screenshots("MODES_SHOTS")


def test_an_inline_script_is_refused_and_noticed(page, live_server, seeded_lab):
    """The policy is really enforced, and the page fixture really notices: an injected inline script does
    not run, and its violation is reported (then cleared, so this test passes)."""
    page.goto(f"{live_server.url}/signin/")
    page.evaluate("""() => { const s = document.createElement('script'); s.textContent = 'window.ran = true';
                            document.body.appendChild(s); }""")
    assert page.evaluate("() => window.ran === undefined")
    for _ in range(250):  # the console event arrives while Playwright waits; up to 5 s
        if page.csp_violations:
            break
        page.wait_for_timeout(20)
    assert any("script-src" in v for v in page.csp_violations), page.csp_violations
    page.csp_violations.clear()


def test_lab_mode_is_said_and_the_page_behaviour_works_without_inline_scripts(page, live_server, seeded_lab):
    page.goto(f"{live_server.url}/signin/")
    expect(page.locator(".lab-mode-badge")).to_have_text("Lab")
    expect(page.locator("#demo-title")).to_be_visible()
    shot(page, "signin")
    sign_in(page, live_server, "trainer")
    expect(page.locator(".lab-mode-badge")).to_be_visible()
    # ☰ hides and shows the navigation (data-toggle-body-class).
    page.get_by_role("button", name="Show or hide navigation").click()
    expect(page.locator("body")).to_have_class("nav-collapsed")
    page.get_by_role("button", name="Show or hide navigation").click()
    expect(page.locator("body")).not_to_have_class("nav-collapsed")
    # Picking a persona submits the form by itself (data-submit-on-change).
    with page.expect_navigation():
        page.locator("#persona-select").select_option(label="Backup admin")
    expect(page.locator(".persona-badge")).to_contain_text("Backup admin")
    shot(page, "home-as-persona")
    # A missing page is the portal's own page.
    page.goto(f"{live_server.url}/no/such/page/")
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    expect(page.locator(".lab-mode-badge")).to_be_visible()
