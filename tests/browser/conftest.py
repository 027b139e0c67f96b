"""Browser tests: Playwright's sync API driving Debian's Chromium against pytest-django's live server.

One browser per test session, a fresh context (cookies, storage) per test. On failure the page is
saved under ``test-artifacts/``. Playwright's sync API runs an event loop in this thread, so Django
must be told that its ORM calls here are safe (only in this conftest).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CSP_PREFIX = "CSP violation:"
CSP_LISTENER = """document.addEventListener('securitypolicyviolation', function (e) {
  console.error('%s ' + e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline') + ' at ' + e.sourceFile + ':' + e.lineNumber);
});""" % CSP_PREFIX


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        reason = f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium) to run browser tests."
        if os.environ.get("STRONGROOM_REQUIRE_SERVICES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    yield browser
    browser.close()
    playwright.stop()


def open_page(browser, request, artifact_name: str):
    """A fresh browser context (cookies, storage) and page, closed after the test; a screenshot named
    ``artifact_name`` is kept if the test fails. Every page runs under the Content-Security-Policy (the same in
    lab and production mode): a violation (an inline script or handler, eval, a resource from elsewhere) fails
    the test that met it. ``page.csp_violations`` lists what was seen."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-US")
    context.set_default_timeout(10_000)
    context.add_init_script(CSP_LISTENER)
    page = context.new_page()
    violations = page.csp_violations = []
    page.on("console", lambda message: violations.append(f"{page.url}: {message.text}")
            if "Content Security Policy" in message.text or message.text.startswith(CSP_PREFIX) else None)
    yield page
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        try:
            page.screenshot(path=str(ARTIFACTS / f"{artifact_name}.png"), full_page=True)
        except Exception:  # a crashed page must not hide the test's own failure
            pass
    context.close()
    if violations and not (failed is not None and failed.failed):
        pytest.fail("Content-Security-Policy violations:\n" + "\n".join(dict.fromkeys(violations)))


@pytest.fixture
def page(browser, live_server, transactional_db, request):
    """A fresh browser context and page for one test (``open_page``)."""
    yield from open_page(browser, request, re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)[-150:])


@pytest.fixture
def seeded_lab(transactional_db):
    """The demo lab, committed so the live server's thread sees it."""
    from portal.lab import seed_tenancy

    return seed_tenancy()


def sign_in(page, live_server, username: str, password: str | None = None):
    """Sign in through the form, as a person would, and wait for the home page."""
    from django.conf import settings

    page.goto(f"{live_server.url}/signin/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password or settings.STRONGROOM_DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server.url}/")
    return page


def play(page, persona_title: str | None):
    """Pick a persona (by its title) in the top bar, or None to act as yourself again."""
    select = page.locator("#persona-select")
    if persona_title is None:
        value = ""
    else:
        value = select.locator("option", has_text=persona_title).first.get_attribute("value")
    with page.expect_navigation():
        select.select_option(value=value)
    return page


def play_as(page, live_server, persona_title: str):
    """Sign in as the trainer and role-play a persona (by its title): how most flows start."""
    sign_in(page, live_server, "trainer")
    return play(page, persona_title)


def commands_loaded(page):
    """Wait until a page's htmx parts that load on their own (an instance's command bar fills in Backup now,
    Restore to secondary region, ... after the page) have arrived: a click on a command while one lands can
    hit the command it pushed into that place instead."""
    page.wait_for_load_state("networkidle")


def screenshots(env_name: str):
    """``shot(page, name)``: a full-page screenshot in the folder the environment variable ``env_name``
    names, when it is set (to look at the pages a flow passes through); nothing otherwise."""
    folder = os.environ.get(env_name)

    def shot(page, name):
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)

    return shot


def at_widths(page, shot, name, widths=(1440, 1024)):
    """``shot`` the page as ``{width}-{name}`` at each width, asserting it does not scroll sideways there; the
    viewport is 1400 px again afterwards."""
    for width in widths:
        page.set_viewport_size({"width": width, "height": 900})
        shot(page, f"{width}-{name}" if len(widths) > 1 else name)
        scroll_width = page.evaluate("document.scrollingElement.scrollWidth")
        assert scroll_width <= width, f"{name} scrolls sideways at {width} px ({scroll_width} px wide)"
    page.set_viewport_size({"width": 1400, "height": 900})


def finished_job(job_id, timeout=60):
    """The job, once it has ended (a worker runs it)."""
    from protection.models import Job
    from tests.conftest import wait_until

    def ended():
        job = Job.objects.get(pk=job_id)
        return job if job.is_finished else None

    return wait_until(ended, timeout, f"job {job_id} to finish", every=0.2)


def local_postgres():
    """The local PostgreSQL cluster's admin connection; a failure in CI, a skip elsewhere when it is down."""
    from portal.inventory import postgres

    params = postgres.ConnectionParams("127.0.0.1", 5432, "postgres")
    if not postgres.test_connection(params).ok:
        if os.environ.get("STRONGROOM_REQUIRE_SERVICES") == "1":
            pytest.fail("PostgreSQL is not answering on 127.0.0.1:5432.")
        pytest.skip("PostgreSQL is not answering on 127.0.0.1:5432.")
    return params


@pytest.fixture
def protected_lab(seeded_lab, worker):
    """The seeded lab's inventory (a sample database of its own), vault and protected items by datasource
    type (the source account's containers, the volume and the PostgreSQL server), jobs run on a worker
    thread. The sample database and those a test adds to ``databases`` are dropped afterwards."""
    import secrets

    from portal.inventory import postgres
    from portal.inventory.lab import seed_inventory
    from protection.lab import seed_protection
    from vaults.lab import seed_vaults

    params = local_postgres()
    inventory = seed_inventory(seeded_lab, sample_database_name=f"sr_browser_{secrets.token_hex(3)}")
    vault = seed_vaults(seeded_lab)
    instances = {i.datasource_type: i for i in seed_protection(seeded_lab)}
    databases = [inventory.sample_database.name]
    yield {"lab": seeded_lab, "vault": vault, "instances": instances, "inventory": inventory, "databases": databases}
    for name in databases:
        postgres.drop_database(params, name)


@pytest.fixture
def lab_vault(seeded_lab):
    from vaults.lab import seed_vaults

    return seed_vaults(seeded_lab)
