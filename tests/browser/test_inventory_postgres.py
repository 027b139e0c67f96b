"""PostgreSQL in the browser: add the local server, see its databases, create a sample database."""

from __future__ import annotations

import os
import secrets

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import sign_in

pytestmark = pytest.mark.browser


@pytest.fixture
def unique_databases(worker_id):
    from portal.inventory import postgres

    local = postgres.ConnectionParams("127.0.0.1", 5432, "postgres")
    probe = postgres.test_connection(local)
    if not probe.ok:
        if os.environ.get("STRONGROOM_REQUIRE_SERVICES") == "1":
            pytest.fail(probe.message)
        pytest.skip(probe.message)
    names = [f"sr_inv_{worker_id}_{secrets.token_hex(4)}" for _ in range(2)]
    yield local, names
    for name in names:
        with postgres.connect(local, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_connect_a_postgres_server_and_see_its_databases(page, live_server, seeded_lab, unique_databases):
    """GIVEN a user database on the local cluster
    WHEN the trainer adds the server 127.0.0.1:5432 and opens Databases
    THEN it is connected, lists that database but not postgres or test_* databases, and a sample
    database created from the page appears with the 'sample' tag."""
    from portal.inventory import postgres

    local, (existing, sample) = unique_databases
    postgres.create_database(local, existing)
    sign_in(page, live_server, "trainer")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="PostgreSQL servers").click()
    page.get_by_role("link", name="Create PostgreSQL server").click()
    page.get_by_label("Server name").fill("pg-browser")
    page.get_by_role("button", name="Review + create").click()
    expect(page.get_by_text("Connected", exact=True)).to_be_visible()

    page.get_by_role("navigation", name="Resource menu").get_by_role("link", name="Databases").click()
    table = page.locator("table.grid")
    expect(table).to_contain_text(existing)
    listed = [t.strip() for t in table.locator("tbody tr td:first-child").all_inner_texts()]
    assert existing in listed
    assert not {"postgres", "template0", "template1"} & set(listed)
    assert not [name for name in listed if name.startswith("test_")]

    page.get_by_role("link", name="+ Create sample database").click()
    page.get_by_label("Database name").fill(sample)
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.get_by_text(f"Sample database '{sample}' created")).to_be_visible()
    expect(page.locator(f"tr:has-text('{sample}')")).to_contain_text("sample")
    assert postgres.table_counts(local.with_database(sample))["sales.customers"] == 120
