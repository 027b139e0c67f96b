"""A person locked out after too many wrong passwords, and an Owner unlocking them (issue 18, "Sign-in
throttling"), in two browsers: the reader at the sign-in page, the trainer (Owner at the root) at Security >
Sign-in lockouts. Screenshots go to STRONGROOM_SIGNIN_SHOTS when it is set."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import screenshots, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "Correct-horse-battery-47"
shot = screenshots("STRONGROOM_SIGNIN_SHOTS")


def _try(page, live_server, username, password):
    page.goto(f"{live_server.url}/signin/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_locked_out_after_wrong_passwords_and_unlocked_by_an_owner(page, browser, live_server, seeded_lab, settings):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.get(username="reader")
    user.set_password(PASSWORD)
    user.save()
    limit = settings.AXES_FAILURE_LIMIT
    for attempt in range(1, limit):
        _try(page, live_server, "reader", f"wrong-guess-{attempt}")
        # The click returns before the answer has loaded; expect waits for it (a bare is_visible did not).
        expect(page.get_by_text("Please enter a correct username and password")).to_be_visible()
    _try(page, live_server, "reader", "wrong-guess-last")
    expect(page.get_by_role("heading", name="Sign-in locked")).to_be_visible()
    # Now even the right password is refused, with the lockout page.
    _try(page, live_server, "reader", PASSWORD)
    locked = page.locator("[role=alert]")
    expect(page.get_by_role("heading", name="Sign-in locked")).to_be_visible()
    assert "reader" in locked.inner_text() and "127.0.0.1" in locked.inner_text() and "UTC" in locked.inner_text()
    expect(page.get_by_text("can unlock it sooner")).to_be_visible()
    shot(page, "locked-out")

    # The trainer, in a browser of their own, unlocks the reader from Security > Sign-in lockouts.
    owner_context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-US")
    owner = owner_context.new_page()
    try:
        sign_in(owner, live_server, "trainer")
        owner.get_by_role("navigation", name="Main").get_by_role("link", name="Sign-in lockouts").click()
        row = owner.locator("#signin-lockouts tbody tr", has_text="reader")
        expect(row.get_by_text("127.0.0.1")).to_be_visible()
        expect(row.get_by_text(str(limit), exact=True)).to_be_visible()
        shot(owner, "lockouts")
        row.get_by_role("button", name="Unlock").click()
        expect(owner.get_by_text("Unlocked 'reader' at 127.0.0.1")).to_be_visible()
        expect(owner.get_by_text("No lockouts")).to_be_visible()
    finally:
        owner_context.close()

    # The reader signs in with the right password again.
    _try(page, live_server, "reader", PASSWORD)
    page.wait_for_url(f"{live_server.url}/")
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
