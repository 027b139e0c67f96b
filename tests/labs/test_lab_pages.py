"""The Labs pages as a trainee uses them: the list, a lab's page before and after Start lab, Check my work,
a hint, the htmx progress part; and what another trainee or a non-trainee gets."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.labs.test_sandboxes import probe_lab  # noqa: F401 - the one-step test lab


@pytest.fixture
def as_trainee(client, trainee):
    client.force_login(trainee.user)
    return client


def test_a_trainee_starts_a_lab_from_its_page_and_sees_the_first_step(as_trainee, probe_lab, django_capture_on_commit_callbacks):  # noqa: F811
    page = as_trainee.get(reverse("labs:lab_list"))
    assert page.status_code == 200 and "Probe" in page.content.decode()
    before = as_trainee.get(reverse("labs:lab_page", args=["probe"])).content.decode()
    assert "Start lab" in before and "Check my work" not in before
    response = as_trainee.post(reverse("labs:start", args=["probe"]), follow=True)
    html = response.content.decode()
    assert "is ready. Follow step 1 below." in html
    code = response.context["run"].sandbox.code
    assert f"Create <strong>scratch</strong> in sbx{code}src." in html  # Markdown, with the sandbox's names
    assert "Check my work" in html and "Reset sandbox" in html
    with django_capture_on_commit_callbacks() as callbacks:
        as_trainee.post(reverse("labs:check", args=["probe"]), follow=True)
    assert callbacks  # the check went to a worker, not into the page


def test_check_outcome_and_hints_show_on_the_page_and_in_the_polled_part(as_trainee, trainee, probe_lab):  # noqa: F811
    from labs import services

    run = services.start_lab(trainee, "probe")
    services.check_run(run)
    html = as_trainee.get(reverse("labs:lab_page", args=["probe"])).content.decode()
    assert "Not yet:" in html and f"There is no container &#x27;scratch&#x27; in sbx{run.sandbox.code}src yet." in html
    assert "Hint 1:" in html and "Use + Container." in html  # one hint after one failed check
    part = as_trainee.get(reverse("labs:lab_page", args=["probe"]), HTTP_HX_REQUEST="true").content.decode()
    assert part.lstrip().startswith('<div id="lab-progress"') and "hx-trigger=\"every 3s\"" in part


def test_starting_twice_says_what_to_do(as_trainee, probe_lab):  # noqa: F811
    as_trainee.post(reverse("labs:start", args=["probe"]))
    html = as_trainee.post(reverse("labs:start", args=["probe"]), follow=True).content.decode()
    assert "You have already started" in html and "reset its sandbox" in html


def test_someone_without_a_lab_role_gets_no_labs(client, lab, probe_lab):  # noqa: F811
    client.force_login(lab.personas["reader"].principal.user)
    assert client.get(reverse("labs:lab_list")).status_code == 404
    response = client.post(reverse("labs:start", args=["probe"]))
    assert response.status_code == 403  # the RBAC guard refuses "Start lab", explained


def test_another_trainees_run_is_not_shown(client, make_trainee, probe_lab):  # noqa: F811
    from labs import services

    a, b = make_trainee("alice"), make_trainee("bob")
    run_b = services.start_lab(b, "probe")
    client.force_login(a.user)
    assert client.get(reverse("labs:run_page", args=[run_b.pk])).status_code == 404
    html = client.get(reverse("labs:lab_page", args=["probe"])).content.decode()
    assert run_b.sandbox.code not in html


def test_a_trainees_own_action_and_a_job_of_theirs_ending_ask_for_a_check(trainee, probe_lab, django_capture_on_commit_callbacks):  # noqa: F811
    from labs import services
    from labs.sandboxes import SandboxWorld
    from portal.inventory import services as inv
    from protection.jobs.runner import job_finished
    from protection.models import Job

    run = services.start_lab(trainee, "probe")
    with django_capture_on_commit_callbacks() as callbacks:
        inv.create_container(trainee, SandboxWorld(run.sandbox).source_account, name="another")
    assert [cb.args for cb in callbacks if getattr(cb, "args", None)] == [(services.CHECK_TASK, str(run.pk))]
    with django_capture_on_commit_callbacks() as callbacks:
        job_finished.send(sender=Job, job=Job(initiated_by=trainee))
    assert [cb.args for cb in callbacks if getattr(cb, "args", None)] == [(services.CHECK_TASK, str(run.pk))]


def test_an_instructor_solves_a_step_and_a_refused_solve_says_why(client, trainee, instructor, probe_lab):  # noqa: F811
    from labs import services
    from labs.models import StepResult
    from security.guards import Refusal
    from security.operations import CONTAINER_WRITE
    from tests.conftest import refusing

    run = services.start_lab(trainee, "probe")
    client.force_login(instructor.user)
    with refusing(CONTAINER_WRITE, Refusal("Test guard", "Refused", "Containers are frozen for this test.", "Thaw them.")):
        html = client.post(reverse("labs:solve", args=[run.pk, "scratch"]), follow=True).content.decode()
    assert "could not be solved for" in html and "Containers are frozen for this test." in html
    html = client.post(reverse("labs:solve", args=[run.pk, "scratch"]), follow=True).content.decode()
    assert f"Solved &#x27;Make a container&#x27; for {trainee.display_name}" in html
    assert StepResult.objects.get(run=run, step="scratch").solved_by == instructor.display_name
    assert run.results.get(step="scratch").passed is False  # the check, not the solve, decides
    assert services.check_run(run)[0].passed


def test_a_trainee_may_not_solve_or_reset_for_another(client, make_trainee, probe_lab):  # noqa: F811
    from labs import services

    a, b = make_trainee("ann"), make_trainee("ben")
    run_b = services.start_lab(b, "probe")
    client.force_login(a.user)
    assert client.post(reverse("labs:solve", args=[run_b.pk, "scratch"])).status_code == 403
    assert client.post(reverse("labs:reset_for_trainee", args=[run_b.pk])).status_code == 403
