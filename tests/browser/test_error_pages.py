"""The pages bad input and a database outage lead to (issue 13): in the portal's look, readable at 1440
and 1024 px without sideways scrolling. Screenshots are kept under test-artifacts/error-pages/."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS, sign_in

WIDTHS = (1440, 1024)


def _check(page, name: str, *texts: str):
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        for text in texts:
            expect(page.get_by_text(text).first).to_be_visible()  # the outage page reloads itself: wait, never read once
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{name} at {width} px scrolls sideways by {overflow} px"
        (ARTIFACTS / "error-pages").mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "error-pages" / f"{name}-{width}.png"), full_page=True)


def test_bad_input_not_found_and_empty_filter_pages(page, live_server, seeded_lab):
    sign_in(page, live_server, "trainer")
    response = page.goto(f"{live_server.url}/search/?q=a%00b")
    assert response.status == 400
    _check(page, "bad-input", "This request cannot be used", "contains a NUL character")
    response = page.goto(f"{live_server.url}/vaults/{2**62}/")
    assert response.status == 404
    _check(page, "not-found", "Not found")
    response = page.goto(f"{live_server.url}/backup/jobs/?vault=abc&range=all")
    assert response.status == 200
    _check(page, "unknown-filter", "No jobs match these filters", "The vault filter “abc” names no vault")


def test_database_outage_page(page, live_server, seeded_lab, monkeypatch):
    from django.db import OperationalError
    from django.db.backends import utils as db_utils

    sign_in(page, live_server, "trainer")

    def refused(self, *args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(db_utils.CursorWrapper, "execute", refused)
    response = page.goto(f"{live_server.url}/vaults/")
    assert response.status == 503 and response.headers["retry-after"] == "5"
    _check(page, "database-outage", "The database is not answering")
    monkeypatch.undo()
    page.wait_for_url(f"{live_server.url}/vaults/")  # the page reloads itself, and the database answers again
    page.wait_for_function("document.title.indexOf('not answering') < 0", timeout=15_000)
    expect(page.get_by_role("heading", name="Backup vaults").first).to_be_visible()


pytestmark = pytest.mark.django_db(transaction=True)
