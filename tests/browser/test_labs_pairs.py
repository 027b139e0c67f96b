"""Two trainees of a class do the paired MUA lab together, each in their own browser (issue 17).

GIVEN a class of two made by a Lab Instructor (A and B, each the other's security admin) WHEN A follows the
lab page (links B's guard guard-<A's code>, is refused Delete backup data, requests access), B rejects it with
a comment in B's own Approvals, A asks again, B approves, A deletes with the grant, the instructor moves the
lab clock past the grant's end and A is refused again THEN A's lab page, left open, shows each outcome as it
happens (htmx polling; checks run in a Celery worker), the rejection's comment included, and the lab ends
complete; B's own lab page shows B's progress the same way.

Set PAIRS_SHOTS=/some/dir for screenshots.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from tests.browser.conftest import open_page, screenshots, sign_in

pytestmark = pytest.mark.browser

shot = screenshots("PAIRS_SHOTS")
SLUG = "mua-resource-guard"
LIVE = 30_000  # a check in the worker, then the page's next poll


@pytest.fixture
def pair_class(seeded_lab, django_user_model, settings, worker):
    """A class of two doing the MUA lab, made through the service by a Lab Instructor (committed)."""
    from labs import classes
    from security import roles, scopes
    from security import services as security_services
    from security.models import RoleDefinition

    settings.STRONGROOM_LAB_MODE = True
    user = django_user_model.objects.create_user("ines", password="instructor-pw", first_name="Ines", last_name="Lab")
    instructor = security_services.principal_for_user(user)
    security_services.assign_role(seeded_lab.trainer, assignee=instructor, scope=scopes.ROOT,
                                  role=RoleDefinition.objects.get(name=roles.LAB_INSTRUCTOR))
    return instructor, classes.create_class(instructor, name="MUA pairs", labs=[SLUG], trainees=2)


def _own_context(browser, request, name):
    yield from open_page(browser, request, f"test_labs_pairs_{name}")


@pytest.fixture
def second_page(browser, request):
    """B's own browser context (cookies apart from A's); a screenshot is kept if the test fails."""
    yield from _own_context(browser, request, "B")


@pytest.fixture
def instructor_page(browser, request):
    """The instructor's browser, watching the class page."""
    yield from _own_context(browser, request, "instructor")


def open_lab(page, live_server):
    page.goto(f"{live_server.url}{reverse('labs:lab_page', args=[SLUG])}")
    expect(page.locator("#lab-progress")).to_be_visible()


def step(page, number):
    return page.locator(".lab-step").nth(number - 1)


def link_guard(page, vault, guard_label):
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Backup vaults").click()
    page.get_by_role("link", name=vault).click()
    page.get_by_role("navigation", name="Resource menu").get_by_role("link", name="Properties").click()
    page.locator("#update-mua").click()
    page.get_by_label(guard_label).check()
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".message-success")).to_contain_text("now protected by the Resource Guard")


def delete_backup_data(page, vault, item):
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Backup vaults").click()
    page.get_by_role("link", name=vault).click()
    page.get_by_role("navigation", name="Resource menu").get_by_role("link", name="Backup instances").click()
    page.locator("#instances-grid").get_by_role("link", name=item).click()
    page.locator("#delete-data").click()
    page.get_by_label("Type the name of Backup Item").fill(item)
    page.get_by_label("Reason").select_option("Others")
    page.get_by_label("Comments").fill("Lab 4")
    page.locator("#delete-data-submit").click()


def request_access(page, approver):
    expect(page.get_by_role("heading", name="You don't have permission to do this")).to_be_visible()
    page.locator("#request-access").click()
    page.get_by_label("Justification").fill("Lab 4: delete the backup data")
    page.get_by_label("Duration").select_option("5m")
    page.get_by_role("button", name="Request access").click()
    expect(page.locator(".message-success")).to_contain_text(f"sent for approval to {approver}")


def decide(page, requester, decision, comment):
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Approvals").click()
    row = page.locator("#pending-approvals tbody tr", has_text=requester)
    row.get_by_label(f"Comment for {requester}").fill(comment)
    row.get_by_role("button", name=decision).click()
    expect(page.locator(".message-success")).to_contain_text(f"{requester}'s request")


def done_cells(page, seat):
    return page.locator(f"#seat-{seat} td[data-state=done]")


def test_two_trainees_do_the_mua_lab_as_each_others_security_admin(page, second_page, instructor_page, live_server,
                                                                   pair_class):
    from labs import services
    from labs.catalogue import mua as lab4
    from security import services as security_services

    instructor, created = pair_class
    (cred_a, cred_b), (seat_a, seat_b) = created.credentials, list(created.lab_class.seats.order_by("number"))
    a, b = seat_a.trainee.display_name, seat_b.trainee.display_name
    code_a, code_b = seat_a.sandbox.code, seat_b.sandbox.code
    vault_a, vault_b = f"bv-mua-{code_a}", f"bv-mua-{code_b}"
    item_a = lab4._need(services.context_for(services.active_run(seat_a.trainee, SLUG)))[1].name
    page_b = second_page

    # The instructor watches the class page (it polls): nobody has done anything yet.
    sign_in(instructor_page, live_server, "ines", "instructor-pw")
    instructor_page.goto(f"{live_server.url}{reverse('labs:class_page', args=[created.lab_class.slug])}")
    expect(instructor_page.locator("#class-matrix")).to_contain_text(cred_a.username)
    expect(done_cells(instructor_page, 1)).to_have_count(0)

    # A's lab page names B as the security admin of A's vault, and B's group as the guard's home.
    sign_in(page, live_server, cred_a.username, cred_a.password)
    open_lab(page, live_server)
    current = page.locator(".lab-step-current")
    expect(current).to_contain_text(f"your partner {b} ({cred_b.username})")
    expect(current).to_contain_text(f"guard-{code_a} (rg-security-{code_b})")
    shot(page, "a-01-link")
    link_guard(page, vault_a, f"guard-{code_a} (rg-security-{code_b})")
    delete_backup_data(page, vault_a, item_a)
    request_access(page, b)
    open_lab(page, live_server)
    expect(step(page, 3)).to_contain_text("Done", timeout=LIVE)
    expect(page.locator(".lab-step-current")).to_contain_text("in their own browser, from Approvals")
    expect(page.locator("#role-play")).to_have_count(0)  # a person decides: no role-play in a pair
    shot(page, "a-02-waiting")
    expect(done_cells(instructor_page, 1)).to_have_count(3, timeout=LIVE)  # live on the class page, no reload
    shot(instructor_page, "instructor-01-live")

    # B, in B's own browser: B's lab page, B's own link (B's progress shows live too), then Approvals.
    sign_in(page_b, live_server, cred_b.username, cred_b.password)
    link_guard(page_b, vault_b, f"guard-{code_b} (rg-security-{code_a})")
    open_lab(page_b, live_server)
    expect(step(page_b, 1)).to_contain_text("Done", timeout=LIVE)
    decide(page_b, a, "Reject", "Which change ticket is this for?")
    shot(page_b, "b-01-rejected")

    # A's page, left open, shows the rejection and its comment; A asks again; B approves.
    expect(page.locator(".lab-missing")).to_contain_text("Which change ticket is this for?", timeout=LIVE)
    shot(page, "a-03-rejected")
    delete_backup_data(page, vault_a, item_a)
    request_access(page, b)
    open_lab(page, live_server)
    decide(page_b, a, "Approve", "CHG-42: go ahead.")
    expect(step(page, 4)).to_contain_text("Done", timeout=LIVE)
    expect(step(page, 4)).to_contain_text(f"{b} approved your request")

    # A deletes with the grant (the job runs in the worker), then the grant ends and A is refused again.
    delete_backup_data(page, vault_a, item_a)
    expect(page.locator(".message-success")).to_contain_text("soft-deleted")
    open_lab(page, live_server)
    expect(step(page, 5)).to_contain_text("Done", timeout=LIVE)
    security_services.move_lab_clock(instructor, forward=dt.timedelta(minutes=6))
    page.goto(f"{live_server.url}{reverse('mua:my_requests')}")
    expect(page.locator("#my-requests tbody tr").first).to_contain_text("Expired")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Backup instances").click()
    page.locator("#deleted-instances").click()
    page.locator("#instances-grid tr", has_text=item_a).get_by_role("link", name="Undelete").click()
    page.locator("#undelete-submit").click()
    expect(page.locator(".message-success")).to_contain_text("was undeleted")
    delete_backup_data(page, vault_a, item_a)
    expect(page.get_by_role("heading", name="You don't have permission to do this")).to_be_visible()
    open_lab(page, live_server)
    expect(page.locator("#lab-complete")).to_be_visible(timeout=LIVE)
    expect(page.locator(".lab-meter")).to_contain_text("6 of 6 steps done")
    shot(page, "a-04-complete")
    expect(done_cells(instructor_page, 1)).to_have_count(6, timeout=LIVE)

    # The instructor resets the pair: both get fresh sandboxes, wired to each other again, at step 1.
    instructor_page.once("dialog", lambda dialog: dialog.accept())
    instructor_page.get_by_role("button", name="Reset pair 1–2").click(timeout=90_000)
    expect(instructor_page.locator(".messages")).to_be_visible(timeout=90_000)
    seat_a.refresh_from_db()
    seat_b.refresh_from_db()
    assert {seat_a.sandbox.code, seat_b.sandbox.code}.isdisjoint({code_a, code_b})
    expect(done_cells(instructor_page, 1)).to_have_count(0, timeout=LIVE)
    shot(instructor_page, "instructor-02-reset")
