"""Who may act on a trainee's lab (issue 16, "Who may do what"): solving a trainee's step and resetting
their sandbox need the Lab Instructor role; superuser status and Owner at the root allow neither."""

from __future__ import annotations

import uuid

import pytest
from django.urls import reverse

from tests.labs.test_sandboxes import probe_lab  # noqa: F401 - the one-step test lab


def _someone(django_user_model, lab, kind: str):
    from security import roles, scopes
    from security import services as security_services
    from security.models import RoleDefinition

    name = f"{kind}-{uuid.uuid4().hex[:8]}"
    if kind == "superuser":
        user = django_user_model.objects.create_superuser(name, f"{name}@contoso.test", "pw", first_name="Root")
    else:
        user = django_user_model.objects.create_user(name, password="pw", first_name="Olive")
    principal = security_services.principal_for_user(user)
    if kind == "owner":
        security_services.assign_role(lab.trainer, assignee=principal, role=RoleDefinition.objects.get(name=roles.OWNER),
                                      scope=scopes.ROOT)
    return principal


@pytest.mark.parametrize("kind", ["superuser", "owner"])
def test_neither_a_superuser_nor_owner_at_the_root_may_solve_or_reset_a_trainees_lab(
        client, django_user_model, lab, trainee, probe_lab, kind):  # noqa: F811
    """GIVEN a trainee's run WHEN a superuser, or an Owner at the root, opens it, solves its step or resets
    its sandbox THEN the pages are not theirs and both actions are refused by the RBAC guard, changing nothing."""
    from labs import services
    from labs.models import LabRun, StepResult
    from security import operations as ops
    from security.models import ActivityLogEntry

    run = services.start_lab(trainee, "probe")
    principal = _someone(django_user_model, lab, kind)
    client.force_login(principal.user)
    assert client.get(reverse("labs:lab_list")).status_code == 404
    assert client.get(reverse("labs:run_page", args=[run.pk])).status_code == 404
    assert client.post(reverse("labs:solve", args=[run.pk, "scratch"])).status_code == 403
    assert client.post(reverse("labs:reset_for_trainee", args=[run.pk])).status_code == 403
    assert LabRun.objects.get(pk=run.pk).active and LabRun.objects.filter(trainee=trainee).count() == 1
    assert StepResult.objects.get(run=run, step="scratch").solved_by == ""
    assert not run.results.filter(passed=True).exists()
    refused = ActivityLogEntry.objects.filter(principal=principal, status=ActivityLogEntry.Status.FAILED)
    assert set(refused.values_list("operation", flat=True)) == {ops.LAB_SOLVE_FOR_TRAINEE, ops.LAB_RESET_FOR_TRAINEE}


def test_a_lab_instructor_solves_a_trainees_step_and_resets_their_sandbox(client, lab, trainee, instructor, probe_lab):  # noqa: F811
    """GIVEN a trainee's run WHEN a Lab Instructor (no other role) solves its step and resets its sandbox
    THEN the step's work is done as the trainee and the trainee has a new sandbox, the old one retired."""
    from labs import services
    from labs.models import LabRun, Sandbox
    from labs.sandboxes import SandboxWorld

    run = services.start_lab(trainee, "probe")
    client.force_login(instructor.user)
    assert client.get(reverse("labs:run_page", args=[run.pk])).status_code == 200
    assert client.post(reverse("labs:solve", args=[run.pk, "scratch"])).status_code == 302
    assert SandboxWorld(run.sandbox).source_account.containers.filter(name="scratch").exists()
    assert client.post(reverse("labs:reset_for_trainee", args=[run.pk])).status_code == 302
    new = LabRun.objects.get(trainee=trainee, active=True)
    assert new.sandbox_id != run.sandbox_id
    assert Sandbox.objects.get(pk=run.sandbox_id).status == Sandbox.Status.RETIRED
