"""The instructor's class pages: Create a class (the sign-in sheet, passwords shown once), the cap and the
SQLite notice on the form, the live matrix (done, current, stuck), the CSV export, resets per trainee, pair
and class, closing, moving the lab clock (which names every open class first), and a trainee kept out."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

import pytest
import time_machine
from django.urls import reverse

from labs import catalogue
from labs.catalogue import CheckResult, Lab, Step

PROBE = "class-probe"


@pytest.fixture
def class_probe():
    """A paired lab of two steps: make container 'one', then 'two' (the checks read the container list)."""
    from portal.inventory import services as inv

    def has(name):
        def check(ctx):
            account = ctx.world.source_account
            if account.containers.filter(name=name).exists():
                return CheckResult.ok(f"The container {name} exists.")
            return CheckResult.missing(f"There is no container '{name}' in {account.name} yet.")
        return check

    def make(name):
        return lambda ctx: inv.create_container(ctx.trainee, ctx.world.source_account, name=name)

    steps = (Step("one", "Make container one", "Create **one** in {source_account}.", has("one"), make("one")),
             Step("two", "Make container two", "Create **two**.", has("two"), make("two")))
    lab = catalogue.register(Lab(PROBE, "Class probe", "A test lab.", ("steps",), 5, catalogue.Document("Test", "none"),
                                 steps, paired=True))
    yield lab
    catalogue._LABS.pop(lab.slug, None)


@pytest.fixture
def as_instructor(client, instructor):
    client.force_login(instructor.user)
    return client


def _class(instructor, trainees=2, name="Class pages", stuck_minutes=10):
    from labs import classes

    return classes.create_class(instructor, name=name, labs=[PROBE], trainees=trainees, stuck_minutes=stuck_minutes)


def _page(client, lab_class, **headers) -> str:
    response = client.get(reverse("labs:class_page", args=[lab_class.slug]), **headers)
    assert response.status_code == 200
    return response.content.decode()


def _codes(lab_class) -> dict:
    return {s.number: s.sandbox.code for s in lab_class.seats.select_related("sandbox")}


def test_create_answers_with_the_sheet_and_the_passwords_are_shown_once(as_instructor, class_probe):
    from django.contrib.auth import authenticate

    from labs.models import LabClass

    form = as_instructor.get(reverse("labs:class_create")).content.decode()
    assert 'name="labs" value="class-probe"' in form and 'name="trainees" value="20"' in form
    response = as_instructor.post(reverse("labs:class_create"), {"name": "Tuesday drill", "labs": [PROBE],
                                                                 "trainees": "3", "stuck_minutes": "15"})
    assert response.status_code == 200  # the sheet itself, not a redirect
    html = response.content.decode()
    lab_class = LabClass.objects.get(name="Tuesday drill")
    assert lab_class.size == 3 and lab_class.stuck_minutes == 15 and lab_class.labs == [PROBE]
    slips = response.context["slips"]
    assert [(s["credential"].seat, s["credential"].partner) for s in slips] == [(1, 2), (2, 1), (3, None)]
    for slip in slips:
        credential = slip["credential"]
        assert credential.username in html and credential.password in html
        assert authenticate(username=credential.username, password=credential.password) is not None
    assert f"Seat 2 ({slips[1]['credential'].username}): you approve each other" in html
    assert "These passwords are shown only once." in html and 'data-print id="print-sheet"' in html
    assert "no-store" in response["Cache-Control"]
    assert "//cdn" not in html and "https://" not in html  # served offline
    page = _page(as_instructor, lab_class)
    assert slips[0]["credential"].username in page
    assert not any(s["credential"].password in page for s in slips)


def test_the_form_refuses_more_trainees_than_the_cap(as_instructor, class_probe, settings):
    from labs.models import LabClass

    settings.STRONGROOM_LAB_CLASS_CAP = 4
    form = as_instructor.get(reverse("labs:class_create")).content.decode()
    assert 'max="4"' in form and "At most 4" in form
    html = as_instructor.post(reverse("labs:class_create"), {"name": "Too many", "labs": [PROBE], "trainees": "5",
                                                            "stuck_minutes": "10"}).content.decode()
    assert "A class holds at most 4 trainees" in html and "Split 5 trainees into classes of 4 or fewer." in html
    assert "These passwords are shown only once." not in html and not LabClass.objects.exists()


def test_on_sqlite_the_pages_say_so_instead_of_offering_the_form(as_instructor, class_probe, monkeypatch):
    from labs import classes
    from labs.models import LabClass

    problem = "Classes need PostgreSQL: set DATABASE_URL=postgres://USER@HOST:5432/strongroom."
    monkeypatch.setattr(classes, "database_problem", lambda: problem)
    for name in ("labs:class_create", "labs:class_list"):
        html = as_instructor.get(reverse(name)).content.decode()
        assert "Classes need PostgreSQL" in html and "DATABASE_URL=postgres://USER@HOST:5432/strongroom" in html
        assert 'name="trainees"' not in html and 'id="create-class"' not in html
    html = as_instructor.post(reverse("labs:class_create"), {"name": "On SQLite", "labs": [PROBE], "trainees": "2",
                                                            "stuck_minutes": "10"}).content.decode()
    assert "Classes need PostgreSQL" in html and not LabClass.objects.exists()


def _states(response, number: int) -> list[str]:
    """The states of seat ``number``'s cells, as the page (or its polled part) shows them."""
    html = response.content.decode()
    row = html[html.index(f'<tr id="seat-{number}"'):]
    return re.findall(r'data-state="([a-z]+)"', row[:row.index("</tr>")])


def test_the_matrix_shows_done_current_and_stuck_and_the_csv_says_the_same(as_instructor, instructor, class_probe):
    from django.utils import timezone

    from labs import services
    from tests.labs.conftest import solve

    start = timezone.now()
    with time_machine.travel(start, tick=False) as traveller:
        lab_class = _class(instructor, trainees=2, stuck_minutes=10).lab_class
        first, second = lab_class.seats.select_related("trainee__user")
        run_1, run_2 = (services.active_run(s.trainee, PROBE) for s in (first, second))
        traveller.shift(dt.timedelta(minutes=6))
        solve(run_1, "one")
        services.check_run(run_1)  # seat 1: step one done at +6 min, step two current since then
        services.check_run(run_2)  # seat 2: step one failed, current since the start
        response = as_instructor.get(reverse("labs:class_page", args=[lab_class.slug]))
        assert _states(response, 1) == ["done", "current"] and _states(response, 2) == ["current", "todo"]
        html = response.content.decode()
        assert f"There is no container &#x27;one&#x27; in sbx{second.sandbox.code}src yet." in html
        assert reverse("labs:run_page", args=[run_2.pk]) in html and 'id="stuck-count"' not in html

        traveller.shift(dt.timedelta(minutes=5))  # +11 min: seat 2 over 10 minutes on step one, seat 1 five on two
        response = as_instructor.get(reverse("labs:class_page", args=[lab_class.slug]), HTTP_HX_REQUEST="true")
        assert _states(response, 1) == ["done", "current"] and _states(response, 2) == ["stuck", "todo"]
        part = response.content.decode()
        assert part.lstrip().startswith('<div id="class-live"') and 'hx-trigger="every 5s"' in part
        assert "1 trainee stuck" in part and "Stuck for 11 min" in part
        feed = part[part.index('id="feed-1"'):part.index('id="feed-2"')]
        assert "Put blob container" in feed and "Succeeded" in feed  # seat 1's activity feed: the solve
        assert "Put blob container" not in part[part.index('id="feed-2"'):]

        export = as_instructor.get(reverse("labs:class_export", args=[lab_class.slug]))
    assert export["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(export.content.decode())))
    assert rows[0] == ["seat", "username", "partner", "lab", "step", "state", "last message", "checked at"]
    one, two = first.trainee.user.username, second.trainee.user.username
    by_key = {(r[0], r[4]): r for r in rows[1:]}
    assert len(rows) == 1 + 2 * 2
    assert by_key[("1", "one")][:7] == ["1", one, two, PROBE, "one", "done", "The container one exists."]
    assert by_key[("1", "one")][7] == (start + dt.timedelta(minutes=6)).isoformat()
    assert by_key[("1", "two")][5:7] == ["current", f"There is no container 'two' in sbx{first.sandbox.code}src yet."]
    assert by_key[("2", "one")][:7] == ["2", two, one, PROBE, "one", "stuck",
                                        f"There is no container 'one' in sbx{second.sandbox.code}src yet."]
    assert by_key[("2", "two")][5] == "todo"


def test_resets_per_trainee_pair_and_class_then_closing(as_instructor, instructor, class_probe):
    from labs.models import Sandbox

    lab_class = _class(instructor, trainees=3).lab_class
    url = lambda name, *args: reverse(f"labs:{name}", args=[lab_class.slug, *args])  # noqa: E731
    before = _codes(lab_class)
    html = _page(as_instructor, lab_class)
    assert "Reset (with seat 2)" in html and "A pair resets together: seat 2" in html and "Reset pair 1–2" in html

    html = as_instructor.post(url("class_reset_seat", 1), follow=True).content.decode()
    after = _codes(lab_class)
    assert after[1] != before[1] and after[2] != before[2] and after[3] == before[3]  # the pair, together
    assert "New sandboxes for seat 1" in html and "seat 2" in html

    as_instructor.post(url("class_reset_pair", 1))
    again = _codes(lab_class)
    assert again[1] != after[1] and again[2] != after[2] and again[3] == before[3]

    confirm = as_instructor.get(url("class_reset")).content.decode()
    assert "Every trainee of the class (3) gets a fresh sandbox" in confirm
    html = as_instructor.post(url("class_reset"), {"confirm_name": "wrong"}).content.decode()
    assert "Type the class name “Class pages” exactly to confirm." in html and _codes(lab_class) == again
    as_instructor.post(url("class_reset"), {"confirm_name": "Class pages"})
    final = _codes(lab_class)
    assert all(final[n] != again[n] for n in (1, 2, 3))
    assert Sandbox.objects.filter(code__in=[*before.values(), *after.values(), *again.values()],
                                  status=Sandbox.Status.ACTIVE).count() == 0

    assert "This cannot be undone." in as_instructor.get(url("class_close")).content.decode()
    as_instructor.post(url("class_close"), {"confirm_name": "nope"})
    lab_class.refresh_from_db()
    assert lab_class.closed_at is None
    html = as_instructor.post(url("class_close"), {"confirm_name": "Class pages"}, follow=True).content.decode()
    lab_class.refresh_from_db()
    assert lab_class.closed_at is not None and "is closed" in html and 'id="class-closed"' in html
    assert 'hx-trigger="every 5s"' not in html and "Reset the whole class" not in html  # no more polling
    assert not any(s.trainee.user.is_active for s in lab_class.seats.select_related("trainee__user"))
    assert Sandbox.objects.filter(code__in=final.values(), status=Sandbox.Status.RETIRED).count() == 3


def test_moving_the_lab_clock_names_every_open_class_before_it_moves(as_instructor, instructor, class_probe):
    from security import clock

    first = _class(instructor, trainees=1, name="Morning group").lab_class
    _class(instructor, trainees=1, name="Evening group")
    page = _page(as_instructor, first)
    assert "The lab clock is one per installation." in page
    assert "“Evening group”, “Morning group”" in page
    confirm = as_instructor.get(reverse("labs:class_clock", args=[first.slug]), {"amount": "2", "unit": "hours"})
    html = confirm.content.decode()
    assert "Moving it moves every open class" in html and "“Evening group”, “Morning group”" in html
    assert 'name="amount" value="2"' in html and clock.is_real_time()  # nothing moved yet
    html = as_instructor.post(reverse("labs:class_clock", args=[first.slug]), {"amount": "2", "unit": "hours"},
                              follow=True).content.decode()
    clock.forget_cached_offset()
    assert clock.offset_seconds() == 2 * 3600
    assert "for every open class (Evening group, Morning group)" in html


def test_a_trainee_gets_no_class_page(client, instructor, trainee, class_probe):
    from labs import urls
    from labs.models import LabClass

    lab_class = _class(instructor, trainees=2).lab_class
    seated = lab_class.seats.get(number=1).trainee
    slug = lab_class.slug
    args = {"class_list": [], "class_create": [], "class_reset_seat": [slug, 1], "class_reset_pair": [slug, 1]}
    get_only, post_only = {"class_list", "class_page", "class_export"}, {"class_reset_seat", "class_reset_pair"}
    names = sorted(p.name for p in urls.urlpatterns if p.name.startswith("class_"))
    assert len(names) == 9
    form = {"name": "Mine", "labs": [PROBE], "trainees": "1", "confirm_name": lab_class.name, "amount": "1",
            "unit": "days"}
    for who in (trainee, seated):
        client.force_login(who.user)
        for name in names:
            path = reverse(f"labs:{name}", args=args.get(name, [slug]))
            for method, skip in (("get", post_only), ("post", get_only)):
                status = getattr(client, method)(path, form).status_code
                assert status == (405 if name in skip else 404), (who, name, method, status)
    lab_class.refresh_from_db()
    assert lab_class.closed_at is None and LabClass.objects.count() == 1


def _queries(client, url, **headers) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        assert client.get(url, **headers).status_code == 200
    return len(queries.captured_queries)


# The polled parts' query budgets (issue 22): the session, its user and principal, the role assignments, and
# what the part shows read in one query each, whatever the number of seats, steps, results or activity (and
# at most one read a second of the lab clock's offset, kept still here by ``steady_clock``).
LAB_PART_QUERIES = 7  # + the run, the partner seat (one query), the step results
CLASS_PART_QUERIES = 9  # + the class, its seats, their runs, their results, their recent activity


def test_the_polled_parts_cost_a_fixed_number_of_queries(client, instructor, class_probe, steady_clock):
    """The lab page's polled part (every trainee, every 3 s) and the class page's (every 5 s) read the same
    number of queries for a trainee paired or alone, with no results or several, and for a class of any size."""
    from labs import services
    from tests.labs.conftest import solve

    lab_class = _class(instructor, trainees=3).lab_class
    seats = list(lab_class.seats.select_related("trainee__user"))
    part = {"HTTP_HX_REQUEST": "true"}
    lab_url, class_url = reverse("labs:lab_page", args=[PROBE]), reverse("labs:class_page", args=[lab_class.slug])

    def lab_costs():
        costs = []
        for seat in seats:  # seats 1 and 2 are a pair, seat 3 works alone
            client.force_login(seat.trainee.user)
            costs.append(_queries(client, lab_url, **part))
        return costs

    def class_cost():
        client.force_login(instructor.user)
        return _queries(client, class_url, **part)

    before = lab_costs(), class_cost()
    for seat in seats:  # results, failures (hints) and activity on every seat
        run = services.active_run(seat.trainee, PROBE)
        services.check_run(run)
        solve(run, "one")
        services.check_run(run)
        services.check_run(run)
    after = lab_costs(), class_cost()
    assert before == after == ([LAB_PART_QUERIES] * 3, CLASS_PART_QUERIES), (before, after)
    client.force_login(seats[0].trainee.user)
    html = client.get(lab_url, **part).content.decode()
    assert "1 of 2 steps done" in html and "Create <strong>two</strong>." in html  # the part still shows it all
