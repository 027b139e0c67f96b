"""Who may use the lab's controls (issue 16, "Who may do what"): switching persona, moving the lab clock and
asking the workers need the Lab Instructor role; superuser status and Owner at the root allow none of it.
Every persona switch is in the activity log, and every action taken while playing a persona, allowed or
refused, names the real person. (Solving a trainee's step and resetting another's sandbox: tests/labs.)"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.urls import reverse

from portal import services
from portal.middleware import SESSION_PERSONA
from security import clock, roles, scopes
from security import services as security_services
from security.guards import GuardDenied
from security.models import ActivityLogEntry, RoleAssignment, RoleDefinition
from security.operations import LAB_CLOCK_WRITE, PERSONA_ASSUME, RESOURCE_GROUP_WRITE, ROLE_ASSIGNMENT_WRITE, WORKER_CHECK
from security.rbac import authorize

pytestmark = pytest.mark.django_db


def _person(django_user_model, lab, prefix: str, role_name: str | None = None, *, superuser: bool = False):
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    if superuser:
        user = django_user_model.objects.create_superuser(name, f"{name}@contoso.test", "x" * 12,
                                                          first_name=prefix.capitalize())
    else:
        user = django_user_model.objects.create_user(name, password="x" * 12, first_name=prefix.capitalize())
    principal = security_services.principal_for_user(user)
    if role_name:
        security_services.assign_role(lab.trainer, assignee=principal, role=RoleDefinition.objects.get(name=role_name),
                                      scope=scopes.ROOT)
    return principal


@pytest.fixture
def superuser(django_user_model, lab):
    return _person(django_user_model, lab, "root", superuser=True)


@pytest.fixture
def owner_at_root(django_user_model, lab):
    return _person(django_user_model, lab, "owner", roles.OWNER)


@pytest.fixture
def instructor(django_user_model, lab):
    return _person(django_user_model, lab, "instructor", roles.LAB_INSTRUCTOR)


@pytest.mark.parametrize("who", ["superuser", "owner_at_root"])
def test_neither_a_superuser_nor_owner_at_the_root_may_use_the_lab_controls(client, lab, request, who):
    """GIVEN a Django superuser, or an Owner at the root (who may change everything else) WHEN they try to
    switch persona, move the lab clock or ask the workers, by the pages or the services THEN each is
    refused (no menu, 404 pages; a refusal logged by the service) and the clock stays at real time."""
    principal = request.getfixturevalue(who)
    if who == "owner_at_root":  # Owner's "*" reaches every other write at the root
        assert authorize(principal, RESOURCE_GROUP_WRITE, lab.lab_subscription.resource_id).allowed
    client.force_login(principal.user)
    home = client.get(reverse("portal:home")).content.decode()
    assert 'id="persona-select"' not in home and "Lab clock</a>" not in home
    assert client.post(reverse("portal:switch_persona"), {"persona": lab.personas["reader"].pk}).status_code == 404
    assert SESSION_PERSONA not in client.session
    assert client.get(reverse("portal:lab_clock")).status_code == 404
    assert client.post(reverse("portal:lab_clock"), {"amount": 1, "unit": "days"}).status_code == 404
    assert client.post(reverse("portal:check_workers")).status_code == 404

    # A persona left in the session is not played either.
    session = client.session
    session[SESSION_PERSONA] = lab.personas["backup-admin"].pk
    session.save()
    assert client.get(reverse("portal:resource_group_list")).wsgi_request.principal == principal

    with pytest.raises(GuardDenied):
        security_services.move_lab_clock(principal, forward=dt.timedelta(days=1))
    with pytest.raises(GuardDenied):
        services.assume_persona(principal, lab.personas["reader"])
    with pytest.raises(GuardDenied):
        services.check_workers(principal)
    clock.forget_cached_offset()
    assert clock.is_real_time()
    refused = ActivityLogEntry.objects.filter(principal=principal, status=ActivityLogEntry.Status.FAILED)
    assert set(refused.values_list("operation", flat=True)) == {LAB_CLOCK_WRITE, PERSONA_ASSUME, WORKER_CHECK}
    assert not services.can_play_personas(principal) and not security_services.can_move_lab_clock(principal)


def test_a_lab_instructor_switches_persona_moves_the_clock_and_asks_the_workers(
        client, lab, instructor, django_capture_on_commit_callbacks):
    """GIVEN a user whose only role is Lab Instructor at the root WHEN they play a persona, move the lab
    clock and ask the workers THEN each works, and the switch is in the activity log."""
    client.force_login(instructor.user)
    home = client.get(reverse("portal:home")).content.decode()
    assert 'id="persona-select"' in home and "Lab clock</a>" in home
    operator = lab.personas["backup-operator"]
    assert client.post(reverse("portal:switch_persona"), {"persona": operator.pk}).status_code == 302
    page = client.get(reverse("portal:resource_group_list"))
    assert page.wsgi_request.principal == operator.principal and page.wsgi_request.real_principal == instructor
    assert "rg-backup-lab" in page.content.decode()  # what the persona sees, not the instructor (no role there)
    switch = ActivityLogEntry.objects.filter(operation=PERSONA_ASSUME, principal=instructor).latest("id")
    assert switch.status == ActivityLogEntry.Status.SUCCEEDED and switch.details["persona"] == "Backup operator"

    before = clock.now()
    assert client.post(reverse("portal:lab_clock"), {"amount": 2, "unit": "hours"}).status_code == 302
    clock.forget_cached_offset()
    assert clock.now() - before >= dt.timedelta(hours=2)
    client.post(reverse("portal:lab_clock"), {"reset": "1"})
    clock.forget_cached_offset()
    assert clock.is_real_time()
    with django_capture_on_commit_callbacks() as callbacks:
        assert client.post(reverse("portal:check_workers")).status_code == 302
    assert len(callbacks) == 1
    moved = ActivityLogEntry.objects.filter(operation=LAB_CLOCK_WRITE, principal=instructor, status="Succeeded")
    assert moved.count() == 2


def test_without_the_role_the_persona_ends_at_the_next_request(client, lab, instructor):
    """GIVEN an instructor playing a persona WHEN their Lab Instructor assignment is removed THEN their next
    request acts as themselves."""
    client.force_login(instructor.user)
    client.post(reverse("portal:switch_persona"), {"persona": lab.personas["reader"].pk})
    assert client.get(reverse("portal:home")).wsgi_request.principal == lab.personas["reader"].principal
    assignment = RoleAssignment.objects.get(principal=instructor, role__name=roles.LAB_INSTRUCTOR)
    security_services.remove_role_assignment(lab.trainer, assignment)
    page = client.get(reverse("portal:home"))
    assert page.wsgi_request.principal == instructor and "Role-playing" not in page.content.decode()


def test_every_action_while_playing_a_persona_names_the_real_person(client, lab, instructor, outsider):
    """GIVEN an instructor WHEN they play the Reader and try to add a role (refused), then play the Backup
    admin and add it (allowed: Reader for a managed identity is within its delegation condition) THEN both
    entries are the persona's, name the instructor as who played it, and each switch is logged as the
    instructor's own."""
    group, reader_role = lab.lab_group, RoleDefinition.objects.get(name="Reader")
    identity = security_services.create_managed_identity(
        f"{group.resource_id}/providers/Microsoft.DataProtection/backupVaults/bv-played", "bv-played")
    add = {"scope": group.resource_id, "role": reader_role.pk, "member": identity.pk}
    client.force_login(instructor.user)
    client.post(reverse("portal:switch_persona"), {"persona": lab.personas["reader"].pk})
    assert client.post(reverse("portal:iam_add"), add).status_code == 403
    client.post(reverse("portal:switch_persona"), {"persona": lab.personas["backup-admin"].pk})
    assert client.post(reverse("portal:iam_add"), add).status_code == 302
    client.post(reverse("portal:switch_persona"), {"persona": ""})

    entries = ActivityLogEntry.objects.filter(operation=ROLE_ASSIGNMENT_WRITE, scope__iexact=group.resource_id)
    refused = entries.get(status=ActivityLogEntry.Status.FAILED)
    allowed = entries.get(status=ActivityLogEntry.Status.SUCCEEDED, details__assignee=identity.display_name)
    name = instructor.display_name
    assert refused.principal == lab.personas["reader"].principal and allowed.principal == lab.personas["backup-admin"].principal
    assert (refused.caller, refused.details["playedBy"]) == (f"{name} as Reader", name)
    assert (allowed.caller, allowed.details["playedBy"]) == (f"{name} as Backup admin", name)
    switches = ActivityLogEntry.objects.filter(operation=PERSONA_ASSUME, principal=instructor).order_by("id")
    assert [e.details["persona"] for e in switches] == ["Reader", "Backup admin", "(self)"]
    assert all(e.caller == name and "playedBy" not in e.details for e in switches)


# --- Training labs in the navigation and in search ---------------------------------------------------


@pytest.mark.parametrize("typed", ["Training labs", "labs", "training"])
def test_training_labs_are_offered_to_trainees_and_instructors_in_lab_mode(client, lab, settings, typed):
    """GIVEN the demo trainee, the trainer and a persona WHEN each opens Home and searches THEN the left
    navigation and search's Services offer Training labs to the trainee and the trainer (Lab Trainee, Lab
    Instructor), not to the persona nor to anyone outside lab mode."""
    url = reverse("labs:lab_list")
    nav = f'<a href="{url}"'
    for principal, offered in ((lab.trainee, True), (lab.trainer, True), (lab.personas["backup-admin"].principal, False)):
        client.force_login(principal.user)
        home = client.get(reverse("portal:home")).content.decode()
        found = client.get(reverse("portal:search"), {"q": typed}, HTTP_HX_REQUEST="true").content.decode()
        assert (nav in home.split('class="leftnav"')[1].split("</nav>")[0]) is offered, principal
        assert (f'href="{url}"' in found) is offered, principal
        assert (client.get(url).status_code == 200) is offered  # the entry is where the page opens
    settings.STRONGROOM_LAB_MODE = False
    client.force_login(lab.trainee.user)
    assert nav not in client.get(reverse("portal:home")).content.decode()
    assert f'href="{url}"' not in client.get(reverse("portal:search"), {"q": typed}).content.decode()
