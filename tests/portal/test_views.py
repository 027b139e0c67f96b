"""The shell's pages through Django's test client: outsiders get 404, readers 403 on writes,
the persona switch and the lab clock work only for a trainer in lab mode.

Expected outcomes are literal tables written from the seeded lab (who holds what where), not
computed by `authorize`.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from portal.models import Operation, ResourceGroup
from portal.middleware import SESSION_PERSONA
from security import clock
from security.models import ActivityLogEntry, Alert, RoleAssignment, RoleDefinition

pytestmark = pytest.mark.django_db


def _iam(scope: str) -> str:
    return f"{reverse('portal:iam')}?scope={scope}"


# --- who sees what: a literal table -------------------------------------------------------------

# page -> {persona: expected status}. From the seed: reader = Reader on Contoso Lab; backup-operator
# = Backup Operator + Reader on rg-backup-lab; security-admin = Owner of Security; outsider = none.
READS = {
    "lab_subscription": {"trainer": 200, "reader": 200, "backup-operator": 200, "security-admin": 404, "outsider": 404},
    "lab_group": {"trainer": 200, "reader": 200, "backup-operator": 200, "security-admin": 404, "outsider": 404},
    "target_group": {"trainer": 200, "reader": 200, "backup-operator": 404, "security-admin": 404, "outsider": 404},
    "security_group": {"trainer": 200, "reader": 404, "backup-operator": 404, "security-admin": 200, "outsider": 404},
    "lab_group_iam": {"trainer": 200, "reader": 200, "backup-operator": 200, "security-admin": 404, "outsider": 404},
    "lab_group_delete_page": {"trainer": 200, "reader": 200, "backup-operator": 200, "security-admin": 404, "outsider": 404},
}


def _principal(lab, key):
    return lab.trainer if key == "trainer" else lab.personas[key].principal


def _read_url(lab, page):
    return {
        "lab_subscription": reverse("portal:subscription_detail", args=[lab.lab_subscription.pk]),
        "lab_group": reverse("portal:resource_group_detail", args=[lab.lab_group.pk]),
        "target_group": reverse("portal:resource_group_detail", args=[lab.target_group.pk]),
        "security_group": reverse("portal:resource_group_detail", args=[lab.security_group.pk]),
        "lab_group_iam": _iam(lab.lab_group.resource_id),
        "lab_group_delete_page": reverse("portal:resource_group_delete", args=[lab.lab_group.pk]),
    }[page]


@pytest.mark.parametrize(
    "page,persona,expected",
    [(page, persona, status) for page, row in READS.items() for persona, status in row.items()],
)
def test_it_shows_pages_only_to_those_who_may_read_them(client, lab, page, persona, expected):
    client.force_login(_principal(lab, persona).user)
    assert client.get(_read_url(lab, page)).status_code == expected


def test_it_lists_nothing_to_the_outsider(client, lab, outsider):
    """GIVEN the outsider WHEN they open lists and search THEN nothing of the lab shows, with a hint."""
    client.force_login(outsider.user)
    home = client.get(reverse("portal:home")).content.decode()
    assert "rg-backup-lab" not in home and "No role assignments" in home
    subs = client.get(reverse("portal:subscription_list")).content.decode()
    assert "Contoso Lab" not in subs and "No subscriptions to show" in subs
    groups = client.get(reverse("portal:resource_group_list")).content.decode()
    assert "rg-backup-lab" not in groups and "No resource groups to show" in groups
    found = client.get(reverse("portal:search"), {"q": "lab"}).content.decode()
    assert "rg-backup-lab" not in found and "No resources named like" in found


def test_outsider_writes_are_404_not_403(client, lab, outsider):
    """GIVEN the outsider WHEN they post to writes on things they cannot read THEN 404, nothing changes."""
    client.force_login(outsider.user)
    group = lab.lab_group
    operator_assignment = RoleAssignment.objects.filter(principal=lab.personas["backup-operator"].principal).first()
    reader_role = RoleDefinition.objects.get(name="Reader")
    posts = [
        (reverse("portal:resource_group_delete", args=[group.pk]), {"confirm_name": group.name}),
        (reverse("portal:iam_add"), {"scope": group.resource_id, "role": reader_role.pk, "member": outsider.pk}),
        (reverse("portal:iam_remove", args=[operator_assignment.pk]), {"scope": group.resource_id}),
    ]
    for url, data in posts:
        assert client.post(url, data).status_code == 404, url
    assert client.get(reverse("portal:iam_check_access"), {"scope": group.resource_id}).status_code == 404
    assert ResourceGroup.objects.filter(pk=group.pk).exists()
    assert RoleAssignment.objects.filter(pk=operator_assignment.pk).exists()
    assert not RoleAssignment.objects.filter(principal=outsider).exists()


# --- the reader may look but not change: 403 with the explained denial ----------------------------


def test_reader_gets_the_explained_403_on_every_write(client, lab, reader, outsider):
    client.force_login(reader.user)
    group = lab.lab_group
    reader_role = RoleDefinition.objects.get(name="Reader")
    operator_assignment = RoleAssignment.objects.filter(principal=lab.personas["backup-operator"].principal).first()
    writes = [
        (reverse("portal:resource_group_create"),
         {"subscription": lab.lab_subscription.pk, "name": "rg-reader-try", "region": "eastus"},
         "Microsoft.Resources/subscriptions/resourceGroups/write"),
        (reverse("portal:resource_group_delete", args=[group.pk]), {"confirm_name": group.name},
         "Microsoft.Resources/subscriptions/resourceGroups/delete"),
        (reverse("portal:iam_add"), {"scope": group.resource_id, "role": reader_role.pk, "member": outsider.pk},
         "Microsoft.Authorization/roleAssignments/write"),
        (reverse("portal:iam_remove", args=[operator_assignment.pk]), {"scope": group.resource_id},
         "Microsoft.Authorization/roleAssignments/delete"),
    ]
    for url, data, action in writes:
        response = client.post(url, data)
        assert response.status_code == 403, url
        body = response.content.decode()
        assert "have permission to do this" in body
        assert "Riley Reader" in body and action in body and "AuthorizationFailed" in body
    assert not ResourceGroup.objects.filter(name="rg-reader-try").exists()
    assert ResourceGroup.objects.filter(pk=group.pk).exists()
    assert RoleAssignment.objects.filter(pk=operator_assignment.pk).exists()
    assert not RoleAssignment.objects.filter(principal=outsider).exists()
    failed = ActivityLogEntry.objects.filter(principal=reader, status=ActivityLogEntry.Status.FAILED)
    assert failed.count() == 4


def test_reader_sees_no_remove_buttons_and_a_warning_on_add(client, lab, reader):
    client.force_login(reader.user)
    body = client.get(_iam(lab.lab_group.resource_id)).content.decode()
    assert "Yes, remove" not in body
    add = client.get(_iam(lab.lab_group.resource_id) + "&tab=add").content.decode()
    assert "Your current roles do not include" in add


# --- IAM ------------------------------------------------------------------------------------------


def test_trainer_adds_a_time_bound_assignment_and_checks_access(client, lab, trainer, outsider):
    """GIVEN the trainer WHEN they add Reader for the outsider with an end THEN it is time-bound, listed,
    and Check access shows what the outsider can do."""
    client.force_login(trainer.user)
    group = lab.lab_group
    ends = (clock.now() + dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    response = client.post(
        reverse("portal:iam_add"),
        {"scope": group.resource_id, "role": RoleDefinition.objects.get(name="Reader").pk, "member": outsider.pk,
         "ends_at": ends, "description": "Audit week"},
    )
    assert response.status_code == 302
    assignment = RoleAssignment.objects.get(principal=outsider)
    assert assignment.ends_at is not None and assignment.description == "Audit week"
    listing = client.get(_iam(group.resource_id)).content.decode()
    assert "Oscar Outsider" in listing and "Audit week" in listing
    check = client.get(reverse("portal:iam_check_access"), {"scope": group.resource_id, "member": outsider.pk})
    body = check.content.decode()
    assert "Oscar Outsider at rg-backup-lab" in body
    assert body.count("status-ok") == 1  # only "Read this resource group" is allowed


def test_add_with_an_end_in_the_past_shows_the_error_beside_the_field(client, lab, trainer, outsider):
    client.force_login(trainer.user)
    past = (clock.now() - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    response = client.post(
        reverse("portal:iam_add"),
        {"scope": lab.lab_group.resource_id, "role": RoleDefinition.objects.get(name="Reader").pk,
         "member": outsider.pk, "ends_at": past},
    )
    assert response.status_code == 400
    assert "The end must be after the start" in response.content.decode()
    assert not RoleAssignment.objects.filter(principal=outsider).exists()


def test_inherited_assignments_cannot_be_removed_from_below(client, lab, trainer):
    """GIVEN the reader's assignment on the subscription WHEN viewed on the resource group THEN it is
    inherited, has no Remove, and removing it through the group's IAM is a 404."""
    client.force_login(trainer.user)
    reader_assignment = RoleAssignment.objects.get(principal=lab.personas["reader"].principal)
    body = client.get(_iam(lab.lab_group.resource_id)).content.decode()
    assert "Subscription (Inherited)" in body
    assert reverse("portal:iam_remove", args=[reader_assignment.pk]) not in body
    response = client.post(
        reverse("portal:iam_remove", args=[reader_assignment.pk]), {"scope": lab.lab_group.resource_id}
    )
    assert response.status_code == 404
    assert RoleAssignment.objects.filter(pk=reader_assignment.pk).exists()
    # At its own scope (the subscription's IAM) the trainer, Owner, removes it.
    response = client.post(
        reverse("portal:iam_remove", args=[reader_assignment.pk]), {"scope": lab.lab_subscription.resource_id}
    )
    assert response.status_code == 302
    assert not RoleAssignment.objects.filter(pk=reader_assignment.pk).exists()


# --- persona switch ----------------------------------------------------------------------------------


def test_trainer_switches_persona_and_back(client, lab, trainer):
    client.force_login(trainer.user)
    operator = lab.personas["backup-operator"]
    response = client.post(reverse("portal:switch_persona"), {"persona": operator.pk, "next": "/resource-groups/"})
    assert response.status_code == 302 and response["Location"] == "/resource-groups/"
    assert client.session[SESSION_PERSONA] == operator.pk
    page = client.get(reverse("portal:resource_group_list"))
    assert page.wsgi_request.principal == operator.principal
    assert page.wsgi_request.real_principal == trainer
    body = page.content.decode()
    assert "Role-playing: Backup operator" in body
    assert "rg-backup-lab" in body and "rg-security" not in body
    assert ActivityLogEntry.objects.filter(operation="Strongroom.Lab/personas/assume/action", principal=trainer).exists()

    client.post(reverse("portal:switch_persona"), {"persona": ""})
    assert SESSION_PERSONA not in client.session
    page = client.get(reverse("portal:home"))
    assert page.wsgi_request.principal == trainer
    assert "Role-playing" not in page.content.decode()


def test_switch_refuses_an_offsite_next(client, lab, trainer):
    client.force_login(trainer.user)
    response = client.post(reverse("portal:switch_persona"), {"persona": "", "next": "https://evil.example/"})
    assert response["Location"] == reverse("portal:home")


@pytest.mark.parametrize("key", ["backup-admin", "reader", "outsider"])
def test_only_a_trainer_may_switch_persona(client, lab, key):
    client.force_login(lab.personas[key].principal.user)
    assert client.post(reverse("portal:switch_persona"), {"persona": lab.personas["reader"].pk}).status_code == 404
    assert SESSION_PERSONA not in client.session
    assert 'id="persona-select"' not in client.get(reverse("portal:home")).content.decode()


def test_no_persona_switch_when_lab_mode_is_off(client, lab, trainer, settings):
    settings.STRONGROOM_LAB_MODE = False
    client.force_login(trainer.user)
    assert 'id="persona-select"' not in client.get(reverse("portal:home")).content.decode()
    assert client.post(reverse("portal:switch_persona"), {"persona": lab.personas["reader"].pk}).status_code == 404
    assert client.get(reverse("portal:lab_clock")).status_code == 404


# --- lab clock --------------------------------------------------------------------------------------


def test_trainer_moves_the_lab_clock_and_resets_it(client, lab, trainer):
    client.force_login(trainer.user)
    page = client.get(reverse("portal:lab_clock")).content.decode()
    assert "Real time" in page and "Lab time" not in page.split("<main")[0]
    before = clock.now()
    response = client.post(reverse("portal:lab_clock"), {"amount": 2, "unit": "days"})
    assert response.status_code == 302
    clock.forget_cached_offset()
    assert dt.timedelta(days=2) <= clock.now() - before < dt.timedelta(days=2, minutes=5)
    page = client.get(reverse("portal:lab_clock")).content.decode()
    assert "lab-clock-badge" in page and "Ahead of real time" in page and "2\xa0days" in page
    client.post(reverse("portal:lab_clock"), {"reset": "1"})
    clock.forget_cached_offset()
    assert clock.is_real_time()
    assert "lab-clock-badge" not in client.get(reverse("portal:home")).content.decode()


def test_the_lab_clock_refuses_a_non_positive_move(client, lab, trainer):
    client.force_login(trainer.user)
    response = client.post(reverse("portal:lab_clock"), {"amount": 0, "unit": "days"})
    assert response.status_code == 200
    assert "errorlist" in response.content.decode()
    clock.forget_cached_offset()
    assert clock.is_real_time()


@pytest.mark.parametrize("key", ["backup-admin", "reader"])
def test_only_a_trainer_sees_the_lab_clock(client, lab, key):
    client.force_login(lab.personas[key].principal.user)
    assert client.get(reverse("portal:lab_clock")).status_code == 404
    assert client.post(reverse("portal:lab_clock"), {"amount": 1, "unit": "days"}).status_code == 404
    clock.forget_cached_offset()
    assert clock.is_real_time()


# --- resource groups ---------------------------------------------------------------------------------


def test_trainer_creates_and_deletes_a_resource_group_by_typing_its_name(client, lab, trainer):
    client.force_login(trainer.user)
    response = client.post(
        reverse("portal:resource_group_create"),
        {"subscription": lab.lab_subscription.pk, "name": "rg-new", "region": "eastus"},
    )
    group = ResourceGroup.objects.get(name="rg-new")
    assert response["Location"] == reverse("portal:resource_group_detail", args=[group.pk])
    wrong = client.post(reverse("portal:resource_group_delete", args=[group.pk]), {"confirm_name": "rg-ne"})
    assert "Type the resource group name" in wrong.content.decode()
    assert ResourceGroup.objects.filter(pk=group.pk).exists()
    client.post(reverse("portal:resource_group_delete", args=[group.pk]), {"confirm_name": "rg-new"})
    assert not ResourceGroup.objects.filter(pk=group.pk).exists()


def test_a_bad_resource_group_name_is_explained_beside_the_field(client, lab, trainer):
    client.force_login(trainer.user)
    response = client.post(
        reverse("portal:resource_group_create"),
        {"subscription": lab.lab_subscription.pk, "name": "bad name.", "region": "eastus"},
    )
    assert response.status_code == 200
    assert "Resource group names can only include" in response.content.decode()
    assert not ResourceGroup.objects.filter(name="bad name.").exists()


def test_resource_group_list_filters_by_subscription(client, lab, trainer):
    client.force_login(trainer.user)
    body = client.get(reverse("portal:resource_group_list"), {"subscription": lab.security_subscription.pk}).content.decode()
    assert "rg-security" in body and "rg-backup-lab" not in body


# --- search, activity log, alerts, notifications ------------------------------------------------------


def test_search_answers_htmx_with_the_results_partial(client, lab, trainer):
    client.force_login(trainer.user)
    response = client.get(reverse("portal:search"), {"q": "restore"}, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert "<html" not in body and "rg-restore-lab" in body and "rg-backup-lab" not in body


def _a_refused_resource_group_create(client, lab, reader):
    """The reader tries to create a resource group: one Failed entry in the activity log."""
    client.force_login(reader.user)
    client.post(reverse("portal:resource_group_create"),
                {"subscription": lab.lab_subscription.pk, "name": "rg-x", "region": "eastus"})


def test_activity_log_filters_and_offers_no_edit_or_delete(client, lab, trainer, reader):
    _a_refused_resource_group_create(client, lab, reader)
    client.force_login(trainer.user)
    body = client.get(reverse("portal:activity_log"), {"status": "Failed"}).content.decode()
    assert body.count('class="log-row"') == 1 and "Riley Reader" in body
    main = body.split('<main', 1)[1]
    assert 'method="post"' not in main.split('class="log"', 1)[1]


def test_activity_log_shows_only_entries_in_scopes_one_holds(client, lab, security_admin, reader):
    _a_refused_resource_group_create(client, lab, reader)
    client.force_login(security_admin.user)
    body = client.get(reverse("portal:activity_log"), {"status": "Failed"}).content.decode()
    assert "Riley Reader" not in body


def test_alerts_can_be_acknowledged_and_closed_by_who_may(client, lab, trainer, reader, outsider):
    from security.services import raise_alert

    alert = raise_alert(name="Backup failed", category="Jobs", severity="Sev1",
                        resource_id=lab.lab_group.resource_id, description="The nightly backup failed.")
    client.force_login(outsider.user)
    assert "Backup failed" not in client.get(reverse("portal:alert_list")).content.decode()
    assert client.post(reverse("portal:alert_change_state", args=[alert.pk]), {"state": "Closed"}).status_code == 404
    client.force_login(reader.user)
    assert client.post(reverse("portal:alert_change_state", args=[alert.pk]), {"state": "Closed"}).status_code == 403
    client.force_login(trainer.user)
    listing = client.get(reverse("portal:alert_list")).content.decode()
    assert "Backup failed" in listing and "Acknowledge" in listing
    client.post(reverse("portal:alert_change_state", args=[alert.pk]), {"state": "Acknowledged"})
    alert.refresh_from_db()
    assert alert.state == Alert.State.ACKNOWLEDGED


def test_notifications_poll_while_running_and_stop_when_done(client, lab, trainer):
    from portal.services import finish_operation, start_operation

    client.force_login(trainer.user)
    op = start_operation(trainer, "Create vault 'bv-lab'", link="/")
    running = client.get(reverse("portal:notifications"), {"poll": "1"}, HTTP_HX_REQUEST="true")
    assert running.status_code == 200 and 'hx-trigger="every 2s"' in running.content.decode()
    assert "In progress" in running.content.decode()
    finish_operation(op, succeeded=True)
    done = client.get(reverse("portal:notifications"), {"poll": "1"}, HTTP_HX_REQUEST="true")
    assert done.status_code == 286
    body = done.content.decode()
    assert "Succeeded" in body and 'hx-trigger="every 2s"' not in body
    assert Operation.objects.get(pk=op.pk).status == Operation.Status.SUCCEEDED


def test_the_top_bar_counts_running_operations_and_lists_personas_once_and_only_on_full_pages(client, lab, trainer):
    """The badge and the persona picker are read where the top bar is drawn (once each), never for a polled
    htmx part (issue 22: the lab page's part is polled every 3 s by every trainee)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from portal.services import start_operation

    client.force_login(trainer.user)
    start_operation(trainer, "Create vault 'bv-one'", link="/")
    start_operation(trainer, "Create vault 'bv-two'", link="/")
    with CaptureQueriesContext(connection) as queries:
        html = client.get(reverse("portal:home")).content.decode()
    assert '<span class="count-badge" title="Operations in progress">2</span>' in html
    assert lab.personas["backup-admin"].title in html  # the persona picker
    sql = [q["sql"] for q in queries.captured_queries]
    assert sum('FROM "portal_operation"' in q and "COUNT(*)" in q for q in sql) == 1
    assert sum('FROM "portal_labpersona"' in q for q in sql) == 1
    with CaptureQueriesContext(connection) as queries:
        part = client.get(reverse("portal:notifications"), {"poll": "1"}, HTTP_HX_REQUEST="true")
    assert part.status_code == 200
    assert not any('FROM "portal_labpersona"' in q["sql"] for q in queries.captured_queries)


@pytest.mark.django_db
def test_trainer_can_ask_workers_to_answer(lab, client, django_capture_on_commit_callbacks):
    from portal.models import Operation

    client.force_login(lab.trainer.user)
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post("/lab/workers/check/")
    assert response.status_code == 302
    assert len(callbacks) == 1  # the task is sent to the broker only after commit
    assert Operation.objects.get(principal=lab.trainer).title == "Checking background workers"


@pytest.mark.django_db
def test_personas_cannot_ask_workers(lab, client):
    client.force_login(lab.personas["backup-admin"].principal.user)
    assert client.post("/lab/workers/check/").status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/backup/restore/validate/", "/backup/restore/assign-roles/"])
@pytest.mark.parametrize("instance", ["", "not-a-uuid", "00000000-0000-0000-0000-000000000000"])
def test_a_malformed_or_unknown_id_is_404_not_a_server_error(lab, client, url, instance):
    client.force_login(lab.trainer.user)
    assert client.post(url, {"instance": instance}).status_code == 404
